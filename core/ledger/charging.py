"""Charging under the lock: the charges a decision reads; whether a request reuses one, fits, or is refused.

A release id is charged at most once: an existing charge pays again only for the same terms
and only while its release is unstored.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import fields, replace

import sqlalchemy as sa

from core.ledger.database import charges_table, new_releases_table
from core.ledger.errors import ChargeMismatch
from core.ledger.records import CHARGED, COST_PARTS, Charge, ChargeRequest, LimitLike, NewRelease
from core.ledger.windows import overdrawn_window, refusal, windows_span


def charges_between(conn: sa.Connection, unit: str, first: str, last: str) -> list[sa.Row]:
    """Charges of one privacy unit with periods in [first, last], every dataset and partner.

    In the order they were charged: a window's costs are summed in that order, so its floating-point
    total is the same on every backend (PostgreSQL returns rows an UPDATE moved in another order).
    """
    c = charges_table.c
    query = sa.select(c.period, c.dataset, c.partner, c.epsilon, c.delta, c.rho, c.approx_epsilon,
                      c.approx_delta, c.state).where(c.privacy_unit == unit, c.period.between(first, last)
                                                     ).order_by(c.id)
    return list(conn.execute(query))


def _differences(existing: sa.Row, request: ChargeRequest) -> list[str]:
    """The terms in which an existing charge differs from a request for the same release id."""
    row = existing._mapping
    asked = {"dataset": request.dataset, "privacy_unit": request.privacy_unit,
             "period": request.period.isoformat(), "aggregation_hash": request.aggregation_hash,
             **{part: getattr(request.cost, part) for part in COST_PARTS}}
    differ = []
    for term, value in asked.items():
        held = row[term]
        numeric = isinstance(value, float)
        same = math.isclose(held, value, rel_tol=1e-12, abs_tol=0) if numeric else held == value
        if not same:
            differ.append(term if term == "aggregation_hash" else f"{term} {held!r} vs {value!r}")
    return differ


def _reusable_or_refused(existing: sa.Row, request: ChargeRequest) -> sa.Row:
    """An existing charge may pay for this request only if nothing was stored for it and it matches."""
    if existing._mapping["state"] != CHARGED:
        raise ChargeMismatch(
            f"release '{request.release_id}' was charged (ledger entry {existing._mapping['id']}) and its "
            "release stored; it is not paid for again. Serve the stored release, or make a new release"
        )
    differ = _differences(existing, request)
    if differ:
        what = ", ".join("the aggregation (spec hash)" if d == "aggregation_hash" else d for d in differ)
        raise ChargeMismatch(
            f"release '{request.release_id}' is already charged (ledger entry {existing._mapping['id']}) "
            f"for other terms: {what}. The spec changed after the charge; restore it, or make a new release"
        )
    return existing


def charged_or_refused(conn: sa.Connection, request: ChargeRequest,
                        limits: Sequence[LimitLike]) -> sa.Row | None:
    """The release's existing matching charge; else None if every limit can take it; else refused."""
    existing = conn.execute(
        sa.select(charges_table).where(charges_table.c.release_id == request.release_id)
    ).first()
    if existing is not None:
        return _reusable_or_refused(existing, request)
    rows = charges_between(conn, request.privacy_unit, *windows_span(request.period, limits))
    applicable = [limit for limit in limits if limit.applies_to(request.dataset, request.partner)]
    for limit in applicable:
        window = overdrawn_window(rows, limit, request.period, request.cost)
        if window is not None:
            first, _ = windows_span(request.period, limits)
            reach = request.period + dt.timedelta(days=3 * max(lim.window_days for lim in limits))
            later_rows = charges_between(conn, request.privacy_unit, first, reach.isoformat())
            raise refusal(request, limit, window, rows, later_rows, applicable)
    return None


def find_open_new_release(conn: sa.Connection, period: dt.date) -> NewRelease | None:
    t = new_releases_table.c
    row = conn.execute(sa.select(new_releases_table).where(
        t.period == period.isoformat(), t.closed_at.is_(None)).order_by(t.id.desc())).first()
    return NewRelease(**row._mapping) if row is not None else None


def adopted(conn: sa.Connection, charge: Charge, new_release: int | None) -> Charge:
    """A charge left unstored, taken up by a new release: it is that new release's from now on."""
    if new_release is None or charge.new_release == new_release:
        return charge
    conn.execute(sa.update(charges_table).where(charges_table.c.id == charge.id)
                 .values(new_release=new_release))
    return replace(charge, new_release=new_release)


def charge_from(row: sa.Row) -> Charge:
    return Charge(**{f.name: row._mapping[f.name] for f in fields(Charge)})
