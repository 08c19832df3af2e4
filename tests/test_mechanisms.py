"""Statistical evidence that core.mechanisms' noise is what it claims.

The exact distributions are written here from their definitions, not taken
from the module: the two-sided geometric P(k) = (1 - a) / (1 + a) a^|k| with
a = exp(-epsilon / sensitivity), and the discrete Gaussian P(k) proportional
to exp(-k^2 / (2 sigma^2)), normalised over a support wide enough that the
mass left out is below 1e-15. Samples come from the module's own samplers
(diffprivlib underneath) with seeded `np.random.RandomState`s; the product
never seeds.

Goodness-of-fit tests reject at p < 1e-3, so with fixed seeds they are
deterministic, and with fresh seeds they would flake at most about once in a
thousand runs per test. `test_goodness_of_fit_rejects_a_mis_scaled_distribution`
shows they have the power to fail.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pytest
from diffprivlib.mechanisms import GaussianDiscrete
from privacy_audit import audit_epsilon, clopper_pearson
from scipy.stats import chisquare, kstwo, norm

from core.mechanisms import (
    IntegerNoise,
    discrete_gaussian,
    geometric,
    partition_selection_threshold,
    pure_dp_to_zcdp,
    zcdp_discrete_gaussian,
    zcdp_epsilon,
    zcdp_epsilon_bun_steinke,
    zcdp_to_approx_dp,
)

SAMPLES = 30_000
P_REJECT = 1e-3
Z_REJECT = norm.isf(P_REJECT / 2)  # two-sided, about 3.29
AUDIT_RUNS = 20_000

GEOMETRIC_CASES = [(1.0, 1), (0.5, 1), (1.0, 3), (2.0, 1), (0.3, 2)]  # (epsilon, L1 sensitivity)
# (epsilon, delta, L2): sigma 4.2, 7.0, 6.7
APPROX_DP_CASES = [(1.0, 1e-6, 1), (0.5, 1e-5, 1), (2.0, 1e-6, 3)]
# (rho, L2): sigma 2, 5, 2, 10, 0.5
ZCDP_CASES = [(0.125, 1), (0.02, 1), (0.5, 2), (0.005, 1), (2.0, 1)]


# ---------------------------------------------------------------- exact distributions, written independently


def geometric_exact(epsilon: float, sensitivity: int, reach: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Support and pmf of the two-sided geometric, out to `reach` plus where the tail is below e^-40."""
    a = math.exp(-epsilon / sensitivity)
    half_width = reach + math.ceil(40 / -math.log(a))
    support = np.arange(-half_width, half_width + 1)
    pmf = (1 - a) / (1 + a) * a ** np.abs(support)
    return support, pmf / pmf.sum()


