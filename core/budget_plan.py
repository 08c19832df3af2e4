"""Will the catalog's schedule fit its budget? Decided before anything runs.

The schedule releases every report of the catalog once per day (a re-run of a
day is served from the store and spends nothing). `plan_schedule` charges
those releases, day after day, to an empty in-memory ledger with the ledger's
own rule (core.ledger.overdrawn_window) and records the first day each
report would be refused. A cap on a partner that no report delivers to (the
analysts' `internal` queries) is held aside in every window at its worst:
whatever the analysts spend within it, the catalog is not crowded out.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

from core.accounting import Cost, Guarantee, approx_dp_cost, guarantee, total
from core.config import Budget, PipelineConfig, ReportSpec
from core.ledger import overdrawn_window, spent_between
from core.noise_plan import ReportPlan, plan_aggregation


@dataclass(frozen=True)
class PlannedCharge:
    """A row of the simulated ledger (the columns overdrawn_window reads)."""

    period: str
    dataset: str
    partner: str
    epsilon: float
    delta: float
    rho: float
    approx_epsilon: float
    approx_delta: float


@dataclass(frozen=True)
class ReportBudget:
    name: str
    dataset: str
    partner: str
    plan: ReportPlan
    refused_on: dt.date | None  # the first day the schedule's release would be refused


@dataclass(frozen=True)
class LimitSpend:
    """A limit's fullest window over the planned days (reservations included)."""

    limit: Budget
    fullest: Guarantee
    window_end: dt.date | None


@dataclass(frozen=True)
class SchedulePlan:
    first_day: dt.date
    days: int
    reports: tuple[ReportBudget, ...]
    limits: tuple[LimitSpend, ...]
    reserved: Cost  # held aside in every window of the privacy budget

    @property
    def refusals(self) -> dict[str, dt.date]:
        return {r.name: r.refused_on for r in self.reports if r.refused_on is not None}

    def share(self, report: str) -> float:
        """The report's share of a day's rho across the catalog."""
        day = math.fsum(r.plan.cost.rho for r in self.reports)
        return next(r.plan.cost.rho for r in self.reports if r.name == report) / day if day else 0.0


def reservation(limit: Budget, caps: Sequence[Budget], specs: Sequence[ReportSpec]) -> Cost:
    """The worst a capped partner without scheduled reports can add to `limit`'s windows.

    Releases within a cap (C, d) have rhos summing to at most C^2 / 2 and an approximate-DP part
    of at most (C, d); held aside as both at once (the basic epsilon as unbounded), it is never
    less than what they add to a window's zCDP composition.
    """
    delivered = {spec.delivery.partner for spec in specs}
    # Such a partner may query any dataset: its worst is held aside in every limit it can reach.
    held = [cap for cap in caps if cap is not limit and cap.partner is not None
            and cap.partner not in delivered and limit.partner in (None, cap.partner)]
    return total(_worst_within(cap, math.ceil(limit.window_days / cap.window_days)) for cap in held)


def _worst_within(cap: Budget, windows: int) -> Cost:
    """The most `windows` of the cap's windows can add (a shorter cap fills the limit's window often)."""
    epsilon, delta = windows * cap.epsilon, windows * cap.delta
    return Cost(epsilon=math.inf, delta=delta, rho=epsilon**2 / 2, approx_epsilon=epsilon, approx_delta=delta)


def plan_schedule(pipeline: PipelineConfig, specs: Sequence[ReportSpec], days: int,
                  first_day: dt.date = dt.date(2000, 1, 1)) -> SchedulePlan:
    """Release every report once a day for `days` days; who is refused when, and the fullest windows."""
    plans = {spec.name: plan_aggregation(spec.aggregation, pipeline.regions) for spec in specs}
    reserves = {limit: reservation(limit, pipeline.caps, specs) for limit in pipeline.limits}
    charges: list[PlannedCharge] = []
    refused: dict[str, dt.date] = {}
    for offset in range(days):
        day = first_day + dt.timedelta(days=offset)
        for spec in specs:
            cost, limits = plans[spec.name].cost, _limits_for(pipeline, spec)
            if any(overdrawn_window(charges, lim, day, cost + reserves[lim]) for lim in limits):
                refused.setdefault(spec.name, day)
                continue
            charges.append(_planned(day, spec, cost))
    last_day = first_day + dt.timedelta(days=days - 1)
    return SchedulePlan(
        first_day=first_day,
        days=days,
        reports=tuple(ReportBudget(s.name, s.aggregation.source, s.delivery.partner, plans[s.name],
                                   refused.get(s.name)) for s in specs),
        limits=tuple(_fullest(charges, lim, reserves[lim], first_day, last_day) for lim in pipeline.limits),
        reserved=reserves[pipeline.privacy_budget],
    )


