"""The persistent privacy ledger (SQLAlchemy Core; SQLite unless a URL says otherwise).

Every release is charged here, inside one transaction that holds the ledger's
write lock, before anything is written: the budget check and the insert happen
together, so two runs at once cannot both spend the last of a budget. On
SQLite the lock is `BEGIN IMMEDIATE`; elsewhere (PostgreSQL) it is a
`LOCK TABLE ... IN SHARE ROW EXCLUSIVE MODE` that conflicts with itself and
with every write. A release id is charged at most once.

A charge is `charged` until its release is stored, then `stored`. Asking
again for a `charged` release id (a run that died between the charge and the
store) returns that charge only when it matches the request in every term
(dataset, period, epsilon, delta, rho and the aggregation's hash); anything
else is refused: a release whose noise may have left, or whose spec changed
after it was paid for, is never paid for twice with one charge.

A deliberate new release of a day's reports (`kr-reports run --new-release`) is
opened here before anything is charged for it (`open_new_release`), each of its
charges names it, and it is closed when every report has been through it. A run
killed in between leaves it open: the next `--new-release` run of that day
resumes it (a report already charged in it is not charged again), and a plain
run refuses the reports it left at their previous release instead of serving
those silently. Each charge names the run that made it (`run`), so a run's
summary states what the ledger grew by in that run, never another run's charge.

A ledger has an identity (a random id written when it is created), which the
release store records: a deleted, emptied or swapped ledger is noticed
rather than silently replaced by a fresh budget. `Ledger(location,
create=False)` refuses to create one.

A charge records the release's cost (core.accounting): its own
(epsilon, delta), its rho, and its approximate-DP part that is not zCDP. A
release is refused when any rolling window containing its period, with the
release added, would exceed a limit: the privacy budget over every release
of the privacy unit (every dataset, report and partner), or a cap over one
dataset's or partner's releases. Each window's releases are composed as a
whole (basic or zCDP, whichever proves the smaller epsilon), so the check is
exact per window rather than a sum of converted epsilons.

Modules: `database` (tables, upgrades, engines, the write lock), `records` (charges,
requests, new releases, status), `windows` (the rolling-window arithmetic, pure),
`charging` (reuse, fit or refusal under the lock), `ledger` (the Ledger) and `errors`.
"""

from core.ledger.database import (
    LEDGER_FILE,
    LEDGER_URL_ENV,
    charges_table,
    ledger_location,
    meta_table,
    new_releases_table,
)
from core.ledger.errors import BudgetExceeded, ChargeMismatch, LedgerMissing
from core.ledger.ledger import DEFAULT_PRIVACY_UNIT, Ledger
from core.ledger.records import (
    CHARGED,
    COST_PARTS,
    STORED,
    BudgetStatus,
    Charge,
    ChargeRequest,
    LimitLike,
    NewRelease,
)
from core.ledger.windows import budget_status, format_status, overdrawn_window, spent_between

__all__ = [
    "CHARGED",
    "COST_PARTS",
    "DEFAULT_PRIVACY_UNIT",
    "LEDGER_FILE",
    "LEDGER_URL_ENV",
    "STORED",
    "BudgetExceeded",
    "BudgetStatus",
    "Charge",
    "ChargeMismatch",
    "ChargeRequest",
    "Ledger",
    "LedgerMissing",
    "LimitLike",
    "NewRelease",
    "budget_status",
    "charges_table",
    "format_status",
    "ledger_location",
    "meta_table",
    "new_releases_table",
    "overdrawn_window",
    "spent_between",
]
