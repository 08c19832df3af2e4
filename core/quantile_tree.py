"""A cell's quantile tree, noised lazily, and the free post-processing that places quantiles in it.

The tree is a root counting every row, 32 nodes under it and 128 leaves under
each node (TREE_BRANCHINGS); the plan charges every node of every level, noised once.
Everything here reads only those noisy counts, so it is post-processing and costs no budget:

- Noisy counts are used as drawn, never clamped at 0: a count clamped at 0 keeps its positive
  noise and drops its negative noise, so every sparse node would add phantom rows (about a
  third of the noise sd each, at the geometric's shape) and pull a quantile towards it.
- The root and its 32 children are made consistent by least squares (Hay et al. 2010): each
  child gets the same share of the root's disagreement with their sum. Estimates stay unbiased
  and linear in the noisy counts, and the total is the best of both levels.
- The quantile q sits where the estimated rows below a point reach q times the total. The
  difference T(edge) = rows below the edge - q * total is read at each node edge; it is linear
  in the noisy counts, so its noise sd is exact: the noise sd times the norm of its
  coefficients, summing the noise of every node on the way (and of the total).
- The point estimate is halfway between the first and the last edge where T turns from
  negative to non-negative (within a node, linearly interpolated). Without noise T only rises,
  so both are the same point: the exact quantile, to the resolution read.
- A node's leaves are read (and made consistent with the node) only where T crosses zero in
  that node alone and the node holds at least as many rows as it has leaves times the noise sd;
  otherwise their noise would place the rank at random within it.
- The 95% interval inverts the test T = 0: its low end is the edge before the first edge where
  T + z sd reaches 0, its high end the edge after the last edge where T - z sd is at most 0.
  The true quantile's node has T >= 0 at its high edge and T <= 0 at its low edge, so each end
  misses it with probability about 2.5% (the summed noise taken as normal). Ends are whole
  nodes (or leaves): the tree does not say where within one its rows lie, so intervals cover
  somewhat more than 95% (tests/test_quantiles.py measures it at the catalog's noise).
- A total estimated at 0 or below places nothing: the cell has no quantiles (`place` is None).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from core.mechanisms import CONFIDENCE

# Quantile trees over [lower, upper]: a root counting every row, 32 equal nodes under it
# and 128 equal leaves under each (4,096 leaves). All three levels are noised alike: the
# root and its 32 children are made consistent and give the total and the rank's node, and a
# node's leaves refine it only when the node holds many rows.
# Few wide nodes near the root keep the rank's noise low.
TREE_BRANCHINGS = (32, 128)
TREE_HEIGHT = len(TREE_BRANCHINGS) + 1  # noised levels, the root's included
TREE_LEAVES = math.prod(TREE_BRANCHINGS)
TREE_BRANCHING = TREE_BRANCHINGS[0]  # the root's children, over which a rank's noise adds up
Z = float(norm.ppf(0.5 + CONFIDENCE / 2))
NODES, LEAVES_PER_NODE = TREE_BRANCHINGS


def tree_value(position: float, lower: float, upper: float, scale: str = "linear") -> float:
    """The value at `position` (0 to 1) along a quantile tree's leaves.

    linear: equal widths. log: equal ratios of 1 + (value - lower), so every leaf is the
    same relative step (for bytes in [0, 250k], 0.3% a leaf and 47% a top node) and low
    values get as fine leaves as high ones. transforms.bounding.tree_leaf_index is the
    inverse, in Spark.
    """
    if scale == "log":
        return lower + math.expm1(position * math.log1p(upper - lower))
    return lower + position * (upper - lower)


def quantile_rank_sd(tree_noise_sd: float, leaves_read: bool = False) -> float:
    """Largest sd, in rows, of a quantile's rank test (rows below an edge minus q times the
    total) at any edge between the root's children and for any q:
    with b children made consistent with the root its variance is (b + 1) / 4 - q (1 - q)
    noise variances at most. Within a node whose leaves are read, its m-leaf share adds at
    most m / 4 more."""
    variances = (TREE_BRANCHING + 1) / 4 + (TREE_BRANCHINGS[1] / 4 if leaves_read else 0)
    return tree_noise_sd * math.sqrt(variances)


@dataclass(frozen=True)
class Placed:
    """A quantile's place along the leaves (0 to TREE_LEAVES from the lower bound) and its interval."""

    position: float
    low: float
    high: float

    def values(self, lower: float, upper: float, scale: str = "linear") -> tuple[float, float, float]:
        """(value, interval low, interval high) in the metric's units."""
        ends = (self.position, self.low, self.high)
        return tuple(tree_value(p / TREE_LEAVES, lower, upper, scale) for p in ends)


@dataclass(frozen=True)
class _Edges:
    """Edges along the leaves, with T at each as coefficients over the noisy counts read."""

    positions: np.ndarray  # in leaves, increasing
    coefficients: np.ndarray  # (edges, counts read)

    def t(self, counts: np.ndarray) -> np.ndarray:
        # A rank between two rows is a whole number of rows without noise: rounding drops float
        # error that would move it to the other side of the gap.
        return np.round(self.coefficients @ counts, 9)

    def sd(self, noise_sd: float) -> np.ndarray:
        return noise_sd * np.sqrt((self.coefficients**2).sum(axis=1))