def window_rho(pipeline: PipelineConfig, specs: Sequence[ReportSpec]) -> float:
    """The rho the privacy budget's window holds for the catalog's metrics, released daily.

    What is left once the daily partition selections (approximate DP, added as they are) and
    the capped partners' reservation are set aside: the largest rho that still fits.
    """
    budget = pipeline.privacy_budget
    plans = [plan_aggregation(spec.aggregation, pipeline.regions) for spec in specs]
    approx = total(p.selection.cost for p in plans if p.selection is not None)
    selections = approx_dp_cost(approx.approx_epsilon * budget.window_days,
                                approx.approx_delta * budget.window_days)
    fixed = selections + reservation(budget, pipeline.caps, specs)
    if guarantee(fixed, budget.delta).epsilon > budget.epsilon:
        return 0.0
    def fits_with(rho: float) -> bool:
        return guarantee(fixed + Cost(epsilon=math.inf, rho=rho), budget.delta).epsilon <= budget.epsilon

    low, high = 0.0, 1.0
    while fits_with(high):
        low, high = high, 2 * high
    for _ in range(60):  # bisection: the largest rho that fits, to float precision
        middle = (low + high) / 2
        low, high = (middle, high) if fits_with(middle) else (low, middle)
    return low


def metric_shares(pipeline: PipelineConfig, specs: Sequence[ReportSpec], report: str) -> dict[str, float]:
    """Each metric's share of the window's rho when the catalog is released daily."""
    capacity = window_rho(pipeline, specs)
    spec = next(s for s in specs if s.name == report)
    plan = plan_aggregation(spec.aggregation, pipeline.regions)
    days = pipeline.privacy_budget.window_days
    return {m.name: m.cost.rho * days / capacity if capacity else math.inf for m in plan.metrics}


def _limits_for(pipeline: PipelineConfig, spec: ReportSpec) -> list[Budget]:
    return [lim for lim in pipeline.limits if lim.applies_to(spec.aggregation.source, spec.delivery.partner)]


def _planned(day: dt.date, spec: ReportSpec, cost: Cost) -> PlannedCharge:
    return PlannedCharge(day.isoformat(), spec.aggregation.source, spec.delivery.partner, cost.epsilon,
                         cost.delta, cost.rho, cost.approx_epsilon, cost.approx_delta)


def _fullest(charges: list[PlannedCharge], limit: Budget, reserve: Cost, first: dt.date,
             last: dt.date) -> LimitSpend:
    """The limit's fullest window ending within the planned days (with what is held aside)."""
    best, best_end = guarantee(reserve, limit.delta), None
    for offset in range((last - first).days + 1):
        end = first + dt.timedelta(days=offset)
        start = (end - dt.timedelta(days=limit.window_days - 1)).isoformat()
        spent, _ = spent_between(charges, limit, start, end.isoformat())
        window = guarantee(spent + reserve, limit.delta)
        if window.epsilon > best.epsilon:
            best, best_end = window, end
    return LimitSpend(limit, best, best_end)


def format_plan(plan: SchedulePlan, guarantee_sentence: str) -> str:
    """The plan for people: spend per window, refusals, and the noise each metric gets."""
    lines = [guarantee_sentence, "",
             f"Schedule: every report once a day, {plan.days} days from {plan.first_day.isoformat()}."]
    scheduled = {(r.dataset, r.partner) for r in plan.reports}
    for spend in plan.limits:
        lim, g = spend.limit, spend.fullest
        if not any(lim.applies_to(*key) for key in scheduled):
            lines.append(f"- {lim.scope}: no scheduled report; its cap (epsilon {lim.epsilon:g} at delta "
                         f"{lim.delta:g} per {lim.window_days} days) is held aside in the other limits")
            continue
        lines.append(f"- {lim.scope}: fullest {lim.window_days}-day window epsilon {g.epsilon:.3f} of "
                     f"{lim.epsilon:g} at delta {lim.delta:g} ({g.method})")
    if plan.reserved != Cost():
        lines.append(f"  held aside in every window for capped partners without reports: rho "
                     f"{plan.reserved.rho:.4g}, epsilon {plan.reserved.approx_epsilon:g}, "
                     f"delta {plan.reserved.approx_delta:g}")
    lines += ["", "Per report, per day:"]
    for r in plan.reports:
        refused = r.refused_on.isoformat() if r.refused_on else "never"
        lines.append(f"- {r.name} ({r.dataset}, to {r.partner}): rho {r.plan.cost.rho:.5f} "
                     f"({plan.share(r.name):.0%} of the catalog's day), alone epsilon "
                     f"{r.plan.cost.epsilon:.3f}; first refused: {refused}")
        for metric in r.plan.metrics:
            parts = ", ".join(f"{name} {noise.kind} sd {noise.sd:.3g}" for name, noise in metric.parts)
            lines.append(f"    {metric.name} ({metric.kind}): {parts}")
        if r.plan.selection is not None:
            s = r.plan.selection
            lines.append(f"    partition selection: epsilon {s.epsilon:g}, delta {s.delta:g}; released "
                         f"half the time from {s.even_odds} subscribers, always from {s.threshold}")
    refusals = ", ".join(f"{name} from {day.isoformat()}" for name, day in plan.refusals.items())
    verdict = f"Refused: {refusals}" if refusals else "No report is ever refused."
    return "\n".join([*lines, "", verdict])
