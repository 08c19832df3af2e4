"""Worked numbers and outside evidence for core.accounting and the conversions under it.

The evidence is computed here from published definitions, not from the module:

- the exact (epsilon, delta) curve of the Gaussian mechanism (Balle and Wang 2018,
  Theorem 8): with sensitivity 1 and noise sigma,
  delta(eps) = Phi(1 / (2 sigma) - eps sigma) - e^eps Phi(-1 / (2 sigma) - eps sigma).
  That Gaussian is exactly rho-zCDP for sigma = 1 / sqrt(2 rho) (Bun and Steinke 2016), so a
  valid conversion of rho-zCDP to (epsilon, delta) can never claim less than the Gaussian's
  exact epsilon at that delta: a conversion below the curve is too optimistic;
- Corollary 13 of Canonne, Kamath and Steinke (2020), evaluated on a dense grid of Renyi
  orders, to check the module's one-dimensional minimisation found the minimum;
- the two neighbour inequalities of differentially private partition selection
  (Desfontaines, Voss, Gipson and Mandayam 2022), checked for every count n.

Each check has a negative control showing it can fail.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.stats import norm

from core.accounting import (
    Cost,
    Guarantee,
    approx_dp_cost,
    fits,
    guarantee,
    largest_windows,
    pure_dp_cost,
    total,
    zcdp_cost,
)
from core.mechanisms import (
    partition_keep_probabilities,
    partition_selection_threshold,
    zcdp_epsilon,
    zcdp_epsilon_bun_steinke,
    zcdp_to_approx_dp,
)

RHOS = [1e-4, 1e-3, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0]
DELTAS = [1e-5, 1e-6, 1e-9]


# ---------------------------------------------------------------- exact Gaussian curve (Balle and Wang 2018)


def gaussian_delta(epsilon: float, sigma: float) -> float:
    """Exact delta(epsilon) of the Gaussian mechanism with L2 sensitivity 1 and noise sigma."""
    return float(norm.cdf(1 / (2 * sigma) - epsilon * sigma)
                 - math.exp(epsilon) * norm.cdf(-1 / (2 * sigma) - epsilon * sigma))


def gaussian_epsilon(rho: float, delta: float) -> float:
    """The least epsilon at which the rho-zCDP Gaussian (sigma = 1 / sqrt(2 rho)) is (epsilon, delta)-DP."""
    sigma = 1 / math.sqrt(2 * rho)
    if gaussian_delta(0.0, sigma) <= delta:
        return 0.0
    high = 1.0
    while gaussian_delta(high, sigma) > delta:
        high *= 2
    return brentq(lambda e: gaussian_delta(e, sigma) - delta, 0.0, high, xtol=1e-13, rtol=1e-13)


def below_the_gaussian_curve(conversion, rho: float, delta: float) -> bool:
    """A conversion claiming less epsilon than the Gaussian actually needs is too optimistic."""
    return conversion(rho, delta) < gaussian_epsilon(rho, delta) * (1 - 1e-9)


def test_the_gaussian_curve_is_what_balle_and_wang_say():
    """Sanity of the reference: delta falls with epsilon, and at epsilon 0 it is the total variation
    distance of N(0, sigma^2) and N(1, sigma^2), 2 Phi(1 / (2 sigma)) - 1."""
    sigma = 2.0
    deltas = [gaussian_delta(e, sigma) for e in np.linspace(0, 3, 31)]
    assert all(np.diff(deltas) < 0)
    assert deltas[0] == pytest.approx(2 * norm.cdf(1 / (2 * sigma)) - 1, rel=1e-12)
    epsilon = gaussian_epsilon(1 / (2 * sigma**2), 1e-6)
    assert gaussian_delta(epsilon, sigma) == pytest.approx(1e-6, rel=1e-6)


@pytest.mark.parametrize("delta", DELTAS)
@pytest.mark.parametrize("rho", RHOS)
def test_cks_conversion_lies_between_the_exact_gaussian_and_bun_steinke(rho, delta):
    epsilon = zcdp_epsilon(rho, delta)
    assert epsilon <= zcdp_epsilon_bun_steinke(rho, delta)
    assert not below_the_gaussian_curve(zcdp_epsilon, rho, delta), (
        f"rho {rho}, delta {delta}: CKS {epsilon:.6f} < exact Gaussian {gaussian_epsilon(rho, delta):.6f}")


@pytest.mark.parametrize("delta", DELTAS)
@pytest.mark.parametrize("rho", [r for r in RHOS if 0.01 <= r <= 2])
def test_cks_conversion_is_within_ten_percent_of_the_exact_gaussian(rho, delta):
    assert zcdp_epsilon(rho, delta) <= 1.10 * gaussian_epsilon(rho, delta)


@pytest.mark.parametrize("delta", DELTAS)
@pytest.mark.parametrize("rho", RHOS)
def test_a_too_optimistic_conversion_falls_below_the_exact_gaussian(rho, delta):
    """Negative control: the curve check catches a conversion 20% too small everywhere on the grid."""
    def wrong(r, d):
        return 0.8 * zcdp_epsilon(r, d)

    assert below_the_gaussian_curve(wrong, rho, delta)


def cks_epsilon_on_a_grid(rho: float, delta: float) -> float:
    """Corollary 13 of Canonne, Kamath and Steinke at many Renyi orders a > 1: the smallest epsilon with
    exp((a - 1)(a rho - epsilon)) (1 - 1/a)^a / (a - 1) <= delta."""
    orders = 1 + np.geomspace(1e-4, 1e5, 200_001)
    epsilons = (orders * rho
                + (math.log(1 / delta) + orders * np.log1p(-1 / orders) - np.log(orders - 1)) / (orders - 1))
    return float(np.min(epsilons))


@pytest.mark.parametrize("delta", DELTAS)
@pytest.mark.parametrize("rho", RHOS)
def test_cks_minimisation_finds_the_minimum_over_renyi_orders(rho, delta):
    """The module's bounded search lands on the grid minimum (and a valid order never goes below it)."""
    on_grid = cks_epsilon_on_a_grid(rho, delta)
    assert zcdp_epsilon(rho, delta) == pytest.approx(min(on_grid, zcdp_epsilon_bun_steinke(rho, delta)),
                                                     rel=1e-6)


