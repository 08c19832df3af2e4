"""Empirical privacy audit: a statistical lower bound on the epsilon a release actually spends.

Run a randomised release many times on a dataset D and on a neighbour D'
(D plus one subscriber contributing the maximum), estimate, for a family of
events S, P_D(S) and P_D'(S), and bound the privacy loss

    epsilon >= ln((P_D(S) - delta) / P_D'(S))    (and with D, D' swapped)

from below with Clopper-Pearson intervals, Bonferroni-corrected over the whole
family, so that with probability at least `confidence` the returned
`epsilon_lower_bound` does not exceed the true privacy loss of the release. A
release whose lower bound exceeds the epsilon it claims is miscalibrated
(with that confidence); one that stays below is consistent with its claim (an
audit can only refute a claim, never prove it).

Events are one-sided thresholds on statistics of the output vector:
`statistic >= t` and `statistic <= t`. The statistics are each audited
coordinate, plus the sum of the coordinates that moved, signed by the
direction they moved in. Single coordinates only see the share of the budget
spent on that cell; the signed sum sees the loss accumulated over all the
cells one subscriber touches (a mechanism calibrated to one cell's
sensitivity instead of the whole vector's passes per-coordinate events and is
caught by the sum).

The first `selection_fraction` of the runs (the pilot) only chooses the
thresholds and the coordinates that moved; probabilities are estimated on the
remaining runs, so the intervals do not depend on choices made from the same
data.

Example (the engine's per-cell release on neighbouring Spark datasets)::

    result = audit_epsilon(
        lambda rs: release_vector(cells_d, rs),
        lambda rs: release_vector(cells_d_prime, rs),
        runs=20_000,
    )
    assert result.epsilon_lower_bound <= claimed_epsilon, result.summary()

For speed, `release` may return a 2-D array (one row per run, for example
many releases sampled at once); the audit calls it until it has `runs` rows.

Replicas: thousands of runs through the whole release pipeline (Spark
bounding, noise, post-processing, store) from one release each of D and D'.
D holds R copies of a small base population, each copy under its own value
of public replica keys and with subscribers of its own; D' adds to every
copy one subscriber contributing the maximum the bounds allow. Noise is
drawn independently per cell and bounding is per subscriber, so the cells
of one copy are one run: the release table, sorted by the replica keys and
reshaped to (R, cells per copy), is `samples_d` (or `samples_d_prime`) for
`audit_samples`. Private keys take the replica into their values instead
(one copy's keys are "<replica>:<name>"), and the audited vector is whether
each of them was selected. tests/test_privacy_audit_front_door.py audits
every metric kind and partition selection this way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.stats import beta

Release = Callable[[np.random.RandomState | None], np.ndarray]

# Pilot mean differences beyond this many standard errors count as "moved" (two-sided p about 1e-3).
MOVED_Z = 3.29


@dataclass(frozen=True)
class EventEstimate:
    """One event `statistic >= threshold` (or `<=`), its estimated probabilities and privacy loss."""

    statistic: str  # "cell <i>" or "signed sum"
    kind: Literal[">=", "<="]
    threshold: float
    p_d: float
    p_d_prime: float
    epsilon_point: float
    epsilon_lower_bound: float


@dataclass(frozen=True)
class AuditResult:
    """The largest privacy loss the audit can demonstrate, with its event family.

    `epsilon_lower_bound`: with probability >= `confidence`, the release's
    true epsilon (at the given delta) is at least this. `epsilon_point`: the
    plain estimate |ln(P_D(S) / P_D'(S))| for the event S that attains the
    lower bound (a point estimate maximised over events would be biased up).
    """

    epsilon_lower_bound: float
    epsilon_point: float
    events: tuple[EventEstimate, ...]
    runs: int  # runs per dataset used for estimation (after the pilot)
    confidence: float
    delta: float

    @property
    def best(self) -> EventEstimate | None:
        return max(self.events, key=lambda e: e.epsilon_lower_bound, default=None)

    def summary(self) -> str:
        best = self.best
        where = (
            f"{best.statistic} {best.kind} {best.threshold:g} (P_D {best.p_d:.4f}, P_D' {best.p_d_prime:.4f})"
            if best
            else "no events"
        )
        return (
            f"epsilon >= {self.epsilon_lower_bound:.3f} at confidence {self.confidence} "
            f"(point {self.epsilon_point:.3f}; {len(self.events)} events, {self.runs} runs each; "
            f"delta {self.delta:g}; best event {where})"
        )


def clopper_pearson(successes: np.ndarray, trials: int, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact two-sided binomial confidence interval(s) at confidence `level`."""
    k = np.asarray(successes, dtype=float)
    tail = (1 - level) / 2
    with np.errstate(invalid="ignore"):
        lower = np.where(k > 0, beta.ppf(tail, k, trials - k + 1), 0.0)
        upper = np.where(k < trials, beta.ppf(1 - tail, k + 1, trials - k), 1.0)
    return lower, upper


def collect_releases(release: Release, runs: int, random_state: np.random.RandomState | None) -> np.ndarray:
    """`runs` releases as a (runs, cells) array; `release` may return one run (1-D) or a batch (2-D)."""
    rows: list[np.ndarray] = []
    have = 0
    while have < runs:
        out = np.asarray(release(random_state))
        batch = out.reshape(1, -1) if out.ndim <= 1 else out
        if batch.ndim != 2 or batch.shape[0] == 0:
            raise ValueError(f"a release must be a 1-D vector or a non-empty 2-D batch, not {out.shape}")
        if rows and batch.shape[1] != rows[0].shape[1]:
            raise ValueError(f"release width changed from {rows[0].shape[1]} to {batch.shape[1]}")
        rows.append(batch)
        have += batch.shape[0]
    return np.concatenate(rows)[:runs]


def _log_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.log(np.clip(numerator, 0, None)) - np.log(denominator)
    return np.nan_to_num(ratio, nan=0.0, posinf=math.inf, neginf=0.0)


def audit_samples(
    samples_d: np.ndarray,
    samples_d_prime: np.ndarray,
    confidence: float = 0.99,
    *,
    delta: float = 0.0,
    coordinates: Sequence[int] | None = None,
    thresholds: int = 12,
    selection_fraction: float = 0.2,
) -> AuditResult:
    """The audit on releases already drawn: two (runs, cells) arrays, one row per run.

    Rows must be independent runs; the first `selection_fraction` of each
    array is the pilot (see the module docstring).
    """
    d = np.asarray(samples_d, dtype=float)
    d_prime = np.asarray(samples_d_prime, dtype=float)
    d = d.reshape(len(d), -1)
    d_prime = d_prime.reshape(len(d_prime), -1)
    if d.shape[1] != d_prime.shape[1]:
        raise ValueError(f"releases on D and D' differ in width: {d.shape[1]} vs {d_prime.shape[1]}")
    if not 0 < selection_fraction < 1:
        raise ValueError("selection_fraction must be in (0, 1)")
    pilot_d, rest_d = np.split(d, [int(len(d) * selection_fraction)])
    pilot_p, rest_p = np.split(d_prime, [int(len(d_prime) * selection_fraction)])
    if min(len(pilot_d), len(pilot_p), len(rest_d), len(rest_p)) < 2:
        raise ValueError("too few runs for a pilot and an estimation sample")
    cells = range(d.shape[1]) if coordinates is None else coordinates

    # Statistics chosen on the pilot only: each audited cell, and the signed sum of the cells that moved.
    statistics: dict[str, np.ndarray] = {f"cell {i}": np.eye(d.shape[1])[i] for i in cells}
    shift = pilot_p.mean(axis=0) - pilot_d.mean(axis=0)
    stderr = np.sqrt(pilot_p.var(axis=0, ddof=1) / len(pilot_p) + pilot_d.var(axis=0, ddof=1) / len(pilot_d))
    moved = np.zeros(d.shape[1], dtype=bool)
    moved[list(cells)] = True
    with np.errstate(divide="ignore", invalid="ignore"):
        moved &= np.abs(shift) > MOVED_Z * stderr
    if moved.sum() > 1:
        statistics["signed sum"] = np.where(moved, np.sign(shift), 0.0)

    events: list[EventEstimate] = []
    counts_d: list[np.ndarray] = []
    counts_p: list[np.ndarray] = []
    quantiles = np.linspace(0.02, 0.98, thresholds)
    for name, weights in statistics.items():
        pooled_pilot = np.concatenate([pilot_d @ weights, pilot_p @ weights])
        cuts = np.unique(np.quantile(pooled_pilot, quantiles, method="inverted_cdf"))
        values_d, values_p = rest_d @ weights, rest_p @ weights
        for kind in (">=", "<="):
            if kind == ">=":
                hit_d, hit_p = values_d[:, None] >= cuts, values_p[:, None] >= cuts
            else:
                hit_d, hit_p = values_d[:, None] <= cuts, values_p[:, None] <= cuts
            counts_d.append(hit_d.sum(axis=0))
            counts_p.append(hit_p.sum(axis=0))
            events += [EventEstimate(name, kind, float(t), 0.0, 0.0, 0.0, 0.0) for t in cuts]
    if not events:
        return AuditResult(0.0, 0.0, (), len(rest_d), confidence, delta)

    k_d, k_p = np.concatenate(counts_d), np.concatenate(counts_p)
    n_d, n_p = len(rest_d), len(rest_p)
    # Bonferroni: 2 probabilities per event, each in its interval with probability 1 - (1 - confidence) / 2m.
    level = 1 - (1 - confidence) / (2 * len(events))
    low_d, up_d = clopper_pearson(k_d, n_d, level)
    low_p, up_p = clopper_pearson(k_p, n_p, level)
    p_d, p_p = k_d / n_d, k_p / n_p
    lower = np.maximum(np.maximum(_log_ratio(low_d - delta, up_p), _log_ratio(low_p - delta, up_d)), 0.0)
    point = np.maximum(np.maximum(_log_ratio(p_d - delta, p_p), _log_ratio(p_p - delta, p_d)), 0.0)
    events = [
        EventEstimate(e.statistic, e.kind, e.threshold, float(a), float(b), float(pt), float(lb))
        for e, a, b, pt, lb in zip(events, p_d, p_p, point, lower, strict=True)
    ]
    best = int(np.argmax(lower))
    return AuditResult(float(lower[best]), float(point[best]), tuple(events), n_d, confidence, delta)


def audit_epsilon(
    release_d: Release,
    release_d_prime: Release,
    runs: int,
    confidence: float = 0.99,
    *,
    delta: float = 0.0,
    coordinates: Sequence[int] | None = None,
    thresholds: int = 12,
    selection_fraction: float = 0.2,
    random_state: int | None = 0,
) -> AuditResult:
    """Lower confidence bound on the epsilon spent by a release, from `runs` runs on D and on D'.

    release_d, release_d_prime: `release(random_state) -> np.ndarray`, the
        released numeric vector (fixed cell order) on D and on D'. Called
        repeatedly with the same random state, which must advance; a 2-D
        return is a batch of runs.
    runs: runs per dataset (pilot included).
    confidence: joint confidence of the lower bound over all events.
    delta: the release's claimed delta; events are charged it before the ratio.
    coordinates: cells to audit (default all); restrict to the cells the added
        subscriber can touch for more power.
    thresholds: thresholds per statistic, at pilot quantiles 2%..98%.
    random_state: seed for two independent `np.random.RandomState`s (D and
        D'); None passes None to the releases (their own secure randomness).
    """
    if random_state is None:
        state_d = state_d_prime = None
    else:
        seed_d, seed_d_prime = np.random.SeedSequence(random_state).spawn(2)
        state_d = np.random.RandomState(np.random.MT19937(seed_d))
        state_d_prime = np.random.RandomState(np.random.MT19937(seed_d_prime))
    return audit_samples(
        collect_releases(release_d, runs, state_d),
        collect_releases(release_d_prime, runs, state_d_prime),
        confidence,
        delta=delta,
        coordinates=coordinates,
        thresholds=thresholds,
        selection_fraction=selection_fraction,
    )
