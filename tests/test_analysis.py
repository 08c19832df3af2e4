"""kr_reports.analysis: what the analyst notebooks compute, on small hand-made files."""

import datetime as dt
import hashlib
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from releasing import open_releaser
from specs import report_spec

from core import mechanisms as mech
from core.accounting import pure_dp_cost
from core.config import Budget, ReportSpec
from core.ledger import ChargeRequest, Ledger
from core.noise_plan import CONFIDENCE, TREE_HEIGHT, plan_aggregation, quantile_rank_sd
from kr_reports import analysis as A
from stages.catalog import Catalog
from stages.delivery import ChecksumMismatch

ROOT_CONFIG = Path(__file__).resolve().parents[1] / "config"
DAY = dt.date(2026, 11, 1)
REGIONS = ("North", "South")
HUGE = 1e7  # an epsilon that makes the noise vanish


def _spec(**overrides) -> ReportSpec:
    base = {
        "name": "traffic", "source": "network_flows", "partner": "metro-planning",
        "purpose": "aggregate_reports", "policy_clause": "aggregate reports",
        "group_by": [{"column": "region", "values": "regions"}, {"column": "hour", "range": [0, 2]}],
        "contribution": {"max_groups_per_subscriber": 3, "max_rows_per_group": 2},
        "metrics": [
            {"name": "subs", "kind": "count_distinct_subscribers", "epsilon": HUGE},
            {"name": "total", "kind": "sum", "column": "bytes", "lower": 0, "upper": 1000, "epsilon": HUGE},
        ],
    }
    base.update(overrides)
    return report_spec(base)


ALL_KINDS = [
    {"name": "subs", "kind": "count_distinct_subscribers", "epsilon": 1.0},
    {"name": "flows", "kind": "count", "epsilon": 1.0},
    {"name": "total", "kind": "sum", "column": "bytes", "lower": 0, "upper": 1000, "epsilon": 1.0},
    {"name": "avg", "kind": "mean", "column": "bytes", "lower": 0, "upper": 1000, "epsilon": 1.0},
    {"name": "var", "kind": "variance", "column": "bytes", "lower": 0, "upper": 1000, "epsilon": 1.0},
    {"name": "q", "kind": "quantiles", "column": "bytes", "lower": 0, "upper": 1000,
     "quantiles": [0.5, 0.9], "epsilon": 1.0},
    {"name": "h", "kind": "histogram", "column": "bytes", "bins": [0, 50, 1000], "epsilon": 1.0},
]


# --- settings and deliveries -------------------------------------------------------


