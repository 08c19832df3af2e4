"""Privacy models, evaluated per equivalence class of a generalized frequency table.

Each model answers, for every class at once, whether the class satisfies it
(`satisfied(classes) -> bool array`), and whether it is monotone under
generalization (`monotone(suppression_limit)`): if a transformation satisfies
the model, does every more general one? The lattice search prunes with that
answer, so a wrong `True` would make it miss the optimum.

Generalization merges classes. Without suppression every model here is
monotone (Machanavajjhala et al. 2007 prove it for the l-diversity variants,
Li et al. 2007 for t-closeness; for k-anonymity it is immediate). With a
suppression limit only k-anonymity and distinct l-diversity stay monotone: a
merged class fails them only if all its parts failed, so the suppressed
records can only shrink. Entropy and recursive l-diversity and t-closeness
can merge a passing class into a failing one. This is also how ARX flags its
criteria (`monotonic` is true for KAnonymity and DistinctLDiversity only).

Sensitive-value histograms count records, as ARX does; k counts what
`ClassStats.size` holds: distinct units (subscribers) when the frequency
table has a unit column, records otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np

from core.errors import KrReportsError

# Floating-point slack for threshold comparisons: a class whose entropy is
# exactly log2(l) must not fail by one rounding error.
TOLERANCE = 1e-9


class KAnonymityError(KrReportsError, ValueError):
    """A table that cannot be made k-anonymous as asked: bad input, no anonymous
    transformation, or an output with a class smaller than k (counts only, never values)."""


@dataclass(frozen=True)
class ClassStats:
    """What the models read about the equivalence classes of one transformation (one entry per class)."""

    records: np.ndarray  # records per class
    size: np.ndarray  # what k counts: distinct units when a unit column is given, else records
    sensitive: np.ndarray | None = None  # (classes, sensitive values): records per value
    overall: np.ndarray | None = None  # records per sensitive value in the whole table
    sensitive_values: tuple[str, ...] = ()


class PrivacyModel(Protocol):
    def satisfied(self, classes: ClassStats) -> np.ndarray: ...

    def monotone(self, suppression_limit: float) -> bool: ...


def _histogram(classes: ClassStats) -> np.ndarray:
    if classes.sensitive is None:
        raise ValueError("this privacy model needs a sensitive attribute in the frequency table")
    return classes.sensitive


def _distinct(histogram: np.ndarray) -> np.ndarray:
    return (histogram > 0).sum(axis=1)


class _Model:
    """Monotone under generalization; with suppression only where the model says so."""

    monotone_with_suppression: ClassVar[bool] = False

    def monotone(self, suppression_limit: float) -> bool:
        return suppression_limit == 0 or self.monotone_with_suppression


@dataclass(frozen=True)
class KAnonymity(_Model):
    """Every class holds at least k units (Sweeney 2002); units are subscribers when given."""

    k: int
    monotone_with_suppression: ClassVar[bool] = True

    def satisfied(self, classes: ClassStats) -> np.ndarray:
        return classes.size >= self.k


@dataclass(frozen=True)
class DistinctLDiversity(_Model):
    """At least l distinct sensitive values per class (Machanavajjhala et al. 2007; ARX)."""

    l: int  # noqa: E741 - the model's name for it
    monotone_with_suppression: ClassVar[bool] = True

    def satisfied(self, classes: ClassStats) -> np.ndarray:
        return _distinct(_histogram(classes)) >= self.l


@dataclass(frozen=True)
class EntropyLDiversity(_Model):
    """Entropy of the class's sensitive values >= log2(l) (Machanavajjhala et al. 2007).

    Base 2 and the extra requirement of ceil(l) distinct values as in ARX (the
    entropy bound implies it; the check keeps the tolerance from loosening it).
    """

    l: float  # noqa: E741

    def satisfied(self, classes: ClassStats) -> np.ndarray:
        histogram = _histogram(classes).astype(float)
        share = histogram / histogram.sum(axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            entropy = -np.where(share > 0, share * np.log2(share), 0.0).sum(axis=1)
        return (entropy >= math.log2(self.l) - TOLERANCE) & (_distinct(histogram) >= math.ceil(self.l))


@dataclass(frozen=True)
class RecursiveCLDiversity(_Model):
    """Recursive (c,l)-diversity (Machanavajjhala et al. 2007): with the class's value counts
    sorted r1 >= r2 >= ... >= rm, r1 < c * (r_l + ... + r_m); fewer than l values fail.
    ARX checks the same strict inequality."""

    c: float
    l: int  # noqa: E741

    def satisfied(self, classes: ClassStats) -> np.ndarray:
        histogram = _histogram(classes)
        ranked = -np.sort(-histogram, axis=1)
        tail = ranked[:, self.l - 1 :].sum(axis=1)  # empty (0) when there are fewer than l columns
        return (_distinct(histogram) >= self.l) & (ranked[:, 0] < self.c * tail)


def _class_distribution(classes: ClassStats) -> tuple[np.ndarray, np.ndarray]:
    histogram = _histogram(classes).astype(float)
    if classes.overall is None:
        raise ValueError("t-closeness needs the sensitive distribution of the whole table")
    overall = classes.overall / classes.overall.sum()
    return histogram / histogram.sum(axis=1, keepdims=True), overall


@dataclass(frozen=True)
class EqualDistanceTCloseness(_Model):
    """Earth mover's distance with equal ground distance between the class's sensitive distribution P
    and the whole table's Q is at most t: 1/2 * sum_i |p_i - q_i| (Li, Li, Venkatasubramanian 2007;
    ARX's EqualDistanceTCloseness). Q counts every record, suppressed or not, as in ARX."""

    t: float

    def satisfied(self, classes: ClassStats) -> np.ndarray:
        within, overall = _class_distribution(classes)
        return 0.5 * np.abs(within - overall).sum(axis=1) <= self.t + TOLERANCE


