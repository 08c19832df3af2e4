"""Rolling windows over charges: what a window has spent, whether a release fits, and when it would.

Pure arithmetic over charge rows (anything with period, dataset, partner and the cost columns):
the ledger runs it on rows it read under its lock, the budget planner (core.budget_plan) on
planned charges. Each window's releases are composed as a whole (core.accounting).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

from core.accounting import Cost, fits, guarantee, largest_windows, total
from core.ledger.errors import BudgetExceeded
from core.ledger.records import STORED, BudgetStatus, ChargeRequest, LimitLike, cost_of


def _rolling_window(end: dt.date, window_days: int) -> tuple[str, str]:
    """First and last period (ISO) of the rolling window ending on `end`."""
    return (end - dt.timedelta(days=window_days - 1)).isoformat(), end.isoformat()


def _inside(rows: Sequence, limit: LimitLike, first: str, last: str) -> list:
    return [r for r in rows if first <= r.period <= last and limit.applies_to(r.dataset, r.partner)]


def _is_stored(row) -> bool:
    """A charge whose release was stored (planned charges, which have no state, count as stored)."""
    return getattr(row, "state", STORED) == STORED


def spent_between(rows: Sequence, limit: LimitLike, first: str, last: str) -> tuple[Cost, int]:
    """What the limit's charges with periods in [first, last] (ISO) cost together, and how many of
    them are stored releases (a charge left without its release costs, but is no release).

    `rows`: charges with period, dataset, partner and the cost columns (and state, if any).
    """
    inside = _inside(rows, limit, first, last)
    return total(cost_of(r) for r in inside), sum(1 for r in inside if _is_stored(r))


def _windows_with(rows: Sequence, limit: LimitLike, day: dt.date, cost: Cost) -> list[tuple[dt.date, Cost]]:
    """Every rolling window containing `day` (by its last day), with `cost` added to what it holds."""
    by_period: dict[str, list[Cost]] = {}
    for r in rows:
        if limit.applies_to(r.dataset, r.partner):
            by_period.setdefault(r.period, []).append(cost_of(r))
    reach = limit.window_days - 1
    days = [(day + dt.timedelta(days=k)).isoformat() for k in range(-reach, reach + 1)]
    daily = [total(by_period.get(period, ())) for period in days]
    return [(day + dt.timedelta(days=k), total(daily[k:k + limit.window_days]) + cost)
            for k in range(limit.window_days)]


def overdrawn_window(rows: Sequence, limit: LimitLike, day: dt.date,
                     cost: Cost) -> tuple[dt.date, Cost] | None:
    """A window containing `day` that `cost` would take over the limit (the fullest), else None.

    `rows`: charges with period (ISO), dataset, partner and the cost columns.
    """
    windows = _windows_with(rows, limit, day, cost)
    largest = largest_windows([c for _, c in windows])
    over = [(end, c) for end, c in windows if c in largest and not fits(c, limit.epsilon, limit.delta)]
    return max(over, key=lambda w: guarantee(w[1], limit.delta).epsilon, default=None)


def _returns_on(rows: Sequence, limits: Sequence[LimitLike], day: dt.date, cost: Cost) -> dt.date | None:
    """The first later period this release would fit every limit on, with the charges as they are.

    `rows` must reach a window past the last day searched (two windows after `day`).
    """
    for k in range(1, 2 * max(limit.window_days for limit in limits) + 1):
        later = day + dt.timedelta(days=k)
        if all(overdrawn_window(rows, limit, later, cost) is None for limit in limits):
            return later
    return None


def refusal(request: ChargeRequest, limit: LimitLike, window: tuple[dt.date, Cost],
             rows: Sequence, later_rows: Sequence, limits: Sequence[LimitLike]) -> BudgetExceeded:
    end, with_release = window
    start, _ = _rolling_window(end, limit.window_days)
    spent, _ = spent_between(rows, limit, start, end.isoformat())
    before = guarantee(spent, limit.delta).epsilon
    returns = _returns_on(later_rows, limits, request.period, request.cost)
    reach = 2 * max(lim.window_days for lim in limits)
    if not fits(request.cost, limit.epsilon, limit.delta):
        when = "it alone is more than the limit"
    elif returns:
        when = f"budget for it returns on {returns.isoformat()}"
    else:
        when = f"no day in the next {reach} has room for it"
    after = guarantee(with_release, limit.delta).epsilon
    if math.isinf(after):  # no composition proves it within the limit's delta
        state = f"needs more delta than the limit's {limit.delta:g} with it"
    else:
        state = (f"has epsilon {before:.3g} of {limit.epsilon:g} spent at delta {limit.delta:g} "
                 f"({max(0.0, limit.epsilon - before):.3g} left; with it {after:.3g})")
    message = (
        f"report '{request.report}' for {request.period.isoformat()} refused: it needs epsilon "
        f"{request.cost.epsilon:.3g} (rho {request.cost.rho:.3g}), and the window {start} to "
        f"{end.isoformat()} of {limit.scope} {state}; {when}"
    )
    return BudgetExceeded(message, request.report, request.period, returns)


def budget_status(limit: LimitLike, as_of: dt.date, unit: str, rows: Sequence) -> BudgetStatus:
    """A limit's status from charges (rows with period, dataset, partner and cost columns)."""
    first, last = _rolling_window(as_of, limit.window_days)
    spent, releases = spent_between(rows, limit, first, last)
    proven = guarantee(spent, limit.delta)
    return BudgetStatus(
        scope=limit.scope,
        privacy_unit=unit,
        window_days=limit.window_days,
        window_start=first,
        window_end=last,
        budget_epsilon=limit.epsilon,
        budget_delta=limit.delta,
        spent_epsilon=proven.epsilon,
        spent_delta=proven.delta,
        method=proven.method,
        spent_rho=spent.rho,
        spent_basic_epsilon=spent.epsilon,
        remaining_epsilon=max(0.0, limit.epsilon - proven.epsilon),
        releases=releases,
        unstored=sum(1 for r in _inside(rows, limit, first, last) if not _is_stored(r)),
    )