def discrete_gaussian_exact(sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Support and pmf of the discrete Gaussian, normalised over +-(12 sigma + 12) (tail below e^-72)."""
    half_width = math.ceil(12 * sigma) + 12
    support = np.arange(-half_width, half_width + 1)
    weights = np.exp(-(support.astype(float) ** 2) / (2 * sigma**2))
    return support, weights / weights.sum()


def exact_of(noise: IntegerNoise) -> tuple[np.ndarray, np.ndarray]:
    if noise.kind == "geometric":
        return geometric_exact(noise.epsilon, noise.sensitivity)
    return discrete_gaussian_exact(noise.scale)


def moments(support: np.ndarray, pmf: np.ndarray) -> tuple[float, float]:
    """(sd, fourth central moment) of a zero-mean distribution."""
    k = support.astype(float)
    return math.sqrt(float(np.sum(pmf * k**2))), float(np.sum(pmf * k**4))


def coverage(support: np.ndarray, pmf: np.ndarray, half_width: int) -> float:
    return float(pmf[np.abs(support) <= half_width].sum())


def hockey_stick_delta(support: np.ndarray, pmf: np.ndarray, shift: int, epsilon: float) -> float:
    """Exact delta(epsilon) = sum_k max(0, P(k) - e^eps P(k - shift)) between noise and noise + shift."""
    shifted = np.zeros_like(pmf)
    shifted[shift:] = pmf[: len(pmf) - shift]
    return float(np.sum(np.maximum(0.0, pmf - math.exp(epsilon) * shifted)))


# ---------------------------------------------------------------- goodness-of-fit tools


@cache
def noise_sample(noise: IntegerNoise, seed: int) -> np.ndarray:
    """SAMPLES draws of the noise alone (added to zeros), from the module's sampler."""
    return noise.add_to(np.zeros(SAMPLES, dtype="int64"), np.random.RandomState(seed))


def binned_counts(sample, support, pmf, min_expected: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """Observed and expected counts per integer, tails pooled so every expected count is >= min_expected."""
    n = len(sample)
    cdf = np.cumsum(pmf)
    central = support[n * pmf >= min_expected]  # contiguous: both pmfs are unimodal
    lo, hi = int(central[0]), int(central[-1])
    lower_tail = n * pmf[support < lo].sum()
    upper_tail = n * pmf[support > hi].sum()
    first = lo - 1 if lower_tail >= min_expected else lo  # bin `first` holds everything <= first
    last = hi + 1 if upper_tail >= min_expected else hi  # bin `last` holds everything >= last
    values = np.arange(first, last + 1)
    observed = np.bincount(np.clip(sample, first, last) - first, minlength=len(values))
    index = np.searchsorted(support, values)
    expected = n * pmf[index]
    expected[0] = n * cdf[index[0]]
    expected[-1] = n * (1 - cdf[index[-1] - 1])
    return observed, expected


def chi_square_p_value(sample, support, pmf) -> float:
    observed, expected = binned_counts(sample, support, pmf)
    return float(chisquare(observed, expected * observed.sum() / expected.sum()).pvalue)


def ks_distance(sample, support, pmf) -> float:
    """max over the integer support of |ECDF(k) - CDF(k)|."""
    ecdf = np.searchsorted(np.sort(sample), support, side="right") / len(sample)
    return float(np.max(np.abs(ecdf - np.cumsum(pmf))))


def ks_critical(n: int) -> float:
    """Kolmogorov's exact critical value at level P_REJECT (about 1.95 / sqrt(n); 1.63 / sqrt(n) at 0.01).

    Conservative for a discrete distribution: with U_i uniform, X_i = F^-1(U_i)
    has ECDF(k) - F(k) = G_n(F(k)) - F(k), where G_n is the ECDF of the
    U_i; the discrete statistic is the uniform empirical process's sup over
    the subset {F(k)} of [0, 1], never more than its sup over all of [0, 1],
    whose law is the Kolmogorov distribution. So P(D > c) <= P_REJECT.
    """
    return float(kstwo.isf(P_REJECT, n))


def assert_fits(sample, support, pmf, what: str) -> None:
    p_value = chi_square_p_value(sample, support, pmf)
    distance = ks_distance(sample, support, pmf)
    assert p_value > P_REJECT, f"{what}: chi-square p = {p_value:.2e}"
    assert distance < ks_critical(len(sample)), f"{what}: KS distance {distance:.4f}"


ALL_NOISES = (
    [pytest.param(geometric(e, s), id=f"geometric-eps{e}-L1{s}") for e, s in GEOMETRIC_CASES]
    + [
        pytest.param(discrete_gaussian(e, d, l2, "test"), id=f"dgauss-eps{e}-delta{d}-L2{l2}")
        for e, d, l2 in APPROX_DP_CASES
    ]
    + [
        pytest.param(zcdp_discrete_gaussian(r, l2, 1e-6, "test"), id=f"zcdp-rho{r}-L2{l2}")
        for r, l2 in ZCDP_CASES
    ]
)


# ---------------------------------------------------------------- 1. output distribution matches theory


@pytest.mark.parametrize("noise", ALL_NOISES)
def test_sampled_noise_matches_the_exact_distribution(noise):
    support, pmf = exact_of(noise)
    assert_fits(noise_sample(noise, seed=11), support, pmf, str(noise))


def test_noise_is_added_to_the_values_and_independent_per_value():
    noise = geometric(1.0, 1)
    values = np.array([0, 100, -50] * 10_000)
    noisy = noise.add_to(values, np.random.RandomState(5))
    assert noisy.dtype == np.int64
    support, pmf = exact_of(noise)
    for offset in range(3):
        assert_fits(noisy[offset::3] - values[offset::3], support, pmf, f"value {values[offset]}")
    lag_correlation = np.corrcoef(noisy[:-3] - values[:-3], noisy[3:] - values[3:])[0, 1]
    assert abs(lag_correlation) < Z_REJECT / math.sqrt(len(values) - 3)


@pytest.mark.parametrize(
    ("noise", "wrong"),
    [
        pytest.param(geometric(1.0, 1), geometric_exact(0.9, 1), id="geometric-eps1-vs-0.9"),
        pytest.param(
            zcdp_discrete_gaussian(0.02, 1, 1e-6, "test"), discrete_gaussian_exact(5.5), id="dgauss-5-vs-5.5"
        ),
    ],
)
def test_goodness_of_fit_rejects_a_mis_scaled_distribution(noise, wrong):
    """The tests above can fail: a 10% error in the scale is rejected by both tests."""
    sample = noise_sample(noise, seed=11)
    support, pmf = wrong
    assert chi_square_p_value(sample, support, pmf) < P_REJECT
    assert ks_distance(sample, support, pmf) > ks_critical(len(sample))


# ---------------------------------------------------------------- 2. claimed spread and intervals vs actual


@pytest.mark.parametrize("noise", ALL_NOISES)
def test_claimed_sd_matches_the_exact_and_the_sample_sd(noise):
    exact_sd, fourth = moments(*exact_of(noise))
    if noise.kind == "geometric":
        assert noise.sd == pytest.approx(exact_sd, rel=1e-9)
    else:
        # Claimed as an upper bound; equal to sigma up to 1e-6 once sigma >= 1.
        assert exact_sd <= noise.sd * (1 + 1e-12)
        if noise.scale >= 1:
            assert noise.sd == pytest.approx(exact_sd, rel=1e-6)
    sample_sd = float(np.std(noise_sample(noise, seed=11)))
    # Delta method: var(s^2) ~ (mu4 - sd^4) / n, so se(s) ~ sqrt(mu4 - sd^4) / (2 sd sqrt(n)).
    stderr = math.sqrt(fourth - exact_sd**4) / (2 * exact_sd * math.sqrt(SAMPLES))
    assert abs(sample_sd - exact_sd) < Z_REJECT * stderr, f"sample sd {sample_sd:.4f}, exact {exact_sd:.4f}"


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
@pytest.mark.parametrize(("epsilon", "sensitivity"), [*GEOMETRIC_CASES, (0.1, 1), (1.0, 24), (5.0, 1)])
def test_geometric_ci_half_width_is_the_smallest_that_covers(epsilon, sensitivity, confidence):
    noise = geometric(epsilon, sensitivity)
    support, pmf = geometric_exact(epsilon, sensitivity)
    half_width = noise.ci_half_width(confidence)
    assert coverage(support, pmf, half_width) >= confidence
    assert half_width == 0 or coverage(support, pmf, half_width - 1) < confidence


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
@pytest.mark.parametrize("sigma", [0.3, 0.5, 0.8, 1.0, 2.0, 3.7, 7.07, 20.0, 100.0])
def test_discrete_gaussian_ci_half_width_covers_and_is_at_most_one_too_wide(sigma, confidence):
    """It covers; unlike the geometric's it is not always the smallest (see the report), but never 2 wider."""
    noise = IntegerNoise("discrete_gaussian", 1, 1.0, 1e-6, None, sigma)
    support, pmf = discrete_gaussian_exact(sigma)
    half_width = noise.ci_half_width(confidence)
    assert coverage(support, pmf, half_width) >= confidence
    assert half_width <= 1 or coverage(support, pmf, half_width - 2) < confidence


def test_ci_half_width_covers_released_values_in_a_sample():
    """The interval is around the noisy value: |noisy - true| <= t in at least 95% of draws (sampled)."""
    for noise in (geometric(0.5, 2), discrete_gaussian(1.0, 1e-6, 1, "test")):
        misses = np.mean(np.abs(noise_sample(noise, seed=23)) > noise.ci_half_width(0.95))
        assert misses <= 0.05 + Z_REJECT * math.sqrt(0.05 * 0.95 / SAMPLES)


# ---------------------------------------------------------------- calibration: the claimed privacy holds


@pytest.mark.parametrize(("epsilon", "delta", "l2"), [*APPROX_DP_CASES, (0.2, 1e-6, 1), (1.0, 1e-9, 2)])
def test_discrete_gaussian_sigma_achieves_its_epsilon_delta_in_one_dimension(epsilon, delta, l2):
    """Exact delta of the noise between neighbours one sensitivity apart, at the claimed epsilon."""
    noise = discrete_gaussian(epsilon, delta, l2, "test")
    assert noise.kind == "discrete_gaussian" and noise.sensitivity == l2
    support, pmf = discrete_gaussian_exact(noise.scale)
    assert hockey_stick_delta(support, pmf, l2, epsilon) <= delta
    # Calibrated through zCDP (valid for vectors), it is conservative in one dimension,
    # but by a bounded factor: at most 45% more noise than the exact 1-D calibration.
    exact_1d = GaussianDiscrete(epsilon=epsilon, delta=delta, sensitivity=l2)._scale
    assert exact_1d <= noise.scale <= 1.45 * exact_1d


def _vector_delta(sigma: float, shift: list[int], epsilon: float) -> float:
    """Exact delta for independent discrete Gaussian noise on each cell, neighbours `shift` apart.

    The privacy loss depends on the output x only through <x, shift>, whose
    law is the convolution of the per-cell laws scaled by the shift.
    """
    support, pmf = discrete_gaussian_exact(sigma)
    law, low = np.array([1.0]), 0
    for step in shift:
        scaled = np.zeros(step * (len(support) - 1) + 1)
        scaled[step * (support - support[0])] = pmf
        law, low = np.convolve(law, scaled), low + step * int(support[0])
    projection = np.arange(low, low + len(law))
    norm2 = sum(s * s for s in shift)
    loss = (norm2 - 2 * projection) / (2 * sigma**2)  # ln P(x) / P(x - shift) for the noise
    return float(np.sum(law * np.maximum(0.0, 1 - np.exp(epsilon - loss))))


def test_discrete_gaussian_delta_holds_for_a_vector_of_cells():
    epsilon, delta, cells = 2.0, 1e-6, 4
    noise = discrete_gaussian(epsilon, delta, math.sqrt(cells), "test")
    assert _vector_delta(noise.scale, [1] * cells, epsilon) <= delta * (1 + 1e-4)


# ---------------------------------------------------------------- 3. zCDP


@pytest.mark.parametrize(("rho", "l2"), ZCDP_CASES)
def test_zcdp_sigma_is_l2_over_root_two_rho(rho, l2):
    noise = zcdp_discrete_gaussian(rho, l2, 1e-6, "test")
    sigma = l2 / math.sqrt(2 * rho)
    assert noise.scale == pytest.approx(sigma, rel=1e-12)
    assert noise.sampler(np.random.RandomState(0))._scale == pytest.approx(sigma, rel=1e-12)
    assert (noise.rho, noise.sensitivity, noise.delta) == (rho, l2, 1e-6)
    # Its (epsilon, delta) statement is the Canonne-Kamath-Steinke conversion, below Bun-Steinke's.
    assert noise.epsilon == zcdp_epsilon(rho, 1e-6)
    assert noise.epsilon < rho + 2 * math.sqrt(rho * math.log(1e6))


def test_zcdp_takes_a_fractional_l2_as_it_is():
    """sqrt(3) is not rounded up to 2: sigma = sqrt(3) / sqrt(2 rho) already gives rho."""
    noise = zcdp_discrete_gaussian(0.5, math.sqrt(3), 1e-6, "test")
    assert noise.sensitivity == pytest.approx(math.sqrt(3)) and noise.scale == pytest.approx(math.sqrt(3))
    draws = noise.add_to(np.zeros(20_000, dtype="int64"), np.random.RandomState(5))
    assert float(np.std(draws)) == pytest.approx(math.sqrt(3), rel=0.03)  # the sampler uses that sigma


def _renyi(p: np.ndarray, q: np.ndarray, order: float) -> float:
    inside = (p > 0) & (q > 0)
    log_terms = order * np.log(p[inside]) + (1 - order) * np.log(q[inside])
    return float(np.logaddexp.reduce(log_terms)) / (order - 1)


@pytest.mark.parametrize(("rho", "shift"), [(0.02, (1, 1, 1)), (0.1, (1, 1, 1, 1, 1, 1)), (0.5, (2, 1))])
def test_a_vector_with_a_fractional_l2_keeps_its_rho(rho, shift):
    """Outside evidence: a subscriber moving cells by `shift` (L2 = sqrt(sum of squares), not an
    integer) moves the release's noise vector; its Renyi divergence, the sum over the independent
    cells of each cell's exact one, stays within rho alpha at every order. A sigma 10% smaller
    than the calibration (the sensitivity understated) breaks it."""
    l2 = math.sqrt(sum(k * k for k in shift))
    noise = zcdp_discrete_gaussian(rho, l2, 1e-6, "test")

    def divergence(sigma: float, order: float) -> float:
        _, pmf = discrete_gaussian_exact(sigma)
        total = 0.0
        for k in shift:
            moved = np.zeros_like(pmf)
            moved[k:] = pmf[: len(pmf) - k]
            total += _renyi(pmf, moved, order)
        return total

    orders = (1.5, 2.0, 4.0, 8.0)
    assert all(divergence(noise.scale, a) <= rho * a * (1 + 1e-9) for a in orders)
    assert any(divergence(0.9 * noise.scale, a) > rho * a for a in orders)


def _gaussian_exact_epsilon(rho: float, delta: float) -> float:
    """Exact epsilon at delta of the Gaussian with sensitivity 1 and sigma = 1 / sqrt(2 rho), which is
    rho-zCDP (Balle and Wang 2018: delta(eps) = Phi(1/(2s) - eps s) - e^eps Phi(-1/(2s) - eps s))."""
    from scipy.optimize import brentq

    s = 1 / math.sqrt(2 * rho)

    def excess(eps: float) -> float:
        return norm.cdf(1 / (2 * s) - eps * s) - math.exp(eps) * norm.cdf(-1 / (2 * s) - eps * s) - delta

    if excess(0.0) <= 0:
        return 0.0
    high = 1.0
    while excess(high) > 0:
        high *= 2
    return brentq(excess, 0.0, high, xtol=1e-13, rtol=1e-13)


@pytest.mark.parametrize("rho", [1e-4, 0.01, 0.125, 0.5, 2.0])
@pytest.mark.parametrize("delta", [1e-9, 1e-6, 1e-3])
def test_zcdp_to_approx_dp_is_between_the_exact_gaussian_and_bun_steinke(rho, delta):
    """Canonne-Kamath-Steinke: never looser than Bun-Steinke, never tighter than the exact curve of the
    Gaussian mechanism (a rho-zCDP mechanism, so any valid conversion must cover it)."""
    epsilon, delta_out = zcdp_to_approx_dp(rho, delta)
    assert delta_out == delta
    assert epsilon == zcdp_epsilon(rho, delta)
    assert epsilon <= zcdp_epsilon_bun_steinke(rho, delta)
    assert epsilon >= _gaussian_exact_epsilon(rho, delta) * (1 - 1e-9)


def test_zcdp_epsilon_bun_steinke_is_the_simple_formula():
    for rho, delta in [(1e-4, 1e-9), (0.125, 1e-6), (2.0, 1e-3)]:
        assert zcdp_epsilon_bun_steinke(rho, delta) == pytest.approx(
            rho + 2 * math.sqrt(rho * math.log(1 / delta)), rel=1e-12)


def test_zcdp_to_approx_dp_is_monotone():
    rhos = np.geomspace(1e-5, 10, 60)
    by_rho = [zcdp_to_approx_dp(r, 1e-6)[0] for r in rhos]
    assert all(np.diff(by_rho) > 0)
    by_delta = np.array([zcdp_to_approx_dp(0.1, d)[0] for d in np.geomspace(1e-12, 0.5, 60)])
    # Strictly falling, until a delta so large that epsilon 0 holds (for the Gaussian of rho 0.1 that
    # is from its total variation distance, 0.177; the conversion, valid for every mechanism, later).
    positive = by_delta[by_delta > 0]
    assert all(np.diff(positive) < 0)
    assert np.all(by_delta[len(positive):] == 0) and len(positive) >= 55


@pytest.mark.parametrize(("rho", "l2"), [(0.125, 1), (0.02, 1), (0.5, 2), (0.01, 3)])
def test_zcdp_discrete_gaussian_meets_its_converted_epsilon_delta(rho, l2):
    noise = zcdp_discrete_gaussian(rho, l2, 1e-6, "test")
    support, pmf = discrete_gaussian_exact(noise.scale)
    assert hockey_stick_delta(support, pmf, l2, noise.epsilon) <= noise.delta


@pytest.mark.parametrize(("epsilon", "sensitivity"), [(1.0, 1), (0.5, 3), (2.0, 1)])
def test_pure_dp_to_zcdp_bounds_the_geometric_renyi_divergence(epsilon, sensitivity):
    """epsilon-DP gives (epsilon^2 / 2)-zCDP: D_alpha(P || Q) <= rho alpha for the geometric, alpha > 1."""
    rho = pure_dp_to_zcdp(epsilon)
    assert rho == pytest.approx(epsilon**2 / 2)
    _, p = geometric_exact(epsilon, sensitivity)
    q = np.zeros_like(p)
    q[sensitivity:] = p[: len(p) - sensitivity]
    inside = q > 0
    for order in (1.01, 1.5, 2.0, 4.0, 10.0, 50.0):
        log_terms = order * np.log(p[inside]) + (1 - order) * np.log(q[inside])
        renyi = np.logaddexp.reduce(log_terms) / (order - 1)
        assert renyi <= rho * order * (1 + 1e-9)


# ---------------------------------------------------------------- 4. partition selection


@pytest.mark.parametrize(
    ("epsilon", "delta", "max_partitions"),
    [(1.0, 1e-6, 1), (0.5, 1e-5, 3), (2.0, 1e-8, 10), (0.1, 1e-6, 1), (1.0, 1e-9, 24), (5.0, 0.1, 1)],
)
def test_partition_selection_threshold_keeps_delta_and_is_tight(epsilon, delta, max_partitions):
    """True count 1, geometric noise for L1 = G: G P(1 + noise >= tau) <= delta, and not at tau - 1."""
    tau = partition_selection_threshold(epsilon, delta, max_partitions)
    support, pmf = geometric_exact(epsilon, max_partitions, reach=tau)

    def leak(threshold: int) -> float:
        return max_partitions * float(pmf[1 + support >= threshold].sum())

    assert leak(tau) <= delta * (1 + 1e-9)
    assert leak(tau - 1) > delta


# ---------------------------------------------------------------- 5. empirical privacy audit


def batched_release(noise: IntegerNoise, truth: list[int], batch: int = 5_000):
    """A release of the vector `truth` for `privacy_audit`: `batch` independent runs per call."""
    cells = np.asarray(truth, dtype="int64")

    def release(random_state):
        return noise.add_to(np.tile(cells, batch), random_state).reshape(batch, len(cells))

    return release


def test_clopper_pearson_matches_closed_forms():
    lower, upper = clopper_pearson(np.array([0, 10, 4]), 10, 0.95)
    assert lower[0] == 0 and upper[0] == pytest.approx(1 - 0.025 ** (1 / 10))
    assert upper[1] == 1 and lower[1] == pytest.approx(0.025 ** (1 / 10))
    assert (lower[2], upper[2]) == pytest.approx((0.1216, 0.7376), abs=1e-4)


def test_audit_passes_a_calibrated_geometric_and_is_nearly_tight():
    noise = geometric(1.0, 1)
    result = audit_epsilon(batched_release(noise, [10]), batched_release(noise, [11]), AUDIT_RUNS)
    assert result.epsilon_lower_bound <= 1.0, result.summary()
    # Not vacuous: the audit demonstrates most of the budget is really spent.
    assert result.epsilon_lower_bound > 0.8, result.summary()
    assert result.epsilon_point == pytest.approx(1.0, abs=0.15), result.summary()


def test_audit_passes_a_calibrated_geometric_over_several_cells():
    """One subscriber in 3 of 4 cells, L1 = 3: each cell gets epsilon 1/3, the vector epsilon 1."""
    noise = geometric(1.0, 3)
    result = audit_epsilon(
        batched_release(noise, [5, 5, 5, 2]), batched_release(noise, [6, 6, 6, 2]), AUDIT_RUNS
    )
    assert result.epsilon_lower_bound <= 1.0, result.summary()
    assert result.best.statistic == "signed sum", result.summary()


def test_audit_catches_a_sensitivity_understated_fourfold():
    """Claims epsilon 0.5 with sensitivity 1; the neighbours differ by 4 (true epsilon 2)."""
    noise = geometric(0.5, 1)
    result = audit_epsilon(batched_release(noise, [10]), batched_release(noise, [14]), AUDIT_RUNS)
    assert result.epsilon_lower_bound > 0.5, result.summary()
    assert result.epsilon_lower_bound > 1.5, result.summary()


def test_audit_catches_noise_calibrated_per_cell_instead_of_per_vector():
    """Geometric for one cell's sensitivity on a subscriber touching 3 cells: claims 1, spends 3.

    Each cell alone is exactly epsilon 1 and passes; the signed sum over the
    cells that moved catches it.
    """
    noise = geometric(1.0, 1)
    result = audit_epsilon(
        batched_release(noise, [5, 5, 5, 2]), batched_release(noise, [6, 6, 6, 2]), AUDIT_RUNS
    )
    assert result.epsilon_lower_bound > 1.0, result.summary()
    per_cell = max(e.epsilon_lower_bound for e in result.events if e.statistic != "signed sum")
    assert per_cell <= 1.0


def test_audit_with_delta_passes_a_calibrated_discrete_gaussian():
    noise = discrete_gaussian(1.0, 1e-5, 1, "test")
    result = audit_epsilon(
        batched_release(noise, [10]), batched_release(noise, [11]), AUDIT_RUNS, delta=noise.delta
    )
    assert result.epsilon_lower_bound <= noise.epsilon, result.summary()
    assert result.epsilon_lower_bound > 0.1, result.summary()


def test_audit_accepts_one_release_per_call():
    noise = geometric(0.5, 1)

    def release_d(random_state):
        return noise.add_to([10], random_state)

    def release_d_prime(random_state):
        return noise.add_to([14], random_state)

    result = audit_epsilon(release_d, release_d_prime, 4_000)
    assert result.runs == 3_200
    assert result.epsilon_lower_bound > 0.5, result.summary()
