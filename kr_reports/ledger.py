"""The persistent privacy ledger (SQLite).

Every release is charged here, inside one write transaction, before anything
is written: the budget check and the insert happen under SQLite's write lock
(`BEGIN IMMEDIATE`), so two runs at once cannot both spend the last of a
budget. A release id is charged at most once; asking again returns the
existing entry and spends nothing.
"""

from __future__ import annotations

import datetime as dt
import math
import sqlite3
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS charges (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    release_id TEXT NOT NULL UNIQUE,
    dataset TEXT NOT NULL,
    privacy_unit TEXT NOT NULL,
    period TEXT NOT NULL,
    report TEXT NOT NULL,
    partner TEXT NOT NULL,
    purpose TEXT NOT NULL,
    epsilon REAL NOT NULL,
    delta REAL NOT NULL,
    charged_at TEXT NOT NULL
)
"""


class BudgetExceeded(RuntimeError):
    """A release would spend more than its dataset's budget allows."""


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
    charged_at: str


@dataclass(frozen=True)
class ChargeRequest:
    release_id: str
    dataset: str
    privacy_unit: str
    period: dt.date
    report: str
    partner: str
    purpose: str
    epsilon: float
    delta: float


class Ledger:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        conn.row_factory = sqlite3.Row
        return conn

    def charges(self, dataset: str | None = None) -> list[Charge]:
        query, args = "SELECT * FROM charges", ()
        if dataset is not None:
            query, args = query + " WHERE dataset = ?", (dataset,)
        with self._connect() as conn:
            return [Charge(**dict(r)) for r in conn.execute(query + " ORDER BY id", args)]

    def spent_near(
        self, conn: sqlite3.Connection, dataset: str, unit: str, period: dt.date, window_days: int
    ) -> tuple[float, float]:
        """Epsilon and delta charged on periods less than a window away from `period`.

        Any rolling window that contains `period` lies inside that span, so
        keeping this sum within budget keeps every such window within budget.
        """
        low = (period - dt.timedelta(days=window_days - 1)).isoformat()
        high = (period + dt.timedelta(days=window_days - 1)).isoformat()
        rows = conn.execute(
            "SELECT epsilon, delta FROM charges WHERE dataset = ? AND privacy_unit = ? "
            "AND period BETWEEN ? AND ?",
            (dataset, unit, low, high),
        ).fetchall()
        return math.fsum(r["epsilon"] for r in rows), math.fsum(r["delta"] for r in rows)

    def charge(
        self, request: ChargeRequest, budget_epsilon: float, budget_delta: float, window_days: int
    ) -> tuple[Charge, bool]:
        """Charge a release once. Returns (entry, newly_charged)."""
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            existing = conn.execute(
                "SELECT * FROM charges WHERE release_id = ?", (request.release_id,)
            ).fetchone()
            if existing:
                conn.execute("COMMIT")
                return Charge(**dict(existing)), False
            spent_eps, spent_delta = self.spent_near(
                conn, request.dataset, request.privacy_unit, request.period, window_days
            )
            if spent_eps + request.epsilon > budget_epsilon + 1e-12 or (
                spent_delta + request.delta > budget_delta + 1e-15
            ):
                raise BudgetExceeded(
                    f"release '{request.release_id}' needs epsilon {request.epsilon:g}, "
                    f"delta {request.delta:g} on dataset '{request.dataset}', but "
                    f"epsilon {spent_eps:g} / delta {spent_delta:g} of the budget "
                    f"(epsilon {budget_epsilon:g}, delta {budget_delta:g} per {window_days} days) "
                    f"is already spent around {request.period.isoformat()}"
                )
            charged_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            cursor = conn.execute(
                "INSERT INTO charges (release_id, dataset, privacy_unit, period, report, partner, "
                "purpose, epsilon, delta, charged_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    request.release_id,
                    request.dataset,
                    request.privacy_unit,
                    request.period.isoformat(),
                    request.report,
                    request.partner,
                    request.purpose,
                    request.epsilon,
                    request.delta,
                    charged_at,
                ),
            )
            conn.execute("COMMIT")
            return Charge(
                id=cursor.lastrowid,
                release_id=request.release_id,
                dataset=request.dataset,
                privacy_unit=request.privacy_unit,
                period=request.period.isoformat(),
                report=request.report,
                partner=request.partner,
                purpose=request.purpose,
                epsilon=request.epsilon,
                delta=request.delta,
                charged_at=charged_at,
            ), True
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            conn.close()
