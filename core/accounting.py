"""What releases cost, how costs compose over a window, and whether a budget holds them.

Every release states its cost twice, and both statements are true at once:

- on its own, as (epsilon, delta): the release is (epsilon, delta)-DP;
- in parts that compose well: a zCDP part `rho` (Gaussian noise at its rho,
  pure epsilon-DP noise at epsilon^2 / 2, Bun and Steinke 2016) and an
  approximate-DP part that is not zCDP (`approx_epsilon`, `approx_delta`:
  partition selection of private keys).

The releases of a window compose both ways:

- basic: the epsilons add, the deltas add;
- zCDP: the rhos add and the total is converted once (Canonne, Kamath and
  Steinke 2020) at what delta the approximate part leaves; the approximate
  part is added at the end.

The window is (epsilon, delta)-DP for the smaller epsilon of the two, which
is what a budget is checked against: a few releases are cheapest by basic
composition, a month of daily releases by zCDP.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from core.mechanisms import zcdp_epsilon

# Sums of configured floats (0.1 + 0.2 ...) can land a hair above the budget
# they exactly fill; these slacks keep such a release from being refused.
EPSILON_SLACK = 1e-9
DELTA_SLACK = 1e-15


@dataclass(frozen=True)
class Cost:
    """What one release, or a window of them, spends."""

    epsilon: float = 0.0
    delta: float = 0.0
    rho: float = 0.0
    approx_epsilon: float = 0.0
    approx_delta: float = 0.0

    def __post_init__(self) -> None:
        # Each statement must account for the whole cost: a rho that the basic epsilon leaves out,
        # or a basic epsilon that neither rho nor the approximate part covers, would spend nothing.
        whole_basic = self.epsilon >= self.approx_epsilon and (self.rho == 0 or self.epsilon > 0)
        whole_zcdp = self.epsilon <= self.approx_epsilon + 1e-12 or self.rho > 0
        if not (whole_basic and whole_zcdp) or min(getattr(self, f) for f in _PARTS) < 0:
            raise ValueError(f"inconsistent release cost {self}: each statement must cover all of it")

    def __add__(self, other: Cost) -> Cost:
        return total([self, other])

    def covers(self, other: Cost) -> bool:
        """Every part at least the other's: whatever `other` proves, this costs as much or more."""
        return all(getattr(self, f) >= getattr(other, f) for f in _PARTS)


_PARTS = ("epsilon", "delta", "rho", "approx_epsilon", "approx_delta")


def total(costs: Iterable[Cost]) -> Cost:
    costs = list(costs)
    return Cost(**{f: math.fsum(getattr(c, f) for c in costs) for f in _PARTS})


@dataclass(frozen=True)
class Guarantee:
    """The composed releases are (epsilon, delta)-DP, by `method` ("basic" or "zcdp")."""

    epsilon: float
    delta: float
    method: str


NOTHING_PROVEN = Guarantee(math.inf, 1.0, "none")


def guarantee(cost: Cost, delta: float) -> Guarantee:
    """The smallest epsilon at which `cost` is proven (epsilon, <= delta)-DP, and how."""
    if cost == Cost():
        return Guarantee(0.0, 0.0, "basic")
    candidates = []
    if cost.delta <= delta + DELTA_SLACK:
        candidates.append(Guarantee(cost.epsilon, cost.delta, "basic"))
    left = delta - cost.approx_delta
    if cost.rho == 0 and left >= -DELTA_SLACK:
        candidates.append(Guarantee(cost.approx_epsilon, cost.approx_delta, "zcdp"))
    elif left > 0:
        epsilon = zcdp_epsilon(cost.rho, left) + cost.approx_epsilon
        candidates.append(Guarantee(epsilon, delta, "zcdp"))
    return min(candidates, key=lambda g: g.epsilon, default=NOTHING_PROVEN)


def fits(cost: Cost, epsilon: float, delta: float) -> bool:
    return guarantee(cost, delta).epsilon <= epsilon + EPSILON_SLACK


def pure_dp_cost(epsilons: Iterable[float]) -> Cost:
    """Independent pure-DP mechanisms: their epsilons add, and each is epsilon^2 / 2 in zCDP."""
    epsilons = list(epsilons)
    return Cost(epsilon=math.fsum(epsilons), rho=math.fsum(e * e / 2 for e in epsilons))


def zcdp_cost(rho: float, delta: float) -> Cost:
    """A rho-zCDP release, stated on its own at `delta`."""
    return Cost(epsilon=zcdp_epsilon(rho, delta), delta=delta, rho=rho)


def approx_dp_cost(epsilon: float, delta: float) -> Cost:
    """An (epsilon, delta)-DP mechanism that is not zCDP (partition selection)."""
    return Cost(epsilon=epsilon, delta=delta, approx_epsilon=epsilon, approx_delta=delta)


def largest_windows(windows: list[Cost]) -> list[Cost]:
    """The windows no other window covers: only these can be the first to exceed a budget."""
    kept: list[Cost] = []
    for i, window in enumerate(windows):
        covered = any(other.covers(window) and (other != window or j < i)
                      for j, other in enumerate(windows) if j != i)
        if not covered:
            kept.append(window)
    return kept