@dataclass(frozen=True)
class OrderedDistanceTCloseness(_Model):
    """Ordered-distance EMD at most t (Li et al. 2007): with the m sensitive values in their order,
    1/(m-1) * sum_i |sum_{j<=i} (p_j - q_j)|, as ARX's OrderedDistanceTCloseness computes it.

    `order` lists the sensitive values from lowest to highest; by default they
    are sorted as numbers when they all parse as numbers, else as text. ARX
    takes the order from the attribute's data type, which this default
    mirrors for numbers and plain strings only.
    """

    t: float
    order: tuple[str, ...] | None = None

    def satisfied(self, classes: ClassStats) -> np.ndarray:
        within, overall = _class_distribution(classes)
        position = _ordering(classes.sensitive_values, self.order)
        steps = np.cumsum(within[:, position] - overall[position], axis=1)
        distance = np.abs(steps).sum(axis=1) / max(len(position) - 1, 1)
        return distance <= self.t + TOLERANCE


def _ordering(values: Sequence[str], order: Sequence[str] | None) -> np.ndarray:
    """Indexes of `values` from lowest to highest."""
    if order is None:
        order = sorted(values, key=_number_or_text(values))
    missing = set(values) - set(order)
    if missing:
        raise ValueError(f"the given order lacks {len(missing)} of the sensitive attribute's values")
    index = {value: i for i, value in enumerate(values)}
    return np.array([index[v] for v in order if v in index], dtype=int)


def _number_or_text(values: Sequence[str]):
    try:
        [float(v) for v in values]
    except ValueError:
        return str
    return float


def failing(models: Sequence[PrivacyModel], classes: ClassStats) -> np.ndarray:
    """Classes that fail at least one model (the candidates for suppression)."""
    passing = np.ones(len(classes.records), dtype=bool)
    for model in models:
        passing &= model.satisfied(classes)
    return ~passing


def monotone(models: Sequence[PrivacyModel], suppression_limit: float) -> bool:
    return all(model.monotone(suppression_limit) for model in models)