def windows_span(day: dt.date, limits: Sequence[LimitLike]) -> tuple[str, str]:
    """Periods less than the longest window away from `day`: every window containing it."""
    reach = dt.timedelta(days=max(limit.window_days for limit in limits) - 1)
    return (day - reach).isoformat(), (day + reach).isoformat()


def format_status(statuses: Sequence[BudgetStatus], as_of: dt.date) -> str:
    """A table of each limit's window ending on `as_of`, for people."""
    if not statuses:
        return "no privacy budget configured"
    header = ("limit", "window", "budget eps at delta", "spent eps", "left eps", "by", "spent rho",
              "releases")
    rows = [
        (s.scope, f"{s.window_start} to {s.window_end}", f"{s.budget_epsilon:g} at {s.budget_delta:g}",
         f"{s.spent_epsilon:.4g}", f"{s.remaining_epsilon:.4g}", s.method, f"{s.spent_rho:.4g}",
         str(s.releases) + (f" (+{s.unstored} unstored)" if s.unstored else ""))
        for s in statuses
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    table = "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                      for row in [header, *rows])
    unstored = any(s.unstored for s in statuses)
    return "\n".join([
        f"Privacy budget per {statuses[0].privacy_unit}, rolling windows ending {as_of.isoformat()}",
        table,
        "spent eps: the window's releases composed (basic: epsilons add; zcdp: rhos add, converted "
        "once),\nwhichever proves the smaller epsilon at the limit's delta.",
        *(["unstored: charged, but no release was stored (a run stopped in between); their spend "
           "counts,\nthey are no release (`kr-reports ledger` flags them)"] if unstored else []),
    ])
