"""What the ledger holds and answers: charges, requests for one, new releases, budget status."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from core.accounting import Cost

CHARGED, STORED = "charged", "stored"
COST_PARTS = ("epsilon", "delta", "rho", "approx_epsilon", "approx_delta")


class LimitLike(Protocol):
    """What the ledger reads from a configured limit (`core.config.Budget`)."""

    window_days: int
    epsilon: float
    delta: float

    @property
    def scope(self) -> str: ...

    def applies_to(self, dataset: str, partner: str) -> bool: ...


@dataclass(frozen=True)
class Charge:
    id: int
    release_id: str
    dataset: str
    privacy_unit: str
    period: str
    report: str
    partner: str
    purpose: str
    epsilon: float
    delta: float
    rho: float
    charged_at: str
    aggregation_hash: str = ""
    state: str = STORED
    approx_epsilon: float = 0.0
    approx_delta: float = 0.0
    run: str = ""
    new_release: int | None = None

    @property
    def cost(self) -> Cost:
        return cost_of(self)

    @property
    def number(self) -> int:
        """The release number in the id (`name/period` is 1, `name/period#n` is n)."""
        _, _, number = self.release_id.partition("#")
        return int(number or 1)


@dataclass(frozen=True)
class ChargeRequest:
    release_id: str
    dataset: str
    privacy_unit: str
    period: dt.date
    report: str
    partner: str
    purpose: str
    cost: Cost
    aggregation_hash: str = ""
    run: str = ""  # the run asking (a flow run's id), recorded with a new charge
    new_release: int | None = None  # the open new release (NewRelease.id) it is part of


@dataclass(frozen=True)
class NewRelease:
    """A deliberate new release of one day's reports, open until every report has been through it."""

    id: int
    period: str
    opened_at: str
    closed_at: str | None = None


@dataclass(frozen=True)
class BudgetStatus:
    """One limit in the rolling window ending on `window_end` (inclusive).

    `spent_epsilon` is the smallest epsilon the window's releases are proven
    (epsilon, `spent_delta`)-DP at, composed by `method`; `spent_rho` and
    `spent_basic_epsilon` are the sums it is computed from. `releases` counts the
    charges whose release was stored; `unstored` those charged without a stored
    release (a run stopped between charge and store): their spend counts all the same.
    """

    scope: str
    privacy_unit: str
    window_days: int
    window_start: str
    window_end: str
    budget_epsilon: float
    budget_delta: float
    spent_epsilon: float
    spent_delta: float
    method: str
    spent_rho: float
    spent_basic_epsilon: float
    remaining_epsilon: float
    releases: int
    unstored: int = 0


def cost_of(row) -> Cost:
    """The cost a charge (or a row with its cost columns) records."""
    return Cost(epsilon=row.epsilon, delta=row.delta, rho=row.rho,
                approx_epsilon=row.approx_epsilon, approx_delta=row.approx_delta)
