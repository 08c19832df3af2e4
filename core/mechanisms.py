"""Calibrated integer noise: diffprivlib's geometric and discrete Gaussian mechanisms.

Noise is only ever added to integers (counts, fixed-point sums), never with
the floating-point Laplace or Gaussian mechanisms, whose floating-point
artefacts leak. Sampling uses diffprivlib's secure random source
(`secrets.SystemRandom`) unless a test passes a seeded `random_state`.

Three calibrations:
- pure DP: two-sided geometric, P(k) proportional to alpha^|k|, alpha = exp(-epsilon / L1);
- zCDP: discrete Gaussian with sigma = L2 / sqrt(2 rho) (Canonne, Kamath, Steinke 2020);
- approximate DP: the same, at the largest rho whose (epsilon, delta) conversion fits.

And two statements about them: the conversion of a zCDP total to (epsilon, delta)
(Canonne, Kamath and Steinke 2020, Corollary 13), and the optimal probabilities
of releasing a private partition (Desfontaines, Voss, Gipson, Mandayam 2022).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from diffprivlib.mechanisms import GaussianDiscrete, Geometric
from scipy.optimize import minimize_scalar
from scipy.stats import norm

from core.errors import KrReportsError

# The confidence of every interval a release states (core.kinds, core.quantile_tree, explain).
CONFIDENCE = 0.95
# diffprivlib's discrete Gaussian sampler loops O(sigma) times per draw: about 1 microsecond
# per unit of sigma here, so 20 ms a draw at the limit.
MAX_DISCRETE_GAUSSIAN_SCALE = 2e4


class CalibrationError(KrReportsError, ValueError):
    """Noise that cannot be calibrated or sampled as asked."""


class ZCDPGaussianDiscrete(GaussianDiscrete):
    """diffprivlib's discrete Gaussian sampler with its sigma set from a zCDP rho and a real L2.

    rho = L2^2 / (2 sigma^2) holds for any real L2 (Canonne, Kamath, Steinke 2020), so the
    sensitivity is not rounded up to an integer: sqrt(6) would otherwise cost 22% more noise.
    diffprivlib's own checks want an integer, and get the L2 rounded up; only the scale is used.
    """

    def __init__(self, *, rho: float, l2: float, random_state=None):
        self._rho, self._l2 = rho, l2
        epsilon, delta = zcdp_to_approx_dp(rho, 1e-9)  # only to satisfy the base checks
        super().__init__(epsilon=epsilon, delta=delta, sensitivity=math.ceil(l2), random_state=random_state)

    def _find_scale(self):
        return self._l2 / math.sqrt(2 * self._rho)


def zcdp_to_approx_dp(rho: float, delta: float) -> tuple[float, float]:
    """rho-zCDP implies (zcdp_epsilon(rho, delta), delta)-DP."""
    return zcdp_epsilon(rho, delta), delta


def zcdp_epsilon_bun_steinke(rho: float, delta: float) -> float:
    """The simple conversion, rho + 2 sqrt(rho ln(1/delta)) (Bun and Steinke 2016, Prop. 1.3)."""
    return rho + 2 * math.sqrt(rho * math.log(1 / delta))


def _cks_epsilon_at(order: float, rho: float, log_inv_delta: float) -> float:
    """The epsilon Corollary 13 of Canonne, Kamath and Steinke (2020) gives at Renyi order > 1:

    delta = exp((a - 1)(a rho - epsilon)) (1 - 1/a)^a / (a - 1), solved for epsilon.
    Every order gives a valid epsilon; the conversion is the smallest.
    """
    return order * rho + (log_inv_delta + order * math.log1p(-1 / order) - math.log(order - 1)) / (order - 1)


@functools.lru_cache(maxsize=4096)
def zcdp_epsilon(rho: float, delta: float) -> float:
    """Smallest epsilon with rho-zCDP implying (epsilon, delta)-DP by Canonne, Kamath and Steinke.

    Minimised over the Renyi order by a bounded search on log(order - 1). Any order the search
    stops at yields a valid (if looser) epsilon, so an imprecise minimum is never unsafe; it is
    never looser than Bun and Steinke's bound either, which is kept as a ceiling.
    """
    if rho < 0 or not 0 < delta < 1:
        raise CalibrationError(f"zCDP conversion needs rho >= 0 and 0 < delta < 1, got {rho:g}, {delta:g}")
    if rho == 0:
        return 0.0
    log_inv_delta = math.log(1 / delta)
    reach = math.log(10 * math.sqrt(log_inv_delta / rho) + 10)
    best = minimize_scalar(lambda t: _cks_epsilon_at(1 + math.exp(t), rho, log_inv_delta),
                           bounds=(-12.0, reach), method="bounded", options={"xatol": 1e-9})
    epsilon = _cks_epsilon_at(1 + math.exp(best.x), rho, log_inv_delta)
    return max(0.0, min(epsilon, zcdp_epsilon_bun_steinke(rho, delta)))


def pure_dp_to_zcdp(epsilon: float) -> float:
    """epsilon-DP implies (epsilon^2 / 2)-zCDP (Bun and Steinke 2016, Prop. 1.4)."""
    return epsilon**2 / 2


@dataclass(frozen=True)
class IntegerNoise:
    """One calibrated mechanism: its sensitivity, its privacy cost and its spread."""

    kind: Literal["geometric", "discrete_gaussian"]
    sensitivity: float  # L1 (an integer) for the geometric, L2 for the discrete Gaussian
    epsilon: float
    delta: float
    rho: float | None  # discrete Gaussian: the zCDP rho it is calibrated to
    scale: float  # geometric: L1 / epsilon; discrete Gaussian: sigma

    @property
    def alpha(self) -> float:
        return math.exp(-1 / self.scale)

    @property
    def sd(self) -> float:
        if self.kind == "geometric":
            return math.sqrt(2 * self.alpha) / (1 - self.alpha)
        return self.scale  # the discrete Gaussian's sd is at most sigma

    def ci_half_width(self, confidence: float = 0.95) -> int:
        """Integer t with P(|noise| > t) <= 1 - confidence: the smallest for the geometric,
        ceil(z sigma) for the discrete Gaussian (covers a little more than asked)."""
        if self.kind == "geometric":
            return geometric_tail_bound(self.alpha, 1 - confidence)
        return math.ceil(norm.ppf(0.5 + confidence / 2) * self.scale)

    def sampler(self, random_state=None):
        if self.kind == "geometric":
            return Geometric(epsilon=self.epsilon, sensitivity=self.sensitivity, random_state=random_state)
        return ZCDPGaussianDiscrete(rho=self.rho, l2=self.sensitivity, random_state=random_state)

    def add_to(self, values, random_state=None) -> np.ndarray:
        """Integer values plus independent noise, one draw each."""
        sampler = self.sampler(random_state)
        return np.array([sampler.randomise(int(v)) for v in values], dtype="int64")


def geometric_tail_bound(alpha: float, tail: float) -> int:
    """Smallest t >= 0 with P(|X| > t) = 2 alpha^(t+1) / (1 + alpha) <= tail."""
    if alpha == 0:
        return 0  # no noise at all (an epsilon so large that exp underflows)
    t = math.log(tail * (1 + alpha) / 2) / math.log(alpha) - 1
    return max(0, math.ceil(t - 1e-9))


def _positive_sensitivity(sensitivity: float, what: str) -> float:
    """Zero or below is refused, not raised to 1: it means the bounds are wrong, and noise for 1
    would understate the cost."""
    if not sensitivity > 0:
        raise CalibrationError(
            f"{what}: sensitivity is {sensitivity:g}; noise needs a positive sensitivity "
            "(are the bounds whole and apart at the metric's precision?)"
        )
    return sensitivity


def _integer_sensitivity(sensitivity: float, what: str) -> int:
    """An L1 sensitivity for the geometric, rounded up (more noise, never less)."""
    return math.ceil(_positive_sensitivity(sensitivity, what))


def geometric(epsilon: float, l1_sensitivity: float, what: str = "geometric noise") -> IntegerNoise:
    sensitivity = _integer_sensitivity(l1_sensitivity, what)
    return IntegerNoise("geometric", sensitivity, epsilon, 0.0, None, sensitivity / epsilon)


def _check_samplable(sigma: float, what: str) -> None:
    if sigma > MAX_DISCRETE_GAUSSIAN_SCALE:
        raise CalibrationError(
            f"{what}: discrete Gaussian sigma about {sigma:.3g} is too large to sample "
            f"(limit {MAX_DISCRETE_GAUSSIAN_SCALE:g}); use pure DP, a coarser fixed-point unit "
            "(negative precision) or tighter contribution bounds"
        )


def rho_for(epsilon: float, delta: float) -> float:
    """The largest rho whose zCDP conversion at delta stays within epsilon."""
    log_term = math.log(1 / delta)
    return (math.sqrt(log_term + epsilon) - math.sqrt(log_term)) ** 2


def discrete_gaussian(epsilon: float, delta: float, l2_sensitivity: float, what: str) -> IntegerNoise:
    """Discrete Gaussian for (epsilon, delta)-DP on a vector of cells.

    Calibrated through zCDP: diffprivlib's exact (epsilon, delta) search is
    one-dimensional and overshoots delta slightly when a subscriber moves
    several cells at once, while rho = L2^2 / (2 sigma^2) holds for vectors.
    """
    sensitivity = _positive_sensitivity(l2_sensitivity, what)
    rho = rho_for(epsilon, delta)
    sigma = sensitivity / math.sqrt(2 * rho)
    _check_samplable(sigma, what)
    return IntegerNoise("discrete_gaussian", sensitivity, epsilon, delta, rho, sigma)


def zcdp_discrete_gaussian(rho: float, l2_sensitivity: float, delta: float, what: str) -> IntegerNoise:
    """Discrete Gaussian for rho-zCDP; (epsilon, delta) is its conversion at the given delta."""
    sensitivity = _positive_sensitivity(l2_sensitivity, what)
    sigma = sensitivity / math.sqrt(2 * rho)
    _check_samplable(sigma, what)
    epsilon, delta = zcdp_to_approx_dp(rho, delta)
    return IntegerNoise("discrete_gaussian", sensitivity, epsilon, delta, rho, sigma)


def partition_keep_probabilities(epsilon: float, delta: float, max_partitions: int) -> tuple[float, ...]:
    """P(release a private partition) by its distinct-subscriber count n, for n = 0, 1, ... until 1.

    The optimal (epsilon, delta)-DP partition selection of Desfontaines, Voss, Gipson and
    Mandayam (2022), PipelineDP's "truncated geometric": a subscriber is in at most
    `max_partitions` partitions, so each gets epsilon / G and delta / G, and
    pi(0) = 0, pi(n) = min(e^eps pi(n-1) + delta, 1 - e^-eps (1 - pi(n-1) - delta), 1).
    Both neighbour inequalities, on release and on withholding, are as tight as they may be.
    Past the last entry a partition is always released.
    """
    if not (epsilon > 0 and 0 < delta < 1 and max_partitions >= 1):
        raise CalibrationError(f"partition selection needs epsilon > 0, 0 < delta < 1 and at least one "
                               f"partition, got {epsilon:g}, {delta:g}, {max_partitions}")
    eps, dlt = epsilon / max_partitions, delta / max_partitions
    growth, shrink = math.exp(eps), math.exp(-eps)
    probabilities = [0.0]
    while probabilities[-1] < 1.0:
        last = probabilities[-1]
        probabilities.append(min(growth * last + dlt, 1 - shrink * (1 - last - dlt), 1.0))
    return tuple(probabilities)


def partition_selection_threshold(epsilon: float, delta: float, max_partitions: int) -> int:
    """Threshold on a geometric-noised distinct-subscriber count that keeps (epsilon, delta)-DP.

    A subscriber counts 1 in at most `max_partitions` partitions. A partition
    that exists only because of that subscriber has true count 1; it is
    released when 1 + noise >= tau, with probability alpha^(tau-1) / (1+alpha).
    Over at most `max_partitions` such partitions that must stay within delta.
    The union-bound mechanism the releases used before partition_keep_probabilities; kept
    to measure how much lower the optimal mechanism's thresholds are.
    """
    alpha = math.exp(-epsilon / max_partitions)
    steps = math.log(delta * (1 + alpha) / max_partitions) / math.log(alpha)
    return 1 + max(0, math.ceil(steps - 1e-9))