def test_settings_default_to_the_project_root_and_follow_the_environment(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    default = A.settings_from_env({}, notebooks)
    assert default.catalog == Catalog(tmp_path / "data", tmp_path / "out")
    assert default.config_dir == tmp_path / "config"
    assert default.ledger == tmp_path / "data" / "ledger.sqlite"
    assert default.report is None
    env = {"KR_DATA_DIR": "/srv/kr/data", "KR_OUT_DIR": "elsewhere/out", "KR_REPORT": "plan_mix",
           "KR_LEDGER_URL": "postgresql://ledger-host/kr", "KR_CONFIG_DIR": "/etc/kr"}
    chosen = A.settings_from_env(env, notebooks)
    assert chosen.catalog == Catalog(Path("/srv/kr/data"), tmp_path / "elsewhere" / "out")
    assert (chosen.config_dir, chosen.ledger, chosen.report) == (
        Path("/etc/kr"), "postgresql://ledger-host/kr", "plan_mix")


def _manifest_only(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text("{}")


def test_find_deliveries_skips_staging_folders_and_choose_takes_a_reports_latest_day(tmp_path):
    root = tmp_path / "deliveries"
    _manifest_only(root / "metro-planning" / "b_report" / "2026-11-02")
    _manifest_only(root / "metro-planning" / "b_report" / "2026-11-01")
    _manifest_only(root / "metro-planning" / "b_report" / "2026-11-01.release-10")  # --new-release
    _manifest_only(root / "metro-planning" / "b_report" / "2026-11-01.release-2")
    _manifest_only(root / "adreach" / "a_report" / "2026-11-01")
    _manifest_only(root / "adreach" / "a_report" / ".2026-11-03.tmp-0123")  # being written
    found = A.find_deliveries(tmp_path)
    assert found[["report", "period", "release"]].values.tolist() == [
        ["a_report", "2026-11-01", 1], ["b_report", "2026-11-01", 1], ["b_report", "2026-11-01", 2],
        ["b_report", "2026-11-01", 10], ["b_report", "2026-11-02", 1]]
    assert A.choose_delivery(found) == root / "adreach" / "a_report" / "2026-11-01"
    assert A.choose_delivery(found, "b_report") == root / "metro-planning" / "b_report" / "2026-11-02"
    with pytest.raises(LookupError, match="delivered: a_report, b_report"):
        A.choose_delivery(found, "plan_mix")
    with pytest.raises(LookupError, match="make run"):
        A.choose_delivery(A.find_deliveries(tmp_path / "nothing"))


# A tiny run: protected flows and profiles, and a delivery released from them with
# noise that vanishes and bounds no subscriber reaches, so it equals the truth.
PROFILES = [("s0", "North"), ("s1", "North"), ("s2", "North"), ("s3", "North"), ("s4", "North"),
            ("s5", "North"), ("s6", "South"), ("z", "East")]
FLOWS = ([(f"s{i}", 100 * (i + 1), 0) for i in range(6)]  # North 0: 6 subscribers, 2,100 bytes
         + [(f"s{i}", 50, 1) for i in range(3)]  # North 1: 3 subscribers, 150 bytes
         + [("s6", 5000, 2), ("z", 10, 0)])  # South 2: 1 subscriber, clamped; East: outside


def _write_protected(catalog: Catalog) -> None:
    from core.schemas import SOURCES

    flows = pd.DataFrame(FLOWS, columns=["subscriber", "bytes", "hour"])
    flows["start_hour"] = pd.Timestamp(DAY) + pd.to_timedelta(flows.pop("hour"), unit="h")
    frames = {"network_flows": flows, "subscribers": pd.DataFrame(PROFILES, columns=["subscriber", "region"])}
    for name, frame in frames.items():
        folder = catalog.protected(SOURCES[name], DAY)
        folder.mkdir(parents=True)
        frame.to_parquet(folder / "part-00000.parquet", index=False)


def _deliver(folder: Path, spec: ReportSpec, plan, data: pd.DataFrame) -> Path:
    """A delivery as partners receive it: data files and a manifest with their SHA-256."""
    folder.mkdir(parents=True)
    data.to_parquet(folder / "data.parquet", index=False)
    data.to_csv(folder / "data.csv", index=False)
    manifest = {
        "report": spec.name, "partner": spec.delivery.partner, "purpose": spec.delivery.purpose,
        "period": DAY.isoformat(), "release_id": f"{spec.name}/{DAY.isoformat()}",
        "privacy": {"epsilon": plan.epsilon, "delta": plan.delta, "metrics": _metric_records(plan)},
        "spec": spec.model_dump(mode="json"),
        "files": {name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
                  for name in ("data.parquet", "data.csv")},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _metric_records(plan) -> list[dict]:
    return [{"name": m.name, "kind": m.kind, "column": m.metric.column, "outputs": list(m.outputs),
             "epsilon": m.epsilon, "delta": m.delta, "rho": m.rho,
             "parts": [{"part": name, "mechanism": noise.kind, "sensitivity": noise.sensitivity,
                        "noise_sd": noise.sd, "ci95_half_width": noise.ci_half_width(CONFIDENCE)}
                       for name, noise in m.parts]}
            for m in plan.metrics]


def _flows_frame(spark):
    """FLOWS with each subscriber's region, as the release reads them."""
    flows = pd.DataFrame(FLOWS, columns=["subscriber", "bytes", "hour"]).merge(
        pd.DataFrame(PROFILES, columns=["subscriber", "region"]), on="subscriber")
    return spark.createDataFrame(flows[["subscriber", "region", "hour", "bytes"]])


@pytest.fixture
def run(tmp_path, spark):
    catalog = Catalog(tmp_path / "data", tmp_path / "out")
    _write_protected(catalog)
    spec = _spec(min_subscribers=3, sparse_cells="suppress")
    plan = plan_aggregation(spec.aggregation, REGIONS)
    releaser = open_releaser(tmp_path / "release", REGIONS, random_state=np.random.RandomState(3))
    data = releaser.release(_flows_frame(spark), spec.aggregation, DAY).table
    folder = catalog.out_dir / "deliveries" / spec.delivery.partner / spec.name / DAY.isoformat()
    return {"catalog": catalog, "plan": plan, "delivery": _deliver(folder, spec, plan, data)}


def test_load_delivery_reads_a_verified_delivery(run):
    delivery = A.load_delivery(run["delivery"])
    assert (delivery.report, delivery.period, delivery.keys) == ("traffic", DAY, ("region", "hour"))
    assert delivery.outputs == ("subs", "total")
    assert delivery.aggregation.min_subscribers == 3
    assert len(delivery.data) == 2 * 3


def test_load_delivery_refuses_a_file_that_is_not_the_manifests(run):
    (run["delivery"] / "data.csv").write_text("region,hour\nNorth,0\n")
    with pytest.raises(ChecksumMismatch, match=r"data\.csv"):
        A.load_delivery(run["delivery"])


def test_delivery_summary_and_noise_table_state_the_privacy_promise(run):
    delivery = A.load_delivery(run["delivery"])
    facts = dict(A.delivery_summary(delivery).values.tolist())
    assert facts["cells released"] == "2" and facts["cells suppressed"] == "4"
    assert (facts["cells per subscriber (max)"], facts["rows per cell (max)"]) == ("3", "2")
    assert facts["k (min noisy subscribers)"] == "3" and facts["accounting"] == "pure_dp"
    noise = A.noise_table(delivery)
    assert noise[["metric", "mechanism", "sensitivity"]].values.tolist() == [
        ["subs", "geometric", 3], ["total", "geometric", 3 * 2 * 1000]]


def test_released_values_keep_published_cells_with_their_intervals(run):
    values = A.released_values(A.load_delivery(run["delivery"]), "total")
    assert values["cell"].tolist() == ["North / 0", "North / 1"]
    assert values["released"].tolist() == [2100, 150]
    assert (values["low"] <= values["released"]).all() and (values["released"] <= values["high"]).all()
    assert list(values.columns) == ["region", "hour", "cell", "status", "output", "released", "noise_sd",
                                    "low", "high"]


def test_released_values_label_a_remainder_row():
    data = pd.DataFrame({"region": ["North", "North"], "hour": pd.array([3, None], dtype="Int64"),
                         "status": ["merged", "remainder"], "n": [None, 7.0], "n_noise_sd": [None, 1.0],
                         "n_ci95_low": [None, 5.0], "n_ci95_high": [None, 9.0]})
    manifest = {"spec": _spec().model_dump(mode="json"), "privacy": {"metrics": []}}
    values = A.released_values(A.Delivery(Path("."), manifest, data), "n")
    assert values[["cell", "status", "released"]].values.tolist() == [["North / remainder", "remainder", 7.0]]


# --- true values -----------------------------------------------------------------


def test_report_inputs_add_profile_attributes_and_the_hour(run):
    inputs = A.report_inputs(run["catalog"], _spec().aggregation, DAY)
    north_zero = inputs[(inputs["region"] == "North") & (inputs["hour"] == 0)]
    assert sorted(north_zero["subscriber"]) == [f"s{i}" for i in range(6)]
    assert inputs.loc[inputs["subscriber"] == "s6", "hour"].tolist() == [2]


def test_report_inputs_name_a_column_the_protected_zone_lacks(run):
    spec = _spec(group_by=[{"column": "domain_category", "private": True}],
                 partition_selection={"epsilon": 1.0, "delta": 1e-6})
    with pytest.raises(A.TruthUnavailable, match="domain_category"):
        A.report_inputs(run["catalog"], spec.aggregation, DAY)


def test_report_keys_derive_what_the_release_derives():
    hours = pd.to_datetime(["2026-11-01 07:00", "2026-11-01 23:00", "2026-11-01 00:00"])
    calls = pd.DataFrame({"subscriber": ["a", "b", "c"], "cell_id": ["C0912", "C0170", None],
                          "start_hour": hours})
    profiles = pd.DataFrame({"subscriber": ["a", "b"], "region": ["Seoul", "Busan"],
                             "age_band": ["20-29", "30-39"], "addons": ["music_streaming;extra_data", None]})
    frames = {"call_records": calls, "subscribers": profiles}
    keyed = A.with_report_keys("call_records", frames, ["cell_area"])
    assert keyed["cell_area"].tolist()[:2] == ["C091", "C017"] and pd.isna(keyed["cell_area"].iloc[2])
    assert keyed["hour"].tolist() == [7, 23, 0] and keyed["region"].tolist()[:2] == ["Seoul", "Busan"]
    own = A.with_report_keys("subscribers", {"subscribers": profiles}, ["addon_extra_data", "addon_extra"])
    assert own["addon_extra_data"].tolist() == [1, 0] and own["addon_extra"].tolist() == [0, 0]
    visits = pd.DataFrame({"subscriber": ["a", "b", "a"], "domain": ["Naver.com", "unknown.example", None],
                           "visit_hour": pd.to_datetime(["2026-11-01 05:00"] * 3)})
    categories = pd.DataFrame({"domain": ["naver.com"], "category": ["search"]})
    frames = {"web_visits": visits, "subscribers": profiles, "domain_categories": categories}
    assert A.with_report_keys("web_visits", frames, ["category"])["category"].tolist() == [
        "search", "uncategorized", "uncategorized"]


def test_true_values_follow_the_releases_rules_without_bounding_or_noise():
    values = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    rows = [(f"s{i}", "North", 0, v) for i, v in enumerate(values)]
    rows += [("s0", "North", 1, 5), ("n", "North", 1, None),  # a row without bytes is not used
             ("x", "South", 2, 999_999), ("y", "South", 0, -5), ("e", "East", 0, 10), ("w", "North", 7, 1)]
    inputs = pd.DataFrame(rows, columns=["subscriber", "region", "hour", "bytes"])
    plan = plan_aggregation(_spec(metrics=ALL_KINDS).aggregation, REGIONS)
    truth = A.true_values(inputs, plan).set_index(["region", "hour"])
    assert truth.index.tolist() == [("North", 0), ("North", 1), ("South", 0), ("South", 2)]
    cell = truth.loc[("North", 0)]
    assert (cell["subs"], cell["flows"], cell["total"], cell["input_rows"]) == (10, 10, 550, 10)
    assert (cell["avg"], cell["var"]) == (pytest.approx(55), pytest.approx(np.var(values)))
    assert (cell["q_p50"], cell["q_p90"]) == (pytest.approx(55), pytest.approx(91))
    assert (cell["h_b0"], cell["h_b1"]) == (4, 6)
    assert truth.loc[("North", 1), "subs"] == 1
    assert truth.loc[("South", 2), ["total", "avg", "h_b1"]].tolist() == [1000, 1000, 1]  # clamped
    assert truth.loc[("South", 0), ["total", "h_b0", "h_b1"]].tolist() == [0, 1, 0]  # below: first bin


def test_true_values_of_no_rows_have_every_output_column():
    empty = pd.DataFrame({"subscriber": pd.Series([], dtype=object), "region": pd.Series([], dtype=object),
                          "hour": pd.Series([], dtype="int64"), "bytes": pd.Series([], dtype="float64")})
    plan = plan_aggregation(_spec(metrics=ALL_KINDS).aggregation, REGIONS)
    truth = A.true_values(empty, plan)
    assert truth.empty
    assert {"q_p50", "q_p90", "h_b0", "h_b1", "avg", "input_rows"} <= set(truth.columns)
    kept = A.bounding_kept_share(empty, plan, (1,), (1,))
    assert kept["kept_share"].isna().all()


def test_true_vs_released_flags_coverage_and_fills_empty_cells():
    released = pd.DataFrame({
        "region": ["North", "North", "South", "South"], "hour": [0, 1, 0, None],
        "cell": ["North / 0", "North / 1", "South / 0", "South / remainder"],
        "status": ["released", "released", "released", "remainder"], "output": "n",
        "released": [12.0, 3.0, 2.0, 9.0], "noise_sd": 1.0,
        "low": [10.0, 1.0, 0.0, 7.0], "high": [14.0, 5.0, 4.0, 11.0]})
    truth = pd.DataFrame({"region": ["North", "North"], "hour": [0, 1], "n": [15, 4]})
    counted = A.true_vs_released(released, truth, "n", empty_value=0.0)
    assert counted[["cell", "true", "error", "covered"]].values.tolist() == [
        ["North / 0", 15.0, -3.0, False], ["North / 1", 4.0, -1.0, True], ["South / 0", 0.0, 2.0, True]]
    averaged = A.true_vs_released(released, truth, "n", empty_value=np.nan)
    assert averaged["cell"].tolist() == ["North / 0", "North / 1"]  # a mean of no rows has no truth


def test_compare_release_matches_the_truth_when_noise_and_bounding_vanish(run):
    delivery = A.load_delivery(run["delivery"])
    truth = A.load_truth(run["catalog"], delivery, run["plan"])
    assert truth.note.startswith("true values of 3 cells with data")
    comparison = A.compare_release(delivery, truth)
    assert comparison["output"].value_counts().to_dict() == {"subs": 2, "total": 2}
    assert (comparison["error"] == 0).all() and comparison["covered"].all()
    summary = A.accuracy_summary(comparison).set_index("output")
    assert summary.loc["subs", "cells"] == 2 and summary.loc["subs", "coverage"] == 1.0
    assert summary.loc["total", "mean_true"] == pytest.approx((2100 + 150) / 2)


def test_accuracy_summary_averages_per_output():
    comparison = pd.DataFrame({"output": ["a", "a", "b"], "error": [-2.0, 4.0, 1.0],
                               "covered": [True, False, True], "noise_sd": [1.0, 3.0, 5.0],
                               "true": [10.0, 20.0, 7.0]})
    summary = A.accuracy_summary(comparison).set_index("output")
    measures = ["cells", "coverage", "mean_abs_error", "mean_noise_sd"]
    assert summary.loc["a", measures].tolist() == [2, 0.5, 3.0, 2.0]
    assert summary.loc["b", "median_abs_error"] == 1.0


def test_without_true_values_the_comparison_is_empty_and_says_why(run):
    delivery = A.load_delivery(run["delivery"])
    comparison = A.compare_release(delivery, A.Truth(None, "keys derived in Spark"))
    assert comparison.empty and A.accuracy_summary(comparison).empty


# --- the ledger --------------------------------------------------------------------


def _charge(ledger: Ledger, release_id: str, day: dt.date, epsilon: float, dataset="network_flows",
            report="traffic") -> None:
    ledger.charge(ChargeRequest(release_id=release_id, dataset=dataset, privacy_unit="subscriber",
                                period=day, report=report, partner="p", purpose="aggregate_reports",
                                cost=pure_dp_cost([epsilon])), [Budget(window_days=30, epsilon=100.0)])


@pytest.fixture
def ledger_file(ledger_backend, tmp_path):
    """A ledger with three charges: a SQLite file, or a database on the test PostgreSQL server."""
    path = ledger_backend.new(tmp_path / "ledger.sqlite")
    ledger = Ledger(path)
    _charge(ledger, "traffic/2026-11-01", DAY, 1.0)
    _charge(ledger, "traffic/2026-11-10", DAY + dt.timedelta(days=9), 0.5)
    _charge(ledger, "reach/2026-11-10", DAY + dt.timedelta(days=9), 0.25, "web_visits", "reach")
    return path


BUDGETS = (Budget(window_days=30, epsilon=4.0),
           Budget(dataset="web_visits", window_days=7, epsilon=2.0),
           Budget(dataset="devices", window_days=30, epsilon=2.0))
ALL, WEB, DEVICES = "all releases", "dataset web_visits", "dataset devices"


def _contents(location):
    """What a ledger holds: byte for byte for a SQLite file, else its charges."""
    if isinstance(location, Path):
        return hashlib.sha256(location.read_bytes()).hexdigest()
    return Ledger(location).charges()


def test_ledger_history_reads_every_charge_without_writing(ledger_file):
    before = _contents(ledger_file)
    history = A.ledger_history(ledger_file)
    assert history["release_id"].tolist() == ["traffic/2026-11-01", "traffic/2026-11-10", "reach/2026-11-10"]
    assert history["period"].tolist() == [DAY, DAY + dt.timedelta(days=9), DAY + dt.timedelta(days=9)]
    assert history["epsilon"].tolist() == [1.0, 0.5, 0.25]
    assert _contents(ledger_file) == before


def test_ledger_history_of_a_missing_ledger_creates_nothing(tmp_path):
    with pytest.raises(FileNotFoundError, match="make run"):
        A.ledger_history(tmp_path / "ledger.sqlite")
    assert not (tmp_path / "ledger.sqlite").exists()


def test_budget_over_time_follows_the_ledgers_rolling_window(ledger_file):
    timeline = A.budget_over_time(A.ledger_history(ledger_file), BUDGETS)
    every = timeline[timeline["scope"] == ALL].set_index("day")
    spent = {d: every.loc[DAY + dt.timedelta(days=d), "spent_epsilon"] for d in (0, 9, 29, 30, 39)}
    assert spent == {0: 1.0, 9: 1.75, 29: 1.75, 30: 0.75, 39: 0.0}  # the first charge leaves on day 30
    assert every.index.max() == DAY + dt.timedelta(days=9 + 30)  # until the last leaves the longest window
    assert every.loc[DAY + dt.timedelta(days=9), "remaining_epsilon"] == 2.25
    web = timeline[timeline["scope"] == WEB].set_index("day")["spent_epsilon"]
    assert (web[DAY + dt.timedelta(days=15)], web[DAY + dt.timedelta(days=16)]) == (0.25, 0.0)
    assert (timeline.loc[timeline["scope"] == DEVICES, "remaining_epsilon"] == 2.0).all()
    day = DAY + dt.timedelta(days=12)
    official = {s.scope: s.spent_epsilon for s in Ledger(ledger_file).status(BUDGETS, day)}
    assert timeline[timeline["day"] == day].set_index("scope")["spent_epsilon"].to_dict() == official


def test_latest_status_and_spend_by_period(ledger_file):
    history = A.ledger_history(ledger_file)
    latest = A.latest_status(history, BUDGETS)
    assert set(latest["day"]) == {DAY + dt.timedelta(days=9)}
    assert latest.set_index("scope")["spent_epsilon"].to_dict() == {ALL: 1.75, WEB: 0.25, DEVICES: 0.0}
    spend = A.spend_by_period(history)  # rho: a pure epsilon counts as epsilon^2 / 2
    assert spend.loc[DAY + dt.timedelta(days=9)].to_dict() == {"reach": 0.25**2 / 2, "traffic": 0.5**2 / 2}
    empty = A.latest_status(history.iloc[:0], BUDGETS, today=DAY)
    assert (empty["spent_epsilon"] == 0).all() and set(empty["day"]) == {DAY}


# --- accuracy against the parameters ---------------------------------------------


def test_default_grid_brackets_the_spec():
    grid = A.default_grid(_spec(metrics=ALL_KINDS[:2], contribution={"max_groups_per_subscriber": 6,
                                                                     "max_rows_per_group": 8}).aggregation)
    assert grid.epsilons[3] == pytest.approx(2.0) and grid.epsilons[0] == pytest.approx(0.25)
    assert grid.max_groups == (2, 3, 6, 12, 24) and grid.max_rows == (2, 4, 8, 16, 32)


@pytest.mark.parametrize("accounting", ["pure_dp", "approx_dp", "zcdp"])
def test_spec_variant_sets_the_total_epsilon_and_keeps_each_metrics_share(accounting):
    budget = "rho" if accounting == "zcdp" else "epsilon"
    metrics = [{"name": "subs", "kind": "count_distinct_subscribers", budget: 0.1},
               {"name": "flows", "kind": "count", budget: 0.3}]
    delta = 0.0 if accounting == "pure_dp" else 1e-6
    spec = _spec(metrics=metrics, accounting=accounting, delta=delta).aggregation
    variant = A.spec_variant(spec, 2.0, 5, 7)
    assert plan_aggregation(variant, REGIONS).epsilon == pytest.approx(2.0)
    assert A.metrics_epsilon(variant) == pytest.approx(2.0)
    first, second = (getattr(m, budget) for m in variant.metrics)
    assert second == pytest.approx(3 * first)
    assert (variant.contribution.max_groups_per_subscriber, variant.contribution.max_rows_per_group) == (5, 7)


def test_accuracy_grid_gives_each_metrics_noise_per_cell_in_its_units():
    metrics = [{**m, "epsilon": 0.5} for m in ALL_KINDS]
    plan = plan_aggregation(_spec(metrics=metrics).aggregation, REGIONS)
    grid = A.accuracy_grid(plan, A.ParameterGrid((3.5, 7.0), (2, 4), (5,)), rows_per_cell=40)
    at = grid.set_index(["epsilon", "max_groups", "metric"])
    # 7 metrics share epsilon 3.5 equally: 0.5 each, split again over a metric's parts.
    assert at.loc[(3.5, 2, "subs"), "noise_sd"] == pytest.approx(mech.geometric(0.5, 2).sd)
    assert at.loc[(3.5, 4, "flows"), "noise_sd"] == pytest.approx(mech.geometric(0.5, 4 * 5).sd)
    assert at.loc[(7.0, 2, "total"), "noise_sd"] == pytest.approx(mech.geometric(1.0, 2 * 5 * 1000).sd)
    mean_sum_sd = mech.geometric(0.25, 2 * 5 * 1000).sd  # doubled centred values: +-(upper - lower)
    assert at.loc[(3.5, 2, "avg"), "noise_sd"] == pytest.approx(mean_sum_sd / (2 * 40))
    rank_sd = quantile_rank_sd(mech.geometric(0.5, 2 * 5 * TREE_HEIGHT).sd)  # a row is in each level
    assert at.loc[(3.5, 2, "q"), ["noise_sd", "unit"]].tolist() == [pytest.approx(rank_sd), "rank, rows"]
    assert at.loc[(3.5, 2, "total"), "unit"] == "bytes" and at.loc[(3.5, 2, "subs"), "unit"] == "subscribers"
    assert len(grid) == 2 * 2 * 1 * len(metrics)


def test_accuracy_grid_marks_noise_too_large_to_sample():
    spec = _spec(accounting="approx_dp", delta=1e-6, contribution={"max_groups_per_subscriber": 1,
                                                                   "max_rows_per_group": 1},
                 metrics=[{"name": "total", "kind": "sum", "column": "bytes", "lower": 0, "upper": 1000,
                           "epsilon": 1.0}])
    plan = plan_aggregation(spec.aggregation, REGIONS)
    grid = A.accuracy_grid(plan, A.ParameterGrid((1.0,), (1,), (1, 1000)), 10)
    assert grid["noise_sd"].isna().tolist() == [False, True]


def test_bounding_kept_share_is_the_expected_share_after_random_bounding():
    # a: 4 cells of 1 row; b: 1 cell of 4 rows. Every value 10, clamped to 5.
    rows = [("a", "North", h, 10) for h in range(4)] + [("b", "South", 0, 10)] * 4
    inputs = pd.DataFrame(rows, columns=["subscriber", "region", "hour", "bytes"])
    metrics = [{"name": "subs", "kind": "count_distinct_subscribers", "epsilon": 1.0},
               {"name": "flows", "kind": "count", "epsilon": 1.0},
               {"name": "total", "kind": "sum", "column": "bytes", "lower": 0, "upper": 5, "epsilon": 1.0},
               {"name": "avg", "kind": "mean", "column": "bytes", "lower": 0, "upper": 5, "epsilon": 1.0}]
    keys = [{"column": "region", "values": "regions"}, {"column": "hour", "range": [0, 3]}]
    plan = plan_aggregation(_spec(metrics=metrics, group_by=keys).aggregation, REGIONS)
    kept = A.bounding_kept_share(inputs, plan, (2, 4), (2,)).set_index(["max_groups", "metric"])
    assert kept.loc[(2, "subs"), "kept_share"] == pytest.approx((4 * 0.5 + 1) / 5)
    assert kept.loc[(2, "flows"), "kept_share"] == pytest.approx((4 * 0.5 + 2) / 8)
    assert kept.loc[(2, "total"), "kept_share"] == pytest.approx((4 * 5 * 0.5 + 2 * 5) / 80)
    assert kept.loc[(4, "flows"), "kept_share"] == pytest.approx(6 / 8)
    assert "avg" not in set(kept.index.get_level_values("metric"))


def test_bounding_kept_share_agrees_with_simulated_random_bounding():
    rng = np.random.default_rng(5)
    rows = [(f"s{u}", "North", int(h), int(v)) for u in range(6)
            for h, v in zip(rng.integers(0, 4, 9), rng.integers(1, 100, 9), strict=True)]
    inputs = pd.DataFrame(rows, columns=["subscriber", "region", "hour", "bytes"])
    metrics = [{"name": "total", "kind": "sum", "column": "bytes", "lower": 0, "upper": 100, "epsilon": 1.0}]
    keys = [{"column": "region", "values": "regions"}, {"column": "hour", "range": [0, 3]}]
    plan = plan_aggregation(_spec(metrics=metrics, group_by=keys).aggregation, REGIONS)
    expected = A.bounding_kept_share(inputs, plan, (2,), (2,))["kept_share"].item()

    cells = [list(mine.groupby("hour")["bytes"].apply(np.asarray))
             for _, mine in inputs.groupby("subscriber")]

    def one_draw() -> float:  # keep 2 random cells per subscriber, 2 random rows per cell
        kept = 0
        for mine in cells:
            for index in rng.permutation(len(mine))[:2]:
                kept += rng.permutation(mine[index])[:2].sum()
        return kept / inputs["bytes"].sum()

    assert np.mean([one_draw() for _ in range(2000)]) == pytest.approx(expected, rel=0.02)


def test_relative_error_combines_bias_and_noise_and_best_bounds_takes_the_least():
    noise = pd.DataFrame({"epsilon": 1.0, "max_groups": [1, 2, 4], "max_rows": 1, "metric": "subs",
                          "noise_sd": [1.0, 2.0, 4.0]})
    kept = pd.DataFrame({"max_groups": [1, 2, 4], "max_rows": 1, "metric": "subs",
                         "kept_share": [0.5, 0.9, 1.0]})
    errors = A.relative_error(noise, kept, {"subs": 10.0})
    assert errors["relative_error"].tolist() == pytest.approx(
        [np.hypot(0.5, 0.1), np.hypot(0.1, 0.2), np.hypot(0.0, 0.4)])
    best = A.best_bounds(errors, 1.0)
    assert best[["metric", "max_groups"]].values.tolist() == [["subs", 2]]


def test_typical_cell_values_average_the_cells_with_data():
    plan = plan_aggregation(_spec(metrics=ALL_KINDS).aggregation, REGIONS)
    truth = pd.DataFrame({"subs": [2, 4], "flows": [3, 5], "total": [10.0, 30.0], "avg": [1.0, 2.0]})
    assert A.typical_cell_values(truth, plan) == {"subs": 3.0, "flows": 4.0, "total": 20.0}


def test_load_bounding_measures_the_runs_data(run):
    delivery = A.load_delivery(run["delivery"])
    grid = A.ParameterGrid((1.0,), (1, 3), (1, 2))
    bounding = A.load_bounding(run["catalog"], delivery, run["plan"], grid)
    kept = bounding.kept.set_index(["max_groups", "max_rows", "metric"])["kept_share"]
    assert kept[(3, 2, "subs")] == 1.0  # nobody reaches the delivered bounds
    assert kept[(1, 1, "subs")] == pytest.approx((3 * 2 * 0.5 + 3 + 1) / 10)  # s0-s2 are in two cells
    assert bounding.typical == {"subs": pytest.approx(10 / 3), "total": pytest.approx(3250 / 3)}
    assert bounding.rows_per_cell == 3


# --- the analyst zone --------------------------------------------------------------


REPORT = {
    "day": "2026-11-01", "subscribers": 7, "suppressed_records": 1,
    "requirements": {"k": 3, "l": 2, "suppression_limit": 0.2},
    "transformation": {"region": 1, "plan": 0},
    "information_loss": {"loss": 0.25, "ncp": 0.2, "loss_per_attribute": {"region": 0.5, "plan": 0.0}},
    "risk": {"prosecutor": {"highest": 1 / 3, "average": 0.3, "records_at_risk": 0.5},
             "journalist": {"highest": 1 / 3, "average": 0.3, "records_at_risk": 0.5},
             "marketer": 0.3, "threshold": 0.2},
    "verification": {"quasi_identifiers": ["region", "plan"], "sensitive": "usage_band", "k": 3,
                     "l_distinct": 2, "classes": 2},
}
RECORDS = pd.DataFrame({
    "region": ["Capital area"] * 3 + ["Yeongnam"] * 3 + ["*"],
    "plan": ["5G"] * 3 + ["LTE"] * 3 + ["*"],
    "usage_band": ["under 10 MB", "under 10 MB", "10-100 MB", "10-100 MB", "1 GB and more", "10-100 MB",
                   "under 10 MB"],
    "subscriber": [f"pseudonym-{i}" for i in range(7)],  # a zone must never show one
})


def _write_zone(catalog: Catalog, day: dt.date, report: dict | None) -> None:
    folder = catalog.analyst(day)
    (folder / "records").mkdir(parents=True)
    RECORDS.to_parquet(folder / "records" / "part-00000.parquet", index=False)
    if report is not None:
        (folder / "report.json").write_text(json.dumps(report))


def test_load_analyst_zone_reads_the_latest_day_and_only_the_named_columns(tmp_path):
    catalog = Catalog(tmp_path / "data", tmp_path / "out")
    _write_zone(catalog, DAY, REPORT)
    _write_zone(catalog, DAY + dt.timedelta(days=1), None)  # being built: no report yet
    zone = A.load_analyst_zone(catalog)
    assert zone.day == DAY and (zone.k, zone.sensitive) == (3, "usage_band")
    assert list(zone.records.columns) == ["region", "plan", "usage_band"]
    with pytest.raises(FileNotFoundError, match="no analyst zone"):
        A.load_analyst_zone(Catalog(tmp_path / "empty", tmp_path / "out"))


def test_analyst_zone_summary_sets_asked_beside_achieved():
    figures = dict(A.analyst_zone_summary(REPORT).values.tolist())
    assert figures["k asked / achieved"] == "3 / 3"
    assert figures["distinct l asked / achieved"] == "2 / 2"
    assert figures["records suppressed (limit)"] == "1 (20%)"
    assert figures["records above risk 0.2"] == "50.0%"


def test_generalization_levels_and_hierarchy_heights():
    heights = A.hierarchy_heights(ROOT_CONFIG)
    assert heights["region"] == 2 and heights["age_band"] == 3  # the levels above a value, '*' included
    levels = A.generalization_levels(REPORT, heights)
    assert levels.values.tolist() == [["region", 1, 2, 0.5], ["plan", 0, 2, 0.0]]


def test_class_sizes_leave_suppressed_records_out():
    sizes = A.class_sizes(RECORDS, ["region", "plan"], "usage_band")
    assert sizes.values.tolist() == [["Capital area", "5G", 3, pytest.approx(1 / 3), 2],
                                     ["Yeongnam", "LTE", 3, pytest.approx(1 / 3), 2]]
    assert "subscriber" not in sizes


def test_sensitive_shares_per_class():
    shares = A.sensitive_shares(RECORDS, ["region", "plan"], "usage_band")
    assert shares.loc["Capital area / 5G"].to_dict() == pytest.approx(
        {"10-100 MB": 1 / 3, "1 GB and more": 0.0, "under 10 MB": 2 / 3})
    assert list(shares.index) == ["Capital area / 5G", "Yeongnam / LTE"]


# --- plots -----------------------------------------------------------------------------


@pytest.fixture
def ax():
    fig, axes = plt.subplots()
    yield axes
    plt.close(fig)


def _texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


def test_plot_intervals_draws_the_largest_cells_and_the_truth(ax):
    values = pd.DataFrame({"cell": list("abc"), "output": "n", "released": [5.0, 9.0, 1.0],
                           "low": [4.0, 7.0, 0.0], "high": [6.0, 11.0, 2.0], "true": [5.0, 8.0, 1.0]})
    A.plot_intervals(ax, values, limit=2)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]
    assert ax.collections[-1].get_offsets()[:, 0].tolist() == [5.0, 8.0]  # the true values
    assert ax.get_xlabel() == "n"


def test_plot_true_vs_released_titles_the_coverage(ax):
    comparison = pd.DataFrame({"output": "n", "released": [1.0, 5.0], "low": [0.0, 4.0], "high": [2.0, 6.0],
                               "true": [1.0, 9.0], "covered": [True, False]})
    A.plot_true_vs_released(ax, comparison, "n")
    assert ax.get_title() == "2 cells, 95% interval covers the truth in 50%"
    fig, empty = plt.subplots()
    A.plot_true_vs_released(empty, comparison, "other")
    assert _texts(empty) == ["no true values to compare for other"]
    plt.close(fig)


def test_ledger_plots_draw_one_line_or_bar_per_limit_or_report(ledger_file):
    history = A.ledger_history(ledger_file)
    timeline = A.budget_over_time(history, BUDGETS)
    fig, (spent, left, spend) = plt.subplots(1, 3)
    A.plot_budget_over_time(spent, timeline, "spent_epsilon")
    A.plot_budget_over_time(left, timeline, "remaining_epsilon")
    A.plot_spend_by_period(spend, A.spend_by_period(history))
    assert [line.get_label() for line in left.get_lines()] == [ALL, WEB, DEVICES]
    assert len(spent.get_lines()) == 2 * 3  # each spent line with its dashed budget
    assert len(spend.patches) == 2 * 2  # two periods, two reports
    plt.close(fig)
    fig, empty = plt.subplots()
    A.plot_budget_over_time(empty, A.budget_over_time(history.iloc[:0], BUDGETS))
    assert _texts(empty) == ["no charges in the ledger"]
    plt.close(fig)


def test_metric_panels_draw_one_panel_per_metric():
    plan = plan_aggregation(_spec(metrics=ALL_KINDS[:3]).aggregation, REGIONS)
    noise = A.accuracy_grid(plan, A.ParameterGrid((0.5, 1.0), (1, 2), (1,)), 10)
    fig = A.metric_panels(noise, A.plot_noise_vs_epsilon, 1)
    assert [a.get_title() for a in fig.axes] == ["subs, 1 rows per cell", "flows, 1 rows per cell",
                                                 "total, 1 rows per cell"]
    assert all(len(a.get_lines()) == 2 for a in fig.axes)  # one line per max groups
    plt.close(fig)
    many = pd.concat([noise.assign(metric=f"m{i}") for i in range(6)])
    wrapped = A.metric_panels(many, A.plot_noise_vs_epsilon, 1)
    assert len(wrapped.axes) == 6 and wrapped.axes[4].get_subplotspec().rowspan.start == 1  # 4 a row
    plt.close(wrapped)
    empty = A.metric_panels(noise.iloc[:0], A.plot_noise_vs_epsilon, 1)
    assert _texts(empty.axes[0]) == ["no figures for this report"]
    plt.close(empty)


def test_bounding_plots_draw_one_line_per_row_bound(ax):
    kept = pd.DataFrame({"max_groups": [1, 2, 1, 2], "max_rows": [1, 1, 2, 2], "metric": "subs",
                         "kept_share": [0.5, 0.8, 0.6, 0.9]})
    A.plot_kept_share(ax, kept, "subs")
    assert [line.get_label() for line in ax.get_lines()] == ["1 rows", "2 rows"]
    errors = kept.assign(epsilon=1.0, relative_error=[0.5, 0.2, 0.4, 0.3])
    fig, other = plt.subplots()
    A.plot_relative_error(other, errors, "subs", 1.0)
    assert other.get_lines()[0].get_ydata().tolist() == [0.5, 0.2]
    plt.close(fig)


def test_analyst_zone_plots(ax):
    A.plot_class_sizes(ax, A.class_sizes(RECORDS, ["region", "plan"]), k=3)
    assert [p.get_height() for p in ax.patches] == [3, 3]
    assert ax.get_lines()[0].get_label() == "k = 3"
    fig, (levels, shares) = plt.subplots(1, 2)
    A.plot_generalization(levels, A.generalization_levels(REPORT, {"region": 2, "plan": 2}))
    assert [p.get_width() for p in levels.patches] == [2, 2, 1, 0]  # heights, then chosen levels
    A.plot_sensitive_shares(shares, A.sensitive_shares(RECORDS, ["region", "plan"], "usage_band"))
    assert len(shares.patches) == 2 * 3  # two classes, three bands
    plt.close(fig)


def test_plot_status_counts(ax, run):
    A.plot_status_counts(ax, A.load_delivery(run["delivery"]))
    assert [p.get_height() for p in ax.patches] == [2, 4]  # released, suppressed
