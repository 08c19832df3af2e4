"""The benchmarks' way to release: the project's front door on a throwaway ledger and store.

A benchmark that draws noise does it through `stages.releaser.Releaser`, as
the flows do, so what it times and measures is the real release (plan, budget
check, bounding and aggregation in Spark, charge, noise, post-processing, store).
Its ledger and release store live in a scratch folder and vanish with it; its
budgets are the catalog's with an epsilon and delta no benchmark can spend, and
each release is for a new day, so none is served from the store.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pyspark.sql import DataFrame

from core.config import Aggregation, PipelineConfig, load_pipeline_config
from core.ledger import Ledger
from core.store import ReleaseStore
from stages.releaser import Release, Releaser

# Budgets no benchmark exhausts: 10^9 epsilon per subscriber per window (delta must stay < 1).
AMPLE_EPSILON = 1e9
AMPLE_DELTA = 0.5
FIRST_PERIOD = dt.date(2000, 1, 1)


def ample_budgets(pipeline: PipelineConfig) -> PipelineConfig:
    """The pipeline configuration with an ample privacy budget and no caps (keys, partners kept)."""
    ample = pipeline.privacy_budget.model_copy(update={"epsilon": AMPLE_EPSILON, "delta": AMPLE_DELTA})
    return pipeline.model_copy(update={"privacy_budget": ample, "caps": ()})


class ScratchReleaser:
    """A Releaser on a ledger and store in `folder`; each `release` is for the next day."""

    def __init__(self, folder: Path, config_dir: Path):
        folder.mkdir(parents=True, exist_ok=True)
        config = ample_budgets(load_pipeline_config(config_dir))
        self.door = Releaser(Ledger(folder / "ledger.sqlite"), ReleaseStore(folder / "releases"), config)
        self._released = 0

    def plan(self, aggregation: Aggregation):
        return self.door.plan(aggregation)

    def release(self, data: DataFrame, aggregation: Aggregation) -> Release:
        period = FIRST_PERIOD + dt.timedelta(days=self._released)
        self._released += 1
        made = self.door.release(data, aggregation, period)
        if made.reused:
            raise RuntimeError(f"release {made.release_id} was served from the scratch store, not made")
        return made
