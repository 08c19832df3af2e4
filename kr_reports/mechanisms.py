"""Calibrated integer noise: diffprivlib's geometric and discrete Gaussian mechanisms.

Noise is only ever added to integers (counts, fixed-point sums), never with
the floating-point Laplace or Gaussian mechanisms, whose floating-point
artefacts leak. Sampling uses diffprivlib's secure random source
(`secrets.SystemRandom`) unless a test passes a seeded `random_state`.

Three calibrations:
- pure DP: two-sided geometric, P(k) proportional to alpha^|k|, alpha = exp(-epsilon / L1);
- zCDP: discrete Gaussian with sigma = L2 / sqrt(2 rho) (Canonne, Kamath, Steinke 2020);
- approximate DP: the same, at the largest rho whose (epsilon, delta) conversion fits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from diffprivlib.mechanisms import GaussianDiscrete, Geometric
from scipy.stats import norm

# diffprivlib's discrete Gaussian sampler loops O(sigma) times per draw.
MAX_DISCRETE_GAUSSIAN_SCALE = 1e4


class CalibrationError(ValueError):
    """Noise that cannot be calibrated or sampled as asked."""


class ZCDPGaussianDiscrete(GaussianDiscrete):
    """diffprivlib's discrete Gaussian sampler with its sigma set from a zCDP rho."""

    def __init__(self, *, rho: float, sensitivity: int, random_state=None):
        self._rho = rho
        epsilon, delta = zcdp_to_approx_dp(rho, 1e-9)  # only to satisfy the base checks
        super().__init__(epsilon=epsilon, delta=delta, sensitivity=sensitivity, random_state=random_state)

    def _find_scale(self):
        return self.sensitivity / math.sqrt(2 * self._rho)


def zcdp_to_approx_dp(rho: float, delta: float) -> tuple[float, float]:
    """rho-zCDP implies (rho + 2 sqrt(rho ln(1/delta)), delta)-DP (Bun and Steinke 2016, Prop. 1.3)."""
    return rho + 2 * math.sqrt(rho * math.log(1 / delta)), delta


def pure_dp_to_zcdp(epsilon: float) -> float:
    """epsilon-DP implies (epsilon^2 / 2)-zCDP (Bun and Steinke 2016, Prop. 1.4)."""
    return epsilon**2 / 2


@dataclass(frozen=True)
class IntegerNoise:
    """One calibrated mechanism: its sensitivity, its privacy cost and its spread."""

    kind: Literal["geometric", "discrete_gaussian"]
    sensitivity: int  # L1 for the geometric, L2 rounded up for the discrete Gaussian
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
        return ZCDPGaussianDiscrete(rho=self.rho, sensitivity=self.sensitivity, random_state=random_state)

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


def _integer_sensitivity(sensitivity: float, what: str) -> int:
    """The sensitivity rounded up (more noise, never less). Zero or below is refused, not
    raised to 1: it means the bounds are wrong, and noise for 1 would understate the cost."""
    if not sensitivity > 0:
        raise CalibrationError(
            f"{what}: sensitivity is {sensitivity:g}; noise needs a positive sensitivity "
            "(are the bounds whole and apart at the metric's precision?)"
        )
    return math.ceil(sensitivity)


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
    sensitivity = _integer_sensitivity(l2_sensitivity, what)
    rho = rho_for(epsilon, delta)
    sigma = sensitivity / math.sqrt(2 * rho)
    _check_samplable(sigma, what)
    return IntegerNoise("discrete_gaussian", sensitivity, epsilon, delta, rho, sigma)


def zcdp_discrete_gaussian(rho: float, l2_sensitivity: float, delta: float, what: str) -> IntegerNoise:
    """Discrete Gaussian for rho-zCDP; (epsilon, delta) is its conversion at the given delta."""
    sensitivity = _integer_sensitivity(l2_sensitivity, what)
    sigma = sensitivity / math.sqrt(2 * rho)
    _check_samplable(sigma, what)
    epsilon, delta = zcdp_to_approx_dp(rho, delta)
    return IntegerNoise("discrete_gaussian", sensitivity, epsilon, delta, rho, sigma)


def partition_selection_threshold(epsilon: float, delta: float, max_partitions: int) -> int:
    """Threshold on a geometric-noised distinct-subscriber count that keeps (epsilon, delta)-DP.

    A subscriber counts 1 in at most `max_partitions` partitions. A partition
    that exists only because of that subscriber has true count 1; it is
    released when 1 + noise >= tau, with probability alpha^(tau-1) / (1+alpha).
    Over at most `max_partitions` such partitions that must stay within delta.
    """
    alpha = math.exp(-epsilon / max_partitions)
    steps = math.log(delta * (1 + alpha) / max_partitions) / math.log(alpha)
    return 1 + max(0, math.ceil(steps - 1e-9))
