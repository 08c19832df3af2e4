"""Optimal full-domain generalization with a suppression limit, searched on a frequency table.

A transformation picks one hierarchy level per quasi-identifier; together they
form a lattice (a node's successors raise one level by one). A node is
anonymous when the classes failing the privacy models hold at most
`suppression_limit` x all records (ARX's semantics: the limit is a share of
all records); those classes are then suppressed. The search returns the
anonymous node with the least information loss under the chosen metric.

`search_optimal` works in two phases.

1. Classification, after Flash (Kohlmayer et al. 2012, "Flash: efficient,
   stable and optimal k-anonymity", the algorithm ARX uses): nodes are taken
   bottom-up; from an unclassified node a path is walked upwards through
   unclassified successors and binary-searched. A checked node that is
   anonymous makes all its successors anonymous, one that is not makes all
   its predecessors not anonymous (predictive tagging). That needs models
   that are monotone under the given suppression limit (see
   `core.kanon.models`); otherwise every node is checked.
2. Optimum. With suppression the metrics are not monotone (a more general
   node may suppress fewer records and lose less), so the optimum need not be
   a minimal anonymous node: every anonymous node is a candidate. Candidates
   are visited in order of a lower bound of their metric, and the visit stops
   at the first bound that is not below the best value found, so only nodes
   that could still win are grouped again. Bounds: for loss, entropy and NCP
   the node's value with nothing suppressed, from column marginals alone;
   for discernibility and AECS the monotone quantities sum of squared class
   sizes (DM*) and class count, taken from checked predecessors or bounded
   by the product of distinct values. ARX bounds its search the same way
   (lower bounds of information loss); the result is exact, up to
   floating-point rounding in ties.

`search_exhaustive` checks and scores every node; the tests compare the two.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.kanon.hierarchy import Hierarchy
from core.kanon.metrics import (
    METRICS,
    Encoded,
    Grouping,
    class_count_bound,
    class_keys,
    encode,
    generalization_bound,
    group,
    metric_value,
)
from core.kanon.models import PrivacyModel, failing, monotone

Node = tuple[int, ...]

# A suppression limit of 0.29 x 100 records must allow 29, not 28 (0.29 * 100 = 28.999...).
_LIMIT_SLACK = 1e-9
# Recent groupings kept for roll-ups: up to 256, and at most about 64 MB of class numbers.
_KEPT_GROUPINGS = 256
_KEPT_INTEGERS = 8_000_000


@dataclass(frozen=True)
class Transformation:
    """One generalization level per quasi-identifier."""

    quasi_identifiers: tuple[str, ...]
    levels: tuple[int, ...]

    @property
    def by_column(self) -> dict[str, int]:
        return dict(zip(self.quasi_identifiers, self.levels, strict=True))


@dataclass(frozen=True)
class SearchResult:
    transformation: Transformation | None  # None when no node is anonymous
    metric: str
    value: float | None
    suppressed: tuple[tuple[str, ...], ...]  # generalized values of the suppressed classes
    suppressed_records: int
    nodes_total: int
    nodes_checked: int  # nodes whose anonymity was computed
    nodes_pruned: int  # nodes classified by predictive tagging, never checked
    metric_evaluations: int  # nodes grouped again in phase 2 for their exact metric (re-scored)
    anonymous: tuple[Node, ...]  # every anonymous node, in lattice order
    values: Mapping[Node, float]  # exact metric of the anonymous nodes that were scored


@dataclass(frozen=True)
class _Check:
    anonymous: bool
    grouping: Grouping
    suppressed: np.ndarray  # per class: failing, hence suppressed when the node is anonymous


class _Groupings:
    """Groupings of recently checked nodes, so a node's classes roll up from a less general
    node's (one entry per class) instead of being grouped from every table row again."""

    def __init__(self, encoded: Encoded) -> None:
        self.encoded = encoded
        size = max(4, min(_KEPT_GROUPINGS, _KEPT_INTEGERS // max(1, len(encoded.records))))
        self.nodes = np.full((size, len(encoded.heights)), np.iinfo(np.int64).max)  # empty slots
        self.classes = np.zeros(size, dtype=np.int64)
        self.groupings: list[Grouping | None] = [None] * size
        self.next = 0  # the slot to fill next (the oldest)

    def __call__(self, node: Node) -> Grouping:
        below = np.flatnonzero((self.nodes <= np.array(node)).all(axis=1))
        base = self.groupings[below[np.argmin(self.classes[below])]] if len(below) else None
        grouping = group(self.encoded, node, base)
        slot = self.next
        self.nodes[slot], self.classes[slot], self.groupings[slot] = node, len(grouping.first_rows), grouping
        self.next = (slot + 1) % len(self.groupings)
        return grouping


def _check(
    encoded: Encoded, node: Node, models: Sequence[PrivacyModel], allowed: int, grouped=None
) -> _Check:
    grouping = group(encoded, node) if grouped is None else grouped(node)
    fails = failing(models, grouping.classes)
    return _Check(int(grouping.classes.records[fails].sum()) <= allowed, grouping, fails)


def _allowed(encoded: Encoded, suppression_limit: float) -> int:
    if not 0 <= suppression_limit <= 1:
        raise ValueError(f"suppression_limit must be in [0, 1], got {suppression_limit}")
    return math.floor(suppression_limit * encoded.total + _LIMIT_SLACK)


# --- the lattice ---------------------------------------------------------------


@functools.lru_cache(maxsize=1 << 16)
def _relative(node: Node, heights: tuple[int, ...]) -> float:
    return sum(level / height for level, height in zip(node, heights, strict=True) if height)


def _lattice(heights: Sequence[int]) -> list[Node]:
    """All nodes, bottom-up: by sum of levels, then by relative generalization."""
    nodes = itertools.product(*(range(h + 1) for h in heights))
    return sorted(nodes, key=lambda n: (sum(n), _relative(n, heights), n))


def _successors(node: Node, heights: Sequence[int]) -> Iterator[Node]:
    for i, level in enumerate(node):
        if level < heights[i]:
            yield (*node[:i], level + 1, *node[i + 1 :])


def _predecessors(node: Node, heights: Sequence[int]) -> Iterator[Node]:
    for i, level in enumerate(node):
        if level > 0:
            yield (*node[:i], level - 1, *node[i + 1 :])


def _tag(node: Node, anonymous: bool, heights: Sequence[int], state: dict[Node, bool]) -> None:
    """Predictive tagging: successors of an anonymous node are anonymous, predecessors of a
    node that is not are not. A node already tagged has its whole closure tagged."""
    step = _successors if anonymous else _predecessors
    stack = [node]
    while stack:
        for other in step(stack.pop(), heights):
            if other not in state:
                state[other] = anonymous
                stack.append(other)


def _path_up(start: Node, heights: Sequence[int], state: Mapping[Node, bool]) -> list[Node]:
    """From `start` upwards through unclassified nodes, preferring the least generalized."""
    path = [start]
    while True:
        open_successors = [n for n in _successors(path[-1], heights) if n not in state]
        if not open_successors:
            return path
        path.append(min(open_successors, key=lambda n: (_relative(n, heights), n)))


# --- phase 1: which nodes are anonymous ---------------------------------------------


@dataclass
class _Facts:
    """What checking a node taught: its anonymity, its class count and DM*, its metric."""

    checked: set[Node]
    state: dict[Node, bool]
    classes: dict[Node, int]
    dm_star: dict[Node, float]
    values: dict[Node, float]


def _classify(
    nodes: Sequence[Node],
    heights: Sequence[int],
    check: Callable[[Node], _Check],
    score: Callable[[_Check], float],
    predictive: bool,
) -> _Facts:
    facts = _Facts(set(), {}, {}, {}, {})

    def visit(node: Node) -> bool:
        result = check(node)
        facts.state[node] = result.anonymous
        facts.classes[node] = len(result.grouping.classes.records)
        facts.dm_star[node] = float((result.grouping.classes.records.astype(float) ** 2).sum())
        if result.anonymous:
            facts.values[node] = score(result)
        facts.checked.add(node)  # keep facts, not the class arrays: a lattice of those would not fit
        if predictive:
            _tag(node, result.anonymous, heights, facts.state)
        return result.anonymous

    for start in nodes:
        if start in facts.state:
            continue
        if not predictive:
            visit(start)
            continue
        path = _path_up(start, heights, facts.state)
        low, high = 0, len(path) - 1
        while low <= high:  # anonymity is monotone along the path: binary search its lowest point
            middle = (low + high) // 2
            if visit(path[middle]):
                high = middle - 1
            else:
                low = middle + 1
    return facts


# --- phase 2: the optimum ------------------------------------------------------


def _bounds(
    metric: str, encoded: Encoded, nodes: Sequence[Node], anonymous: Sequence[Node], facts: _Facts, how: str
) -> dict[Node, float]:
    """A lower bound of `metric` for every anonymous node (exact where the node was scored)."""
    if metric in ("loss", "entropy", "ncp"):
        return {n: generalization_bound(metric, encoded, n, how) for n in anonymous}
    heights = encoded.heights
    total = float(encoded.total)
    classes: dict[Node, int] = {}
    dm_star: dict[Node, float] = {}
    for node in nodes:  # bottom-up, so predecessors come first
        if node in facts.classes:
            classes[node], dm_star[node] = facts.classes[node], facts.dm_star[node]
            continue
        # Generalization merges classes: their count never grows, DM* never shrinks.
        before = list(_predecessors(node, heights))
        classes[node] = min([class_count_bound(encoded, node), *(classes[p] for p in before)])
        dm_star[node] = max([total * total / classes[node], *(dm_star[p] for p in before)])
    if metric == "discernibility":
        return {n: dm_star[n] for n in anonymous}  # a suppressed record costs N >= its class size
    return {n: total / classes[n] for n in anonymous}  # AECS divides N by at most the class count


@dataclass(frozen=True)
class _Problem:
    encoded: Encoded
    nodes: list[Node]
    check: Callable[[Node], _Check]
    score: Callable[[_Check], float]


def _problem(
    frequency, hierarchies, quasi_identifiers, models, suppression_limit, metric, sensitive, unit, how
):
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    encoded = encode(frequency, hierarchies, quasi_identifiers, sensitive, unit)
    return _Problem(
        encoded=encoded,
        nodes=_lattice(encoded.heights),
        check=functools.partial(
            _check,
            encoded,
            models=models,
            allowed=_allowed(encoded, suppression_limit),
            grouped=_Groupings(encoded),
        ),
        score=lambda result: metric_value(metric, encoded, result.grouping, result.suppressed, how),
    )


def search_optimal(
    frequency: pd.DataFrame,
    hierarchies: Mapping[str, Hierarchy],
    quasi_identifiers: Sequence[str],
    models: Sequence[PrivacyModel],
    suppression_limit: float,
    metric: str = "loss",
    *,
    sensitive: str | None = None,
    unit: str | None = None,
    aggregate: str = "geometric",
) -> SearchResult:
    """The anonymous transformation with the least `metric` (see the module docstring).

    `frequency` is `transforms.kanon.full_domain.frequency_table`'s output; give the same
    `sensitive` and `unit` columns it was built with (l-diversity and
    t-closeness need the sensitive one; with `unit`, k counts distinct units).
    `aggregate` combines Loss over attributes (ARX's default: geometric mean).
    """
    problem = _problem(
        frequency,
        hierarchies,
        quasi_identifiers,
        models,
        suppression_limit,
        metric,
        sensitive,
        unit,
        aggregate,
    )
    predictive = monotone(models, suppression_limit)
    facts = _classify(problem.nodes, problem.encoded.heights, problem.check, problem.score, predictive)
    anonymous = [n for n in problem.nodes if facts.state[n]]
    bounds = _bounds(metric, problem.encoded, problem.nodes, anonymous, facts, aggregate)
    values = dict(facts.values)  # every checked anonymous node is already scored
    best = min(values, key=values.__getitem__, default=None)
    rescored = 0
    for node in sorted(anonymous, key=bounds.__getitem__):
        if best is not None and bounds[node] >= values[best]:
            break  # no node left can beat the best
        if node not in values:
            values[node] = problem.score(problem.check(node))
            rescored += 1
        if best is None or values[node] < values[best]:
            best = node
    return _result(problem, metric, best, values, anonymous, facts, rescored)


def search_exhaustive(
    frequency: pd.DataFrame,
    hierarchies: Mapping[str, Hierarchy],
    quasi_identifiers: Sequence[str],
    models: Sequence[PrivacyModel],
    suppression_limit: float,
    metric: str = "loss",
    *,
    sensitive: str | None = None,
    unit: str | None = None,
    aggregate: str = "geometric",
) -> SearchResult:
    """Check and score every node of the lattice: the reference `search_optimal` is tested against."""
    problem = _problem(
        frequency,
        hierarchies,
        quasi_identifiers,
        models,
        suppression_limit,
        metric,
        sensitive,
        unit,
        aggregate,
    )
    facts = _classify(problem.nodes, problem.encoded.heights, problem.check, problem.score, predictive=False)
    anonymous = [n for n in problem.nodes if facts.state[n]]
    best = min(anonymous, key=facts.values.__getitem__, default=None)
    return _result(problem, metric, best, facts.values, anonymous, facts, 0)


def _result(problem: _Problem, metric, best, values, anonymous, facts: _Facts, rescored: int) -> SearchResult:
    chosen = None if best is None else problem.check(best)
    keys = [] if chosen is None else class_keys(problem.encoded, chosen.grouping)
    hidden = np.zeros(len(keys), dtype=bool) if chosen is None else chosen.suppressed
    return SearchResult(
        transformation=None if best is None else Transformation(problem.encoded.quasi_identifiers, best),
        metric=metric,
        value=None if best is None else values[best],
        suppressed=tuple(key for key, gone in zip(keys, hidden, strict=True) if gone),
        suppressed_records=0 if chosen is None else int(chosen.grouping.classes.records[hidden].sum()),
        nodes_total=len(problem.nodes),
        nodes_checked=len(facts.checked),
        nodes_pruned=len(problem.nodes) - len(facts.checked),
        metric_evaluations=rescored,
        anonymous=tuple(anonymous),
        values=values,
    )