def test_cks_conversion_worked_numbers():
    assert zcdp_epsilon(0.5, 1e-6) == pytest.approx(5.2215, abs=5e-4)
    assert zcdp_epsilon_bun_steinke(0.5, 1e-6) == pytest.approx(5.7565, abs=5e-4)
    # Ten releases of rho 0.05, each converted on its own and the epsilons added, against the
    # ten composed in zCDP (rhos add to 0.5) and converted once.
    assert 10 * zcdp_epsilon_bun_steinke(0.05, 1e-6) == pytest.approx(17.12, abs=5e-3)
    assert 10 * zcdp_epsilon(0.05, 1e-6) == pytest.approx(14.72, abs=5e-3)
    assert zcdp_to_approx_dp(0.5, 1e-6) == (zcdp_epsilon(0.5, 1e-6), 1e-6)


def test_cks_conversion_edges():
    assert zcdp_epsilon(0.0, 1e-6) == 0.0
    for rho, delta in [(-0.1, 1e-6), (0.1, 0.0), (0.1, 1.0)]:
        with pytest.raises(ValueError):
            zcdp_epsilon(rho, delta)


# ---------------------------------------------------------------- costs and how a window composes


def test_pure_dp_and_zcdp_costs_state_both_ways():
    pure = pure_dp_cost([0.5, 1.0])
    assert (pure.epsilon, pure.delta, pure.rho) == (1.5, 0.0, 0.125 + 0.5)
    assert (pure.approx_epsilon, pure.approx_delta) == (0.0, 0.0)
    gaussian = zcdp_cost(0.05, 1e-6)
    assert (gaussian.epsilon, gaussian.delta, gaussian.rho) == (zcdp_epsilon(0.05, 1e-6), 1e-6, 0.05)
    selection = approx_dp_cost(0.3, 1e-7)
    assert selection == Cost(epsilon=0.3, delta=1e-7, approx_epsilon=0.3, approx_delta=1e-7)
    assert pure + selection == total([pure, selection]) == Cost(1.8, 1e-7, 0.625, 0.3, 1e-7)


def test_an_empty_window_costs_nothing():
    assert guarantee(Cost(), 1e-6) == Guarantee(0.0, 0.0, "basic")
    assert guarantee(total([]), 0.0).epsilon == 0.0


def test_one_pure_dp_release_composes_by_basic():
    proven = guarantee(pure_dp_cost([1.0]), 1e-6)
    assert proven == Guarantee(1.0, 0.0, "basic")  # zCDP would say 5.22 (rho 0.5)


