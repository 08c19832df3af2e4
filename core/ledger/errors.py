"""The ledger's refusals: over budget, no ledger where one must be, a charge that does not match."""

from __future__ import annotations

import datetime as dt

from core.errors import KrReportsError


class BudgetExceeded(KrReportsError, RuntimeError):
    """A release would take a rolling window over a limit. The message is one line for people."""

    def __init__(self, message: str, report: str, period: dt.date, returns_on: dt.date | None):
        super().__init__(message)
        self.report, self.period, self.returns_on = report, period, returns_on


class LedgerMissing(KrReportsError, RuntimeError):
    """No ledger where one must already exist (it was deleted, emptied, or its URL changed)."""


class ChargeMismatch(KrReportsError, RuntimeError):
    """A release id is already charged, for other terms or for a release already stored."""