class NoisyTree:
    """One cell's tree: counts noised the first time they are read, and the quantiles placed in it.

    Nodes never read are never noised and never influence the output; a node read twice (by
    several quantiles) returns the same noisy count.
    """

    def __init__(self, leaf_counts: np.ndarray, sampler, noise_sd: float):
        nodes_per_level = [math.prod(TREE_BRANCHINGS[:level]) for level in range(len(TREE_BRANCHINGS) + 1)]
        self.levels = [leaf_counts.reshape(nodes, -1).sum(axis=1) for nodes in nodes_per_level]
        self.sampler = sampler
        self.noise_sd = noise_sd
        self.noisy: dict[tuple[int, int], int] = {}
        self._top: tuple[np.ndarray, np.ndarray] | None = None

    def count(self, level: int, index: int) -> int:
        """The node's noisy count, as drawn (negative ones included)."""
        key = (level, index)
        if key not in self.noisy:
            self.noisy[key] = self.sampler.randomise(int(self.levels[level][index]))
        return self.noisy[key]

    def top(self) -> tuple[np.ndarray, np.ndarray]:
        """Noisy counts of the root and its children, and the consistent children as coefficients
        over them: child_i + (root - sum of children) / (children + 1)."""
        if self._top is None:
            counts = np.array([self.count(0, 0)] + [self.count(1, i) for i in range(NODES)], dtype="float64")
            shares = np.zeros((NODES, NODES + 1))
            shares[:, 1:] = np.eye(NODES)
            shares += np.r_[1.0, -np.ones(NODES)] / (NODES + 1)
            self._top = counts, shares
        return self._top

    def total(self) -> float:
        """The cell's rows: the consistent estimate from the root and its children."""
        counts, shares = self.top()
        return float(shares.sum(axis=0) @ counts)

    def place(self, q: float) -> Placed | None:
        """Quantile q and its 95% interval; None when the estimated total is not positive."""
        if self.total() <= 0:
            return None
        counts, shares = self.top()
        cumulated = np.vstack([np.zeros(NODES + 1), np.cumsum(shares, axis=0)])
        edges = _Edges(np.arange(NODES + 1) * float(LEAVES_PER_NODE), cumulated - q * shares.sum(axis=0))
        node = self._node_to_refine(edges, counts, shares)
        if node is not None:
            edges, counts = self._refined(edges, counts, shares[node], node)
        t, sd = edges.t(counts), edges.sd(self.noise_sd)
        position = _midpoint(edges.positions, t)
        low, high = _interval(edges.positions, t, sd)
        return Placed(position, min(low, position), max(high, position))

    def quantile(self, q: float, lower: float, upper: float, scale: str = "linear") -> float:
        """The value below which fraction q of the cell's rows lie; NaN when nothing is placed."""
        placed = self.place(q)
        return math.nan if placed is None else placed.values(lower, upper, scale)[0]

    def _node_to_refine(self, edges: _Edges, counts: np.ndarray, shares: np.ndarray) -> int | None:
        """The node where T alone crosses zero, if it holds enough rows for its leaves' noise."""
        crossings = _crossings(edges.positions, edges.t(counts))
        # A crossing on an edge belongs to the node below it, whose last row completes the rank.
        nodes = {math.ceil(c / LEAVES_PER_NODE) - 1 for c in (crossings[0], crossings[-1])}
        if len(nodes) > 1:
            return None
        node = nodes.pop()
        rows = float(shares[node] @ counts)
        return node if rows > 0 and rows >= LEAVES_PER_NODE * self.noise_sd else None

    def _refined(self, edges: _Edges, counts: np.ndarray, node_share: np.ndarray, node: int):
        """The edges with `node` cut into its leaves, each leaf given the same share of the node's
        disagreement with their sum (so the leaves add up to the node); counts with the leaves'."""
        first = node * LEAVES_PER_NODE
        leaves = np.array([self.count(2, first + j) for j in range(LEAVES_PER_NODE)], dtype="float64")
        width = counts.size
        parent = np.r_[node_share, np.zeros(LEAVES_PER_NODE)]
        own = np.hstack([np.zeros((LEAVES_PER_NODE, width)), np.eye(LEAVES_PER_NODE)])
        leaf_shares = own + (parent - own.sum(axis=0)) / LEAVES_PER_NODE
        start = np.r_[edges.coefficients[node], np.zeros(LEAVES_PER_NODE)]
        inside = start + np.vstack([np.zeros(width + LEAVES_PER_NODE), np.cumsum(leaf_shares, axis=0)])
        outside = np.hstack([edges.coefficients, np.zeros((NODES + 1, LEAVES_PER_NODE))])
        positions = np.r_[edges.positions[:node], node * LEAVES_PER_NODE + np.arange(LEAVES_PER_NODE + 1.0),
                          edges.positions[node + 2:]]
        coefficients = np.vstack([outside[:node], inside, outside[node + 2:]])
        return _Edges(positions, coefficients), np.r_[counts, leaves]


def _crossings(positions: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Where t turns from negative to non-negative, interpolated linearly between edges."""
    rising = np.flatnonzero((t[:-1] < 0) & (t[1:] >= 0))
    step = t[rising + 1] - t[rising]
    return positions[rising] + (positions[rising + 1] - positions[rising]) * -t[rising] / step


def _midpoint(positions: np.ndarray, t: np.ndarray) -> float:
    crossings = _crossings(positions, t)  # at least one: t starts at -q total and ends at (1 - q) total
    return float(crossings[0] + crossings[-1]) / 2


def _interval(positions: np.ndarray, t: np.ndarray, sd: np.ndarray) -> tuple[float, float]:
    """The edges around every place the test T = 0 does not reject at the confidence level.

    Neither set is empty: t starts below 0 and ends above it."""
    reached = np.flatnonzero(t + Z * sd >= 0)[0]
    not_passed = np.flatnonzero(t - Z * sd <= 0)[-1]
    return float(positions[max(reached - 1, 0)]), float(positions[min(not_passed + 1, positions.size - 1)])