def test_a_month_of_daily_pure_dp_releases_composes_by_zcdp():
    """30 days of 6 releases of epsilon 0.1: basic adds to 18; zCDP (rho 0.9) proves 7.31."""
    month = total([pure_dp_cost([0.1] * 6)] * 30)
    assert month.epsilon == pytest.approx(18.0) and month.rho == pytest.approx(0.9)
    proven = guarantee(month, 1e-6)
    assert proven.method == "zcdp" and proven.delta == 1e-6
    assert proven.epsilon == pytest.approx(zcdp_epsilon(0.9, 1e-6), rel=1e-9)
    assert proven.epsilon == pytest.approx(7.306, abs=1e-3)
    # A pure-DP budget (delta 0) cannot use zCDP, which always needs some delta.
    assert guarantee(month, 0.0) == Guarantee(month.epsilon, 0.0, "basic")


def test_the_approximate_part_is_added_after_the_conversion():
    """Partition selection is not zCDP: its delta is set aside and its epsilon added at the end."""
    month = total([pure_dp_cost([0.1] * 6)] * 30)
    window = month + approx_dp_cost(0.5, 1e-7)
    proven = guarantee(window, 1e-6)
    assert proven.method == "zcdp" and proven.delta == 1e-6
    assert proven.epsilon == pytest.approx(zcdp_epsilon(0.9, 9e-7) + 0.5, rel=1e-6)
    # Converting at the whole delta would have been too optimistic.
    assert proven.epsilon > zcdp_epsilon(0.9, 1e-6) + 0.5


def test_approximate_dp_alone_composes_by_adding():
    two = total([approx_dp_cost(0.5, 1e-7)] * 2)
    assert guarantee(two, 1e-6).epsilon == 1.0
    assert guarantee(two, 1e-6).delta == pytest.approx(2e-7)


def test_a_cost_whose_approximate_delta_exceeds_the_budget_cannot_fit():
    greedy = approx_dp_cost(0.1, 2e-6)
    assert guarantee(greedy, 1e-6).epsilon == math.inf
    assert not fits(greedy, 100.0, 1e-6)
    # Nor with zCDP noise beside it: the conversion has no delta left to work with.
    assert not fits(pure_dp_cost([0.1]) + greedy, 100.0, 1e-6)
    assert fits(greedy, 0.1, 2e-6)


def test_a_gaussian_release_needs_delta_in_the_budget():
    release = zcdp_cost(0.05, 1e-6)
    assert not fits(release, 100.0, 0.0)  # neither its own delta nor a conversion fits delta 0
    # Below its own delta, the release is converted again at the budget's delta: a larger epsilon.
    assert guarantee(release, 1e-7) == Guarantee(zcdp_epsilon(0.05, 1e-7), 1e-7, "zcdp")
    assert fits(release, zcdp_epsilon(0.05, 1e-7), 1e-7)
    assert not fits(release, zcdp_epsilon(0.05, 1e-7) - 1e-3, 1e-7)
    assert guarantee(release, 1e-6).epsilon == release.epsilon


def test_fits_forgives_float_sums_that_exactly_fill_the_budget():
    assert pure_dp_cost([0.1, 0.2]).epsilon > 0.3  # 0.30000000000000004
    assert fits(pure_dp_cost([0.1, 0.2]), 0.3, 0.0)
    assert not fits(pure_dp_cost([0.1, 0.2]), 0.2999, 0.0)


def test_composition_is_never_worse_than_either_way_alone():
    window = total([zcdp_cost(0.02, 1e-7)] * 3 + [pure_dp_cost([0.2])] * 4 + [approx_dp_cost(0.1, 1e-8)])
    proven = guarantee(window, 1e-6)
    assert proven.epsilon <= window.epsilon  # basic: the epsilons add
    assert proven.epsilon <= zcdp_epsilon(window.rho, 1e-6 - 1e-8) + 0.1
    assert proven.epsilon == pytest.approx(min(window.epsilon, zcdp_epsilon(window.rho, 1e-6 - 1e-8) + 0.1))


def test_largest_windows_drops_windows_another_covers():
    a, b, c = pure_dp_cost([1.0]), pure_dp_cost([0.5]), approx_dp_cost(0.3, 1e-7)
    assert largest_windows([a, b]) == [a]  # b is covered: if it does not fit, neither does a
    assert largest_windows([b, a + c, a]) == [a + c]
    assert largest_windows([a, c]) == [a, c]  # neither covers the other
    assert largest_windows([a, a, b]) == [a]  # equal windows: the first is kept


