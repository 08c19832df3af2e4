"""One class per metric kind: a new kind is one registered class, and nothing else names a kind.

The new kinds below live in this file only. Registered, they pass config validation, get a
plan with their own sensitivities, are explained, released through the front door on a
Spark frame (charged to the ledger and stored) and drawn in report.html: no other module
learns about them. The scan at the end keeps it so: outside core/kinds no module compares
a kind's name.
"""

from __future__ import annotations

import ast
import datetime as dt
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from releasing import open_releaser
from specs import report_spec

from core.config import Metric
from core.explain import explain
from core.kinds import KINDS, ROWS, UNITS, KindError, MetricKind, Output, register
from core.kinds.base import clamped_output
from core.kinds.builtin import Count, Variance
from core.noise_plan import count_columns, plan_aggregation, release_columns
from core.report_page import page_info, render_report

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("core", "transforms", "expectations", "stages", "flows", "kr_reports")
KINDS_PACKAGE = ROOT / "core" / "kinds"
DAY = dt.date(2026, 11, 1)


class RowsPerSubscriber(MetricKind):
    """Records per subscriber in a cell: a noisy row count over a noisy distinct count."""

    name = "rows_per_subscriber"
    parts = ("rows", "subscribers")
    meaning = "records per subscriber"

    def sensitivity(self, part, max_rows):
        return (max_rows, max_rows) if part == "rows" else (1, 1)

    def input_column(self, part):
        return ROWS if part == "rows" else UNITS

    def release(self, plan, parts, merged, placed):
        name = self.metric.name
        rows = parts[name, "rows"].astype("float64")
        subscribers = np.maximum(parts[name, "subscribers"].astype("float64"), 1.0)
        root = np.sqrt(merged)
        sd = np.sqrt((plan.part("rows").sd * root / subscribers) ** 2
                     + (rows / subscribers**2 * plan.part("subscribers").sd * root) ** 2)
        return {name: clamped_output(rows / subscribers, sd, 0.0, np.inf)}


class StandardDeviation(Variance):
    """The square root of a variance: the same parts and Spark inputs, one more step after noise."""

    name = "stddev"
    meaning = "standard deviation of {column}"

    def release(self, plan, parts, merged, placed):
        (variance,) = super().release(plan, parts, merged, placed).values()
        value = np.sqrt(variance.value)
        sd = variance.sd / (2 * np.maximum(value, 1e-9))
        return {self.metric.name: Output(value, sd, np.sqrt(variance.low), np.sqrt(variance.high))}

    def exact(self, rows, keys, unit, plan):
        return np.sqrt(super().exact(rows, keys, unit, plan))


@pytest.fixture
def new_kinds(monkeypatch):
    for kind in (RowsPerSubscriber, StandardDeviation):
        monkeypatch.setitem(KINDS, kind.name, kind)  # registered for this test only


def _spec(metrics: list[dict]):
    return report_spec({
        "name": "traffic", "source": "network_flows", "partner": "metro-planning",
        "purpose": "aggregate_reports", "policy_clause": "aggregate reports",
        "group_by": [{"column": "region", "values": "regions"}, {"column": "hour", "range": [0, 0]}],
        "contribution": {"max_groups_per_subscriber": 1, "max_rows_per_group": 5},
        "metrics": metrics,
    })


NEW_METRICS = [
    {"name": "subs", "kind": "count_distinct_subscribers", "epsilon": 1000.0},
    {"name": "per_sub", "kind": "rows_per_subscriber", "epsilon": 1000.0},
    {"name": "spread", "kind": "stddev", "column": "bytes", "lower": 0, "upper": 100, "epsilon": 30000.0},
]


def test_an_unregistered_kind_is_refused_naming_the_known_ones():
    with pytest.raises(ValidationError, match=r"unknown metric kind 'rows_per_subscriber' \(known: count, "
                                              r"count_distinct_subscribers, sum, mean, variance"):
        _spec(NEW_METRICS)
    with pytest.raises(KindError, match="registered twice"):
        register(Count)


def test_a_new_kind_is_planned_explained_released_and_drawn(new_kinds, spark, tmp_path):
    spec = _spec(NEW_METRICS)
    plan = plan_aggregation(spec.aggregation, ("North", "South"))
    _, per_sub, spread = plan.metrics
    # its own sensitivities: R rows and 1 subscriber per cell; a variance's parts for stddev
    assert {name: noise.sensitivity for name, noise in per_sub.parts} == {"rows": 5, "subscribers": 1}
    assert spread.part("sum_sq").sensitivity == 5 * 100**2
    assert per_sub.epsilon == 1000.0 and plan.epsilon == pytest.approx(32000.0)
    assert release_columns(plan)[4:] == [
        f"{output}{suffix}" for output in ("subs", "per_sub", "spread")
        for suffix in ("", "_noise_sd", "_ci95_low", "_ci95_high")]
    assert count_columns(plan) == ["subs"]

    text = explain(plan)
    assert "per_sub: rows_per_subscriber; epsilon 1000" in text
    assert "spread: stddev of bytes, clamped to [0, 100]; epsilon 30000" in text
    assert "    rows: geometric, L1 sensitivity 5" in text

    # 30 subscribers per region, each with 2 flows of 10 and 30 bytes: 2 rows each, sd 10
    rows = [(f"{region[0]}{i}", region, 0, value)
            for region in ("North", "South") for i in range(30) for value in (10, 30)]
    flows = spark.createDataFrame(rows, "subscriber string, region string, hour int, bytes bigint")
    release = open_releaser(tmp_path, random_state=np.random.RandomState(0)).release(
        flows, spec.aggregation, DAY, spec.delivery)
    table = release.table
    assert list(table["status"]) == ["released", "released"]
    assert table["per_sub"].to_numpy() == pytest.approx([2.0, 2.0], abs=0.05)
    assert table["spread"].to_numpy() == pytest.approx([10.0, 10.0], abs=0.5)
    assert (table["spread_ci95_low"] <= table["spread"]).all()
    assert [m.kind for m in release.record.metrics] == ["count_distinct_subscribers",
                                                       "rows_per_subscriber", "stddev"]

    page = render_report(table, page_info(spec, release.record))
    assert "<p>records per subscriber; epsilon 1000.</p>" in page
    assert "<p>standard deviation of bytes; clamped to [0, 100]; epsilon 30000.</p>" in page


