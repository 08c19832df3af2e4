"""The fast Mondrian cut on numbers (`core.kanon.mondrian`) against a plain one written here.

The reference cuts one partition at a time, recursively, on the records themselves (a
weighted row repeated `weights` times), by the rule as documented: the widest allowed QI,
its lower median, a cut kept only when every child holds k units. The fast code must give
the same classes (numbered as it numbers them), each class's box the exact minimum and
maximum of its rows, and the same cuts for sampled partitions, on random small tables
whose ranks take every path: small whole numbers (counted), fractions and wide whole
numbers (sorted), hierarchies with a few children and with thousands.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.kanon.hierarchy import from_mapping
from core.kanon.mondrian import (
    Domain,
    Rules,
    box_label_numbers,
    box_labels,
    box_widths,
    hierarchy_domain,
    lca_level,
    mondrian_classes,
    mondrian_partition,
    ordered_domain,
    propose_cuts,
)

REGIONS = from_mapping(
    "city",
    [
        ("Seoul", "Capital", "*"),
        ("Incheon", "Capital", "*"),
        ("Suwon", "Capital", "*"),
        ("Busan", "South", "*"),
        ("Ulsan", "South", "*"),
        ("Daegu", "Inland", "*"),
        ("Daejeon", "Inland", "*"),
        ("Sejong", "Inland", "*"),
        ("Jeju", "Island", "*"),
    ],
)
MANY_LEAVES = from_mapping("code", [(f"c{i}", "*") for i in range(3000)])


# --- the reference: one partition at a time, on the records ------------------------------------------


def lower_median(values: np.ndarray) -> float:
    return float(np.sort(values)[(len(values) - 1) // 2])


def reference_cut(values: np.ndarray, lo: float, hi: float, balanced: bool) -> float:
    """The cut rule on one partition's records (`values`: their ranks, repeated as weighted)."""
    if not len(values):
        return lo + (hi - lo) / 2 if balanced else hi
    median = lower_median(values)
    below = values[values < median]
    if not balanced:
        return median if median < hi else hi
    if median < hi and (
        not len(below) or abs((values <= median).sum() - len(values) / 2) <= abs(len(below) - len(values) / 2)
    ):
        return median
    return float(below.max()) if len(below) else lo + (hi - lo) / 2


def units_of(records: np.ndarray, units: np.ndarray | None) -> int:
    return len(records) if units is None else len(set(units[records][units[records] >= 0]))


def reference_classes(ranks, units, rules: Rules) -> list[frozenset[int]]:
    """Strict Mondrian, recursively: each class as the set of its records."""
    classes = []

    def cut(records: np.ndarray, allowed: np.ndarray) -> None:
        lo, hi = ranks[records].min(axis=0), ranks[records].max(axis=0)
        widths = np.where(allowed, box_widths(rules.domains, lo[None], hi[None])[0], 0.0)
        if units_of(records, units) < 2 * rules.k or widths.max() <= 0:
            classes.append(frozenset(records.tolist()))
            return
        j = int(widths.argmax())
        dom, values = rules.domains[j], ranks[records, j]
        if dom.kind == "hierarchy":
            level = lca_level(dom, lo[j : j + 1], hi[j : j + 1])[0]
            sides = dom.ancestors[level - 1, values.astype(int)]
        else:
            sides = values > reference_cut(values, lo[j], hi[j], rules.balanced)
        children = [records[sides == side] for side in np.unique(sides)]
        if len(children) >= 2 and all(units_of(child, units) >= rules.k for child in children):
            for child in children:
                cut(child, np.ones_like(allowed))
        else:
            cut(records, np.where(np.arange(len(allowed)) == j, False, allowed))

    if len(ranks):
        cut(np.arange(len(ranks)), np.ones(ranks.shape[1], dtype=bool))
    return sorted(classes, key=min)


def as_sets(classes: np.ndarray) -> list[frozenset[int]]:
    return sorted((frozenset(np.flatnonzero(classes == c).tolist()) for c in np.unique(classes)), key=min)


# --- random tables -----------------------------------------------------------------------------------


def random_table(seed: int, rows: int, kinds: tuple[str, ...]) -> tuple[np.ndarray, tuple[Domain, ...]]:
    """Distinct rows of ranks, one column per kind, and their domains."""
    rng = np.random.default_rng(seed)
    columns, domains = [], []
    for kind in kinds:
        if kind == "small":  # whole numbers in a short range: histogram medians
            column = rng.integers(18, 40, rows).astype(float)
        elif kind == "fraction":  # not whole: medians by sorting
            column = rng.choice([-2.5, -0.25, 0.0, 0.75, 1.5, 3.125, 40.0], rows)
        elif kind == "wide":  # whole but far apart: too many cells, sorted too
            column = rng.integers(0, 12, rows) * 1_000_003.0
        elif kind == "ordered":
            column = rng.integers(0, 5, rows).astype(float)
        elif kind == "regions":
            column = rng.integers(0, len(REGIONS.rows), rows).astype(float)
        else:  # "many": a few leaves at both ends of a flat hierarchy of thousands
            column = rng.choice(np.r_[0:5, 2995:3000], rows).astype(float)
        columns.append(column)
        if kind == "ordered":
            domains.append(ordered_domain(("a", "b", "c", "d", "e")))
        elif kind in ("regions", "many"):
            domains.append(hierarchy_domain(REGIONS if kind == "regions" else MANY_LEAVES))
        else:
            domains.append(Domain("numeric", column.min(), column.max(), integral=kind != "fraction"))
    return np.unique(np.column_stack(columns), axis=0), tuple(domains)


