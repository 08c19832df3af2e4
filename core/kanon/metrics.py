"""Equivalence classes of a full-domain generalization, their information loss and re-identification risk.

Input is the frequency table that `transforms.kanon.full_domain.frequency_table` builds:
one row per distinct combination of the quasi-identifiers (plus the sensitive
value and the unit when given) with its number of records in `RECORDS`. The
table is encoded once as integer codes per hierarchy level (`encode`); a
transformation (one level per quasi-identifier) is then grouped into classes
with a few vectorized numpy passes (`group`), which is what the lattice search
repeats for every node it checks.

Information loss follows ARX's definitions so results can be compared with
it (sources in each function; checked against ARX's source,
arx-deidentifier/arx, package org.deidentifier.arx.metric.v2, and the ARX
manual pages arx.deidentifier.org/overview/metrics-for-information-loss and
/help-settings). ARX's defaults are used: generalization and suppression
weighted equally (gs-factor 0.5), equal attribute weights, loss aggregated by
the geometric mean, entropy by the sum. A suppressed record counts as fully
generalized in every quasi-identifier, which is how ARX charges it. ARX
rounds its reported values; these are not rounded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.kanon.hierarchy import Hierarchy, HierarchyError
from core.kanon.models import ClassStats

RECORDS = "records"  # the frequency table's column of record counts
METRICS = ("loss", "entropy", "discernibility", "aecs", "ncp")
_AGGREGATE_FUNCTIONS = {
    "geometric": lambda values: np.prod(values + 1.0) ** (1.0 / len(values)) - 1.0,
    "arithmetic": np.mean,
    "sum": np.sum,
    "max": np.max,
}
AGGREGATES = tuple(_AGGREGATE_FUNCTIONS)
SUPPRESSED = "*"  # ARX's representation of a suppressed value

_KEY_LIMIT = 2**62  # re-factorize combined keys before they could overflow int64


# --- encoding ------------------------------------------------------------------


@dataclass(frozen=True)
class Encoded:
    """A frequency table as integer codes, per quasi-identifier and hierarchy level."""

    quasi_identifiers: tuple[str, ...]
    generalized: tuple[tuple[np.ndarray, ...], ...]  # [qi][level]: code of each row's generalized value
    labels: tuple[tuple[tuple[str, ...], ...], ...]  # [qi][level][code]: the generalized value
    shares: tuple[tuple[np.ndarray, ...], ...]  # [qi][level][code]: share of the domain it covers
    records: np.ndarray  # records per row
    sensitive: np.ndarray | None  # code of each row's sensitive value
    sensitive_values: tuple[str, ...]
    units: np.ndarray | None  # code of each row's unit (subscriber)
    column_loss: tuple[np.ndarray, ...]  # [qi][level]: sum of records x share, suppression ignored
    column_entropy: tuple[np.ndarray, ...]  # [qi][level]: non-uniform entropy, suppression ignored
    column_ncp: tuple[np.ndarray, ...]  # [qi][level]: sum of records x NCP, suppression ignored
    present: tuple[np.ndarray, ...]  # [qi][level]: distinct generalized values present

    @property
    def total(self) -> int:
        return int(self.records.sum())

    @property
    def heights(self) -> tuple[int, ...]:
        return tuple(len(levels) - 1 for levels in self.labels)

    def domain_size(self, qi: int) -> int:
        return len(self.labels[qi][0])


def encode(
    frequency: pd.DataFrame,
    hierarchies: Mapping[str, Hierarchy],
    quasi_identifiers: Sequence[str],
    sensitive: str | None = None,
    unit: str | None = None,
) -> Encoded:
    """Encode `frequency` for grouping; every quasi-identifier value must have a hierarchy row."""
    records = frequency[RECORDS].to_numpy(dtype=np.int64)
    columns = [_encode_column(frequency[q], hierarchies[q]) for q in quasi_identifiers]
    sensitive_codes, sensitive_values = _factorize(frequency[sensitive]) if sensitive else (None, ())
    units = _factorize(frequency[unit])[0] if unit else None
    generalized = tuple(c[0] for c in columns)
    shares = tuple(c[2] for c in columns)
    return Encoded(
        quasi_identifiers=tuple(quasi_identifiers),
        generalized=generalized,
        labels=tuple(c[1] for c in columns),
        shares=shares,
        records=records,
        sensitive=sensitive_codes,
        sensitive_values=sensitive_values,
        units=units,
        column_loss=tuple(_column_sums(g, s, records) for g, s in zip(generalized, shares, strict=True)),
        column_entropy=tuple(_column_entropy(g, records) for g in generalized),
        column_ncp=tuple(
            _column_sums(g, _ncp_shares(s), records) for g, s in zip(generalized, shares, strict=True)
        ),
        present=tuple(np.array([len(np.unique(codes)) for codes in g]) for g in generalized),
    )


def _factorize(column: pd.Series) -> tuple[np.ndarray, tuple[str, ...]]:
    codes, uniques = pd.factorize(column.astype(str), sort=True)
    return codes.astype(np.int64), tuple(uniques)


def _encode_column(values: pd.Series, hierarchy: Hierarchy):
    if values.isna().any():
        raise HierarchyError(f"quasi-identifier '{hierarchy.column}' has null values; generalize them first")
    leaf = pd.Categorical(values.astype(str), categories=list(hierarchy.values)).codes.astype(np.int64)
    if (leaf < 0).any():
        raise HierarchyError(
            f"hierarchy '{hierarchy.column}' has no row for {int((leaf < 0).sum())} of the table's rows"
        )
    generalized, labels, shares = [], [], []
    domain = len(hierarchy.rows)
    for level in range(hierarchy.height + 1):
        names = [row[level] for row in hierarchy.rows]
        codes, uniques = pd.factorize(pd.Series(names))
        covered = hierarchy.leaves_under(level)
        generalized.append(codes.astype(np.int64)[leaf])
        labels.append(tuple(uniques))
        shares.append(np.array([covered[u] / domain for u in uniques]))
    return tuple(generalized), tuple(labels), tuple(shares)


def _ncp_shares(shares: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """NCP of a value: 0 for an original value, else the share of the domain it covers (Xu et al.)."""
    domain = len(shares[0])
    return tuple(np.where(np.rint(s * domain) <= 1, 0.0, s) for s in shares)


def _column_sums(generalized, per_value, records) -> np.ndarray:
    return np.array([float((records * v[g]).sum()) for g, v in zip(generalized, per_value, strict=True)])


def _column_entropy(generalized: tuple[np.ndarray, ...], records: np.ndarray) -> np.ndarray:
    """Per level: sum over records of -log2(records with the original value / records with its
    generalization). Depends on the column alone, so the search computes it once."""
    original = np.bincount(generalized[0], weights=records)[generalized[0]]
    result = []
    for codes in generalized:
        merged = np.bincount(codes, weights=records)[codes]
        result.append(float(-(records * np.log2(original / merged)).sum()))
    return np.array(result)


# --- equivalence classes -----------------------------------------------------


@dataclass(frozen=True)
class Grouping:
    """The equivalence classes of one transformation."""

    levels: tuple[int, ...]
    row_class: np.ndarray  # class of each frequency-table row; classes numbered by first row
    classes: ClassStats
    first_rows: np.ndarray  # each class's first frequency-table row (it holds the class's values)


def group(encoded: Encoded, levels: Sequence[int], base: Grouping | None = None) -> Grouping:
    """Classes of the transformation `levels` (one level per quasi-identifier, in encoded order).

    `base`, the grouping of a transformation no more general on any quasi-identifier, makes
    it a roll-up: its classes are merged (one entry per class, not per table row), which
    gives the same classes, numbered the same way, as grouping the table."""
    if base is None:
        key = _class_key(encoded, levels)
        row_class, uniques = pd.factorize(key)  # codes in order of first appearance
        records = np.bincount(row_class, weights=encoded.records, minlength=len(uniques))
        first_rows = _first_occurrences(row_class)
    else:
        merged, uniques = pd.factorize(_class_key(encoded, levels, base.first_rows))
        row_class = merged[base.row_class]  # base classes are numbered by first row: so are these
        records = np.bincount(merged, weights=base.classes.records, minlength=len(uniques))
        first_rows = base.first_rows[_first_occurrences(merged)]
    count = len(uniques)
    records = records.astype(np.int64)
    return Grouping(
        levels=tuple(levels),
        row_class=row_class,
        classes=ClassStats(
            records=records,
            size=records if encoded.units is None else _distinct_units(row_class, encoded.units, count),
            sensitive=None if encoded.sensitive is None else _histogram(encoded, row_class, count),
            overall=None
            if encoded.sensitive is None
            else _histogram(encoded, np.zeros_like(row_class), 1)[0],
            sensitive_values=encoded.sensitive_values,
        ),
        first_rows=first_rows,
    )


def _class_key(encoded: Encoded, levels: Sequence[int], rows: np.ndarray | None = None) -> np.ndarray:
    """One integer per table row (or per row of `rows`), equal exactly when their generalized values are."""
    key = np.zeros(len(encoded.records) if rows is None else len(rows), dtype=np.int64)
    radix = 1
    for qi, level in enumerate(levels):
        width = len(encoded.labels[qi][level])
        if radix * width >= _KEY_LIMIT:
            key, uniques = pd.factorize(key)
            radix = len(uniques)
        codes = encoded.generalized[qi][level]
        key = key * width + (codes if rows is None else codes[rows])
        radix *= width
    return key


def _first_occurrences(codes: np.ndarray) -> np.ndarray:
    """Where each code first appears, for codes numbered in order of first appearance."""
    return np.flatnonzero(np.diff(np.maximum.accumulate(codes), prepend=-1) > 0)


def _class_codes(encoded: Encoded, grouping: Grouping, qi: int) -> np.ndarray:
    """Each class's generalized value code on one quasi-identifier."""
    return encoded.generalized[qi][grouping.levels[qi]][grouping.first_rows]