# ---- no kind's name outside core/kinds -----------------------------------------------------


def _strings(node: ast.AST) -> list[str]:
    """A string constant, or the string constants of a tuple, list or set literal."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return []


def kind_name_uses(source: str, names: set[str]) -> list[int]:
    """Lines that compare something with a kind's name (`kind == "sum"`, `kind in ("mean",
    "variance")`, a match case), or list two kinds' names in one literal (a tuple, list, set
    or dict keys: `COUNTED = ("count", "histogram")`, `{"sum": ..., "mean": ...}[kind]`)."""
    lines = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            if any(s in names for operand in (node.left, *node.comparators) for s in _strings(operand)):
                lines.add(node.lineno)
        elif isinstance(node, ast.MatchValue):
            if set(_strings(node.value)) & names:
                lines.add(node.lineno)
        elif isinstance(node, ast.Tuple | ast.List | ast.Set):
            if len(set(_strings(node)) & names) > 1:
                lines.add(node.lineno)
        elif isinstance(node, ast.Dict):
            keys = {k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
            if len(keys & names) > 1:
                lines.add(node.lineno)
    return sorted(lines)


def test_the_scan_finds_every_way_a_kind_was_compared():
    """Negative control: what the modules did before kinds were classes is found, line by line."""
    before = '''
COUNTED = ("count", "count_distinct_subscribers", "histogram")
def outputs(metric, part):
    if metric.kind == "quantiles":
        return 1
    if part in ("value", "count", "bins") and metric.kind != "sum":
        return 2
    how = {"sum": "sum", "mean": "mean", "variance": var}[metric.kind]
    match metric.kind:
        case "histogram":
            return 3
'''
    assert kind_name_uses(before, set(KINDS)) == [2, 4, 6, 8, 10]
    unrelated = 'total = frame.agg("sum")\nrows = {"count": 1}\nif how == "geometric": pass\n'
    assert kind_name_uses(unrelated, set(KINDS)) == []


def test_no_module_outside_core_kinds_compares_a_kinds_name():
    names = set(KINDS)
    found = {}
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            if KINDS_PACKAGE in path.parents:
                continue
            lines = kind_name_uses(path.read_text(), names)
            if lines:
                found[str(path.relative_to(ROOT))] = lines
    assert found == {}, f"ask the metric's kind (metric.measure, core.kinds) instead: {found}"


def test_every_kind_answers_for_each_of_its_parts():
    """Each registered kind gives a positive sensitivity for every part it noises and words for
    report.html; a kind that forgot a part would plan noise of sensitivity 0 (refused)."""
    for name, kind in KINDS.items():
        assert kind.parts and "{" not in kind.meaning.replace("{column}", ""), name
        metric = _example_metric(name)
        for part in kind.parts:
            l1, l2 = metric.measure.sensitivity(part, max_rows=3)
            assert l1 > 0 and l2 > 0 and math.isfinite(l1), (name, part)
        assert metric.measure.outputs() and metric.measure.what(), name


def _example_metric(kind: str):
    options = {"column": "bytes", "lower": 0, "upper": 10, "quantiles": [0.5], "bins": [0, 5, 10]}
    spec = {"name": "m", "kind": kind, "epsilon": 1.0, **options}
    return Metric.model_validate(spec)


def test_truth_per_kind_for_the_notebooks_matches_a_direct_computation():
    """kr_reports.analysis asks the kind for a metric's true values: a few by hand."""
    rows = pd.DataFrame({"subscriber": ["a", "a", "b"], "g": ["x", "x", "x"], "bytes": [1.0, 3.0, 20.0]})
    metrics = {m["name"]: m for m in [{"name": "n", "kind": "count"},
                                     {"name": "s", "kind": "sum", "column": "bytes", "lower": 0, "upper": 10},
                                     {"name": "v", "kind": "variance", "column": "bytes", "lower": 0,
                                      "upper": 10}]}
    measures = {name: Metric.model_validate({**spec, "epsilon": 1.0}).measure
                for name, spec in metrics.items()}
    truth = {name: measure.exact(rows, ["g"], "subscriber", None) for name, measure in measures.items()}
    assert truth["n"].loc["x", "n"] == 3
    assert truth["s"].loc["x", "s"] == 14.0  # 20 clamped to 10
    assert truth["v"].loc["x", "v"] == pytest.approx(np.var([1.0, 3.0, 10.0]))
