"""bench/bench_accuracy.py on the test session's small daily run: every catalog report measured.

The benchmark's own data preparation (generate, ingest, protect: the daily flow's stages) is
what `daily_run` already did; this reads its protected zone only and releases into tmp_path.
"""

from __future__ import annotations

import datetime as dt
import math
import sys
from pathlib import Path

from core.config import load_pipeline_config, load_report_specs
from core.noise_plan import plan_aggregation
from stages.catalog import Catalog

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import bench_accuracy  # noqa: E402


def test_every_catalog_report_is_measured_with_finite_errors(daily_run, config_dir, tmp_path):
    catalog = Catalog(data_dir=daily_run["data"], out_dir=tmp_path / "out")  # read, never written
    day = dt.date.fromisoformat(daily_run["summary"]["day"])
    measured = bench_accuracy.measure_reports(catalog, config_dir, day, tmp_path)

    regions = load_pipeline_config(config_dir).regions
    specs = load_report_specs(config_dir)
    outputs = {(s.name, out) for s in specs
               for m in plan_aggregation(s.aggregation, regions).metrics for out in m.outputs}
    results = measured.results
    assert {(r.report, r.output) for r in results} == outputs
    assert [b.report for b in measured.bounds] == [s.name for s in specs]
    assert any(r.released for r in results)
    for r in results:
        assert r.released <= r.cells, r
        if r.released > r.no_value:  # a cell too small for its quantiles publishes none
            assert math.isfinite(r.median_error) and r.median_error >= 0, r
    for b in measured.bounds:
        assert 0 < b.groups_kept <= 1 and 0 < b.rows_kept <= 1, b
    assert len(bench_accuracy.markdown_table(results).splitlines()) == 2 + len(results)