# ---------------------------------------------------------------- partition selection (DVGM 2022)

PARTITION_CASES = [(1.0, 1e-6, 1), (0.5, 1e-6, 3), (0.5, 1e-5, 3), (2.0, 1e-8, 10), (0.1, 1e-6, 1),
                   (1.0, 1e-9, 24), (5.0, 0.1, 1)]


def neighbour_violations(pi, epsilon: float, delta: float, max_partitions: int) -> list[int]:
    """Counts n where a partition's release at n and n - 1 subscribers breaks (eps / G, delta / G)-DP:
    pi(n) <= e^eps pi(n-1) + delta (releasing) and 1 - pi(n-1) <= e^eps (1 - pi(n)) + delta (withholding)."""
    eps, dlt = epsilon / max_partitions, delta / max_partitions
    slack = 1e-12
    bad = []
    for n in range(1, len(pi)):
        release = pi[n] <= math.exp(eps) * pi[n - 1] + dlt + slack
        withhold = 1 - pi[n - 1] <= math.exp(eps) * (1 - pi[n]) + dlt + slack
        reverse = pi[n - 1] <= math.exp(eps) * pi[n] + dlt + slack and \
            1 - pi[n] <= math.exp(eps) * (1 - pi[n - 1]) + dlt + slack
        if not (release and withhold and reverse):
            bad.append(n)
    return bad


@pytest.mark.parametrize(("epsilon", "delta", "max_partitions"), PARTITION_CASES)
def test_partition_keep_probabilities_are_private_and_tight(epsilon, delta, max_partitions):
    pi = partition_keep_probabilities(epsilon, delta, max_partitions)
    eps, dlt = epsilon / max_partitions, delta / max_partitions
    assert pi[0] == 0.0
    assert pi[1] == pytest.approx(dlt, rel=1e-12)
    assert pi[-1] == 1.0 and all(p < 1.0 for p in pi[:-1])
    assert all(np.diff(pi) >= 0)
    assert neighbour_violations(pi, epsilon, delta, max_partitions) == []
    # Optimal: at every n one of the two inequalities (or certainty) binds, so no pi(n) could be larger.
    for n in range(1, len(pi)):
        bounds = (math.exp(eps) * pi[n - 1] + dlt, 1 - math.exp(-eps) * (1 - pi[n - 1] - dlt), 1.0)
        assert min(abs(pi[n] - b) for b in bounds) <= 1e-12


@pytest.mark.parametrize(("epsilon", "delta", "max_partitions"), PARTITION_CASES)
def test_a_broken_keep_sequence_violates_the_neighbour_inequalities(epsilon, delta, max_partitions):
    """Negative controls: releasing a one-subscriber partition twice as often, or growing a step too fast."""
    pi = list(partition_keep_probabilities(epsilon, delta, max_partitions))
    doubled = [pi[0], 2 * pi[1], *pi[2:]]
    assert 1 in neighbour_violations(doubled, epsilon, delta, max_partitions)
    n = len(pi) // 2
    jumped = [*pi[:n], min(1.0, pi[n] * 1.5 + 0.01), *pi[n + 1:]]
    assert neighbour_violations(jumped, epsilon, delta, max_partitions) != []


def test_partition_selection_rejects_impossible_parameters():
    for args in [(0.0, 1e-6, 1), (1.0, 0.0, 1), (1.0, 1.0, 1), (1.0, 1e-6, 0)]:
        with pytest.raises(ValueError):
            partition_keep_probabilities(*args)


def test_optimal_partition_selection_releases_from_fewer_subscribers_than_the_union_bound():
    """At epsilon 0.5, delta 1e-6, 3 partitions per subscriber: the union-bound mechanism releases a
    partition half the time from about 87 subscribers (its noisy count reaches the threshold); the
    optimal mechanism from 76."""
    pi = partition_keep_probabilities(0.5, 1e-6, 3)
    union_bound = partition_selection_threshold(0.5, 1e-6, 3)
    even_odds = next(n for n, p in enumerate(pi) if p >= 0.5)
    print(f"union-bound threshold {union_bound}; optimal: even odds at {even_odds}, "
          f"always from {len(pi) - 1}")
    assert union_bound == 87
    assert even_odds == 76 < union_bound
    assert pi[75] < 0.5 <= pi[76]