TABLES = [
    (1, 300, ("small", "ordered", "regions")),
    (2, 400, ("fraction", "small")),
    (3, 250, ("wide", "regions", "ordered")),
    (4, 500, ("small", "small", "ordered", "fraction")),
    (5, 200, ("many", "small")),
    (6, 150, ("many", "ordered")),
    (7, 1, ("small", "regions")),
]


@pytest.mark.parametrize("balanced", [False, True])
@pytest.mark.parametrize(("seed", "rows", "kinds"), TABLES)
def test_weighted_classes_equal_the_reference_on_the_records(seed, rows, kinds, balanced):
    table, domains = random_table(seed, rows, kinds)
    weights = np.random.default_rng(seed + 100).integers(1, 6, len(table))
    records = np.repeat(np.arange(len(table)), weights)  # the table row behind each record
    for k in (2, 5):
        rules = Rules(domains, k, balanced)
        weighted = mondrian_classes(table, None, rules, weights=weights)
        on_records = mondrian_classes(table[records], None, rules)
        # The documented property: the same cuts, numbered the same, as the repeated rows.
        np.testing.assert_array_equal(on_records, weighted[records])
        assert as_sets(on_records) == reference_classes(table[records], None, rules)
        assert sorted(np.unique(weighted)) == list(range(weighted.max() + 1))


@pytest.mark.parametrize(("seed", "rows", "kinds"), TABLES)
def test_each_class_box_is_its_rows_minimum_and_maximum(seed, rows, kinds):
    table, domains = random_table(seed, rows, kinds)
    weights = np.random.default_rng(seed).integers(1, 4, len(table))
    partition = mondrian_partition(table, None, Rules(domains, 3, True), weights=weights)
    by_class = pd.DataFrame(table).groupby(partition.classes, sort=True)
    np.testing.assert_array_equal(partition.lo, by_class.min().to_numpy())
    np.testing.assert_array_equal(partition.hi, by_class.max().to_numpy())


@pytest.mark.parametrize("balanced", [False, True])
@pytest.mark.parametrize(("seed", "rows", "kinds"), TABLES[:5])
def test_classes_in_units_equal_the_reference(seed, rows, kinds, balanced):
    table, domains = random_table(seed, rows, kinds)
    rng = np.random.default_rng(seed + 200)
    units = rng.integers(-1, len(table) // 2, len(table))  # about two rows per unit, some null
    rules = Rules(domains, 3, balanced)
    classes = mondrian_classes(table, units, rules)
    assert as_sets(classes) == reference_classes(table, units, rules)


@pytest.mark.parametrize("balanced", [False, True])
@pytest.mark.parametrize(("seed", "rows", "kinds"), TABLES[:4])
def test_cuts_from_a_sample_follow_the_rule(seed, rows, kinds, balanced):
    """The Spark rounds' use: a sample per partition, exact boxes; a partition the sample
    missed is cut at its midpoint (balanced) or not at all."""
    table, domains = random_table(seed, rows, kinds)
    rng = np.random.default_rng(seed + 300)
    groups = rng.integers(0, 8, len(table))
    lo = pd.DataFrame(table).groupby(groups).min().to_numpy()
    hi = pd.DataFrame(table).groupby(groups).max().to_numpy()
    sample = (rng.random(len(table)) < 0.4) & (groups != 3)
    rules = Rules(domains, 2, balanced)
    allowed = np.ones(lo.shape, dtype=bool)
    dim, cut = propose_cuts(table[sample], groups[sample], lo, hi, allowed, rules)
    np.testing.assert_array_equal(dim, box_widths(domains, lo, hi).argmax(axis=1))
    for g, j in enumerate(dim):
        if domains[j].kind == "hierarchy":
            assert np.isnan(cut[g])
            continue
        values = table[sample & (groups == g), j]
        assert cut[g] == reference_cut(values, lo[g, j], hi[g, j], balanced), g


def test_weights_must_count_records():
    table, domains = random_table(1, 20, ("small",))
    with pytest.raises(ValueError, match="at least one"):
        mondrian_classes(table, None, Rules(domains, 2, True), weights=np.zeros(len(table), dtype=np.int64))
    with pytest.raises(ValueError, match="units"):
        units = np.zeros(len(table), dtype=np.int64)
        mondrian_classes(table, units, Rules(domains, 2, True), weights=np.ones(len(table)))


def test_label_numbers_equal_factorized_labels():
    """Boxes that read the same (a hierarchy's node from different leaf ranges) share a number."""
    rng = np.random.default_rng(9)
    dom = hierarchy_domain(REGIONS)
    ends = np.sort(rng.integers(0, len(REGIONS.rows), (400, 2)), axis=1).astype(float)
    numbers, labels = box_label_numbers(dom, ends[:, 0], ends[:, 1])
    expected_numbers, expected_labels = pd.factorize(box_labels(dom, ends[:, 0], ends[:, 1]))
    np.testing.assert_array_equal(numbers, expected_numbers)
    np.testing.assert_array_equal(labels, expected_labels)
    assert len(labels) < len(np.unique(ends, axis=0))