def _distinct_units(row_class: np.ndarray, units: np.ndarray, count: int) -> np.ndarray:
    """Distinct units per class, exactly: distinct (class, unit) pairs counted per class.
    Summing per-combination distinct counts would count a unit twice when two of its
    combinations merge into one class."""
    width = int(units.max()) + 1
    pairs = pd.unique(row_class * width + units)
    return np.bincount(pairs // width, minlength=count)


def _histogram(encoded: Encoded, row_class: np.ndarray, count: int) -> np.ndarray:
    width = len(encoded.sensitive_values)
    cells = np.bincount(
        row_class * width + encoded.sensitive, weights=encoded.records, minlength=count * width
    )
    return cells.astype(np.int64).reshape(count, width)


def class_keys(encoded: Encoded, grouping: Grouping) -> list[tuple[str, ...]]:
    """The generalized quasi-identifier values of each class."""
    columns = [
        [encoded.labels[qi][level][code] for code in _class_codes(encoded, grouping, qi)]
        for qi, level in enumerate(grouping.levels)
    ]
    return list(zip(*columns, strict=True))


def suppressed_mask(encoded: Encoded, grouping: Grouping, suppressed: Iterable[Sequence[str]]) -> np.ndarray:
    """Which classes are suppressed, given their generalized values."""
    wanted = {tuple(str(v) for v in key) for key in suppressed}
    return np.array([key in wanted for key in class_keys(encoded, grouping)], dtype=bool)


# --- information loss --------------------------------------------------------


def loss_per_attribute(encoded: Encoded, grouping: Grouping, suppressed: np.ndarray) -> np.ndarray:
    """ARX's Loss per quasi-identifier (MetricMDNMLoss, after Iyengar 2002's generalization loss).

    A record's loss in attribute A is the share of A's domain its generalized
    value covers: leaves under the value / leaves of the hierarchy (ARX's
    DomainShareMaterialized), 1 when the record is suppressed. Summed over
    records and normalized as ARX does: (sum - N/|A|) / (N - N/|A|), so the
    original table scores 0 and full suppression 1.
    """
    records = grouping.classes.records  # a class's records share its values: sum per class
    result = []
    for qi, level in enumerate(grouping.levels):
        share = encoded.shares[qi][level][_class_codes(encoded, grouping, qi)]
        result.append(float((records * np.where(suppressed, 1.0, share)).sum()))
    return _normalize_loss(encoded, np.array(result))


def _normalize_loss(encoded: Encoded, sums: np.ndarray) -> np.ndarray:
    total = encoded.total
    lowest = np.array([total / encoded.domain_size(qi) for qi in range(len(sums))])
    span = np.where(total > lowest, total - lowest, 1.0)
    return np.maximum((sums - lowest) / span, 0.0)


def aggregate(values: np.ndarray, how: str = "geometric") -> float:
    """ARX's aggregate functions over attributes. The geometric mean adds 1 to every value and
    subtracts 1 from the result, as ARX's ILMultiDimensionalGeometricMean does, so a zero
    does not cancel the others."""
    if how not in _AGGREGATE_FUNCTIONS:
        raise ValueError(f"aggregate must be one of {AGGREGATES}, got {how!r}")
    return float(_AGGREGATE_FUNCTIONS[how](values))


def loss(encoded: Encoded, grouping: Grouping, suppressed: np.ndarray, how: str = "geometric") -> float:
    """ARX's Loss, aggregated over attributes (ARX's default: geometric mean)."""
    return aggregate(loss_per_attribute(encoded, grouping, suppressed), how)


def non_uniform_entropy(encoded: Encoded, grouping: Grouping, suppressed: np.ndarray) -> float:
    """Non-uniform entropy (De Waal & Willenborg 1999; Gionis & Tassa 2009), ARX's non-monotonic
    variant (MetricMDNUNMEntropyPrecomputed), summed over attributes (ARX's default).

    Per attribute: sum over all records of -log2(records with the original value
    / records with its generalized value), counting suppressed records too,
    plus for the suppressed records the entropy of their generalized values
    going to `*`: sum over generalized values g of -c_g log2(c_g / S), c_g the
    suppressed records with value g and S all suppressed records. Bits.
    """
    weights = np.where(suppressed, grouping.classes.records, 0)
    hidden = weights.sum()
    total = 0.0
    for qi, level in enumerate(grouping.levels):
        total += encoded.column_entropy[qi][level]
        if hidden:
            counts = np.bincount(_class_codes(encoded, grouping, qi), weights=weights)
            counts = counts[counts > 0]
            total -= float((counts * np.log2(counts / hidden)).sum())
    return total


def discernibility(encoded: Encoded, grouping: Grouping, suppressed: np.ndarray) -> float:
    """Discernibility (Bayardo & Agrawal 2005), ARX's MetricSDNMDiscernability: sum of squared
    class sizes, each suppressed record charged the table size N instead."""
    records = grouping.classes.records
    kept = records[~suppressed].astype(float)
    return float((kept**2).sum() + encoded.total * records[suppressed].sum())


def aecs(encoded: Encoded, grouping: Grouping, suppressed: np.ndarray) -> float:
    """Average equivalence class size (LeFevre et al. 2006), as ARX computes it (MetricSDAECS):
    N / (classes kept + 1 if any record is suppressed), the suppressed records forming one
    class. Like ARX, not divided by k (the paper's normalization only fits k-anonymity)."""
    groups = int((~suppressed).sum()) + int(suppressed.any())
    return encoded.total / groups


def ncp(encoded: Encoded, grouping: Grouping, suppressed: np.ndarray) -> float:
    """Normalized certainty penalty (Xu et al. 2006, KDD), averaged over records and attributes
    as Ghinita et al. 2007's GCP does, in [0, 1]. A generalized value covering u of the
    attribute's |A| leaves costs u/|A|, an original value 0, a suppressed record 1. Not an ARX
    metric (ARX's closest is Loss, which charges an original value 1/|A|)."""
    records = grouping.classes.records
    total = 0.0
    for qi, level in enumerate(grouping.levels):
        cost = _ncp_shares(encoded.shares[qi])[level][_class_codes(encoded, grouping, qi)]
        total += float((records * np.where(suppressed, 1.0, cost)).sum())
    return total / (encoded.total * len(grouping.levels))


def metric_value(
    metric: str, encoded: Encoded, grouping: Grouping, suppressed: np.ndarray, how: str = "geometric"
) -> float:
    if metric == "loss":
        return loss(encoded, grouping, suppressed, how)
    functions = {"entropy": non_uniform_entropy, "discernibility": discernibility, "aecs": aecs, "ncp": ncp}
    if metric not in functions:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    return functions[metric](encoded, grouping, suppressed)


def generalization_bound(
    metric: str, encoded: Encoded, levels: Sequence[int], how: str = "geometric"
) -> float:
    """A lower bound of loss, entropy or NCP from the column marginals alone: the value with
    no record suppressed. Suppression only adds to these metrics (a suppressed record costs
    the maximum), so the bound holds for every suppression the node may need."""
    if metric == "loss":
        sums = np.array([encoded.column_loss[qi][level] for qi, level in enumerate(levels)])
        return aggregate(_normalize_loss(encoded, sums), how)
    if metric == "entropy":
        return float(sum(encoded.column_entropy[qi][level] for qi, level in enumerate(levels)))
    if metric == "ncp":
        total = sum(encoded.column_ncp[qi][level] for qi, level in enumerate(levels))
        return float(total / (encoded.total * len(levels)))
    raise ValueError(f"no marginal bound for metric {metric!r}")


def class_count_bound(encoded: Encoded, levels: Sequence[int]) -> int:
    """At most this many classes: the product of the distinct generalized values present,
    and never more than the frequency table's rows."""
    bound = len(encoded.records)
    product = 1
    for qi, level in enumerate(levels):
        product *= int(encoded.present[qi][level])
        if product >= bound:
            return bound
    return product


@dataclass(frozen=True)
class InformationLoss:
    loss: float  # ARX Loss, geometric mean over attributes
    loss_per_attribute: dict[str, float]
    entropy: float  # bits, summed over attributes
    discernibility: float
    aecs: float
    ncp: float


def information_loss(
    frequency: pd.DataFrame,
    hierarchies: Mapping[str, Hierarchy],
    levels: Mapping[str, int],
    suppressed: Iterable[Sequence[str]] = (),
    unit: str | None = None,
) -> InformationLoss:
    """Every metric of the transformation `levels` (quasi-identifier -> level) with the classes
    `suppressed` (their generalized values, in the order of `levels`) suppressed."""
    encoded = encode(frequency, hierarchies, list(levels), unit=unit)
    grouping = group(encoded, list(levels.values()))
    mask = suppressed_mask(encoded, grouping, suppressed)
    per_attribute = loss_per_attribute(encoded, grouping, mask)
    return InformationLoss(
        loss=aggregate(per_attribute),
        loss_per_attribute=dict(zip(levels, per_attribute.tolist(), strict=True)),
        entropy=non_uniform_entropy(encoded, grouping, mask),
        discernibility=discernibility(encoded, grouping, mask),
        aecs=aecs(encoded, grouping, mask),
        ncp=ncp(encoded, grouping, mask),
    )


# --- re-identification risk --------------------------------------------------


@dataclass(frozen=True)
class AttackerRisk:
    highest: float  # the largest probability of re-identifying one record
    average: float  # ARX's success rate: share of records re-identified on average
    records_at_risk: float  # share of records whose risk exceeds the threshold


@dataclass(frozen=True)
class Risk:
    prosecutor: AttackerRisk
    journalist: AttackerRisk
    marketer: float  # share of records a marketer re-identifies on average
    threshold: float


def risk_of_classes(
    records: np.ndarray, sample_size: np.ndarray, population_size: np.ndarray, threshold: float
) -> Risk:
    """Risk of the released (not suppressed) classes, as ARX's RiskModelSampleSummary computes it
    after El Emam's "Guide to the De-Identification of Personal Health Information".

    A record in class j is re-identified with probability 1/s_j by a prosecutor
    (who knows the person is in the data; s_j the class size in the data) and
    1/F_j by a journalist (who does not; F_j the matching class size in the
    population). Highest: 1/min s (1/min F). Records at risk: share of records
    whose probability is strictly above `threshold`. Average: the prosecutor's
    is the mean over records of 1/s_j, which is ARX's classes / records when
    sizes count records; the journalist's is ARX's max(classes / sum_j F_j,
    sum_j f_j/F_j / n); the marketer's is sum_j f_j/F_j / n (f_j records of
    class j, n released records). Suppressed records are left out, as in ARX.
    With a unit column sizes count units (subscribers) and f_j stays records.
    """
    released = records.sum()
    if released == 0:
        return Risk(AttackerRisk(0.0, 0.0, 0.0), AttackerRisk(0.0, 0.0, 0.0), 0.0, threshold)
    per_person = (records / population_size).sum() / released

    def summary(size: np.ndarray, average: float) -> AttackerRisk:
        at_risk = records[1.0 / size > threshold].sum() / released
        return AttackerRisk(float(1.0 / size.min()), float(average), float(at_risk))

    prosecutor = summary(sample_size, (records / sample_size).sum() / released)
    journalist = summary(population_size, max(len(records) / population_size.sum(), per_person))
    return Risk(prosecutor, journalist, float(per_person), threshold)


def reidentification_risk(
    frequency: pd.DataFrame,
    hierarchies: Mapping[str, Hierarchy],
    levels: Mapping[str, int],
    *,
    threshold: float,
    suppressed: Iterable[Sequence[str]] = (),
    population: pd.DataFrame | None = None,
    unit: str | None = None,
) -> Risk:
    """Prosecutor, journalist and marketer risk of the transformation `levels` with `suppressed`
    classes removed (see `risk_of_classes` for the definitions).

    `population` is a frequency table of the population the data was drawn from,
    with the same quasi-identifiers (and unit column, when given). Without it the
    original table is the population, as ARX does when no superset is defined:
    each released class then has the same size in both, so journalist risk
    equals prosecutor risk and the marketer's equals the prosecutor's average.
    """
    qis = list(levels)
    encoded = encode(frequency, hierarchies, qis, unit=unit)
    grouping = group(encoded, list(levels.values()))
    kept = ~suppressed_mask(encoded, grouping, suppressed)
    sample_size = grouping.classes.size[kept]
    population_size = sample_size
    if population is not None:
        population_size = _population_sizes(encoded, grouping, population, hierarchies, levels, unit)[kept]
    return risk_of_classes(grouping.classes.records[kept], sample_size, population_size, threshold)


def _population_sizes(encoded, grouping, population, hierarchies, levels, unit) -> np.ndarray:
    wider = encode(population, hierarchies, list(levels), unit=unit)
    wider_grouping = group(wider, list(levels.values()))
    sizes = dict(zip(class_keys(wider, wider_grouping), wider_grouping.classes.size.tolist(), strict=True))
    keys = class_keys(encoded, grouping)
    if any(key not in sizes for key in keys):
        raise ValueError("the population lacks classes of the data; it must contain the data")
    return np.array([sizes[key] for key in keys], dtype=float)
