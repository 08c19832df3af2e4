"""A Releaser for tests: a fresh SQLite ledger and release store under a temporary folder."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

from core.config import Budget, PipelineConfig
from core.ledger import Ledger
from core.store import ReleaseStore
from stages.releaser import Releaser

AMPLE = Budget(window_days=1, epsilon=1e12, delta=0.5)
_days = itertools.count()


def ample_config(regions=("North", "South"), budget: Budget = AMPLE) -> PipelineConfig:
    """Public regions, no partners, and `budget` (by default: never exhausted) as the privacy budget."""
    return PipelineConfig(regions=tuple(regions), partners=(), privacy_budget=budget)


def open_releaser(folder: Path, regions=("North", "South"), budget: Budget = AMPLE,
                  random_state=None) -> Releaser:
    return Releaser(Ledger(folder / "ledger.sqlite"), ReleaseStore(folder / "releases"),
                    ample_config(regions, budget), random_state=random_state)


def fresh_period() -> dt.date:
    """A period no earlier call returned: each release in one store gets its own."""
    return dt.date(2000, 1, 1) + dt.timedelta(days=next(_days))
