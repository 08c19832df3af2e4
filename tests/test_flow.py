"""The daily flow end to end, under the Prefect test harness, on small generated data."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from core.config import ConfigError, load_report_specs
from core.keys import KEY_ENV, PseudonymKeyError
from core.ledger import Ledger
from core.mechanisms import zcdp_epsilon
from flows.daily import daily_partner_reports
from stages.delivery import ChecksumMismatch, verify_checksums

IDENTIFIER_COLUMNS = {
    "subscribers": ["account_id", "name", "email", "msisdn", "postcode", "card_number",
                    "password_hash"],
    "devices": ["imei", "imsi", "mac"],
    "call_records": ["call_id", "caller_msisdn", "callee_msisdn"],
    "network_flows": ["src_ip", "dst_ip"],
    "web_visits": ["client_ip", "url", "user_agent"],
}


@pytest.fixture(scope="module")
def run(daily_run):
    """The session's run, read only (tests/conftest.py): a test that writes uses `own_run`."""
    return daily_run


@pytest.fixture
def own_run(daily_run, tmp_path):
    """A copy of the session's run for a test that writes (re-runs, new releases, refusals)."""
    root = tmp_path / "run"
    shutil.copytree(daily_run["root"], root, symlinks=True)
    moved = json.dumps(daily_run["summary"]).replace(str(daily_run["root"]), str(root))
    return {**daily_run, "root": root, "data": root / "data", "out": root / "out",
            "summary": json.loads(moved)}


def _run_state(run) -> dict:
    """The ledger's charges and every file under the run's folders, to show nothing changed."""
    files = {str(p.relative_to(run["root"])): p.stat().st_mtime_ns
             for p in run["root"].rglob("*") if p.is_file() and not p.name.startswith("ledger.sqlite")}
    charges = [(c.id, c.report, c.release_id) for c in Ledger(run["data"] / "ledger.sqlite").charges()]
    return {"files": files, "charges": charges}


@pytest.fixture(scope="module", autouse=True)
def run_state_before(run) -> dict:
    """Taken before this module's first test (autouse), checked after its last."""
    return _run_state(run)


NETWORK_REPORT = "network_traffic_region_hour"


def _delivery(run, report: str = NETWORK_REPORT) -> Path:
    return Path(next(r["delivery"] for r in run["summary"]["reports"] if r["report"] == report))


def test_every_row_is_kept_or_quarantined(run):
    sources = {s["source"]: s for s in run["summary"]["sources"]}
    assert set(sources) == set(IDENTIFIER_COLUMNS)
    day = run["summary"]["day"]
    for name, s in sources.items():
        assert s["rows_in"] == s["rows_kept"] + s["rows_quarantined"]
        assert s["rows_in"] == run["generated"]["rows"][name]
        # exactly the rows the generator made bad are quarantined, no good row with them
        assert s["rows_quarantined"] == run["generated"]["rows_corrupted"][name] > 0, name
        assert sum(s["quarantined_by_reason"].values()) == s["rows_quarantined"]
        quarantined = pd.read_parquet(run["data"] / "quarantine" / name / f"date={day}")
        assert len(quarantined) == s["rows_quarantined"], name
    total_bad = sum(run["generated"]["rows_corrupted"].values())
    assert run["summary"]["rows_quarantined"] == total_bad


def test_delivery_matches_its_manifest(run, config_dir):
    delivery = _delivery(run)
    verify_checksums(delivery)
    manifest = json.loads((delivery / "manifest.json").read_text())
    assert manifest["partner"] == "metro-planning"
    spec = next(s for s in load_report_specs(config_dir) if s.name == manifest["report"]).aggregation
    rho = manifest["privacy"]["rho"]
    assert rho == pytest.approx(sum(m.rho for m in spec.metrics))
    assert manifest["privacy"]["epsilon"] == pytest.approx(zcdp_epsilon(rho, spec.delta))  # stated once
    mechanisms = {p["mechanism"] for m in manifest["privacy"]["metrics"] for p in m["parts"]}
    assert mechanisms == {"discrete_gaussian"}
    guarantee = manifest["privacy"]["guarantee"]
    assert (guarantee["window_days"], guarantee["epsilon"], guarantee["delta"]) == (30, 8.0, 1e-6)
    assert guarantee["statement"].startswith("Over any 30 consecutive days of data")
    assert "inputs" not in manifest  # exact row counts stay in the internal run record
    assert manifest["validation"]["success"] is True
    assert {"pyspark", "diffprivlib", "prefect", "great-expectations"} <= set(manifest["software"])
    data = pd.read_csv(delivery / "data.csv")
    cells = data[data["hour"].notna()]  # remainder rows have no hour
    assert len(cells) == 17 * 24  # every region x hour, empty cells too
    published = data[data["status"].isin(["released", "remainder"])]
    assert len(published) > 0  # else the checks below hold for nothing
    assert (published["distinct_subscribers"] >= 5).all()  # the spec's min_subscribers
    merged = data["status"] == "merged"
    assert merged.any() and data.loc[merged, "distinct_subscribers"].isna().all()
    assert not list(delivery.parent.glob(".*tmp*"))


def test_every_report_in_the_catalog_is_released_and_delivered(run, config_dir):
    from core.config import load_report_specs

    specs = {s.name: s for s in load_report_specs(config_dir)}
    reports = {r["report"]: r for r in run["summary"]["reports"]}
    assert set(reports) == set(specs)
    charges = {c.report: c for c in Ledger(run["data"] / "ledger.sqlite").charges()}
    for name, report in specs.items():
        spec, envelope = report.aggregation, report.delivery
        delivery = Path(reports[name]["delivery"])
        verify_checksums(delivery)
        manifest = json.loads((delivery / "manifest.json").read_text())
        assert manifest["ledger_entry_id"] == charges[name].id
        assert manifest["purpose"] == envelope.purpose and manifest["policy_clause"] == envelope.policy_clause
        assert manifest["validation"]["suite"] == f"release_{name}" and manifest["validation"]["success"]
        data = pd.read_parquet(delivery / "data.parquet")
        assert list(data.columns[: len(spec.group_by)]) == list(spec.group_columns)
        assert manifest["rows_released"] == len(data)
        # A private key appears only through partition selection; in every report
        # no published cell is under k noisy subscribers.
        distinct = next(m.name for m in spec.metrics if m.kind == "count_distinct_subscribers")
        metrics = [m.name for m in spec.metrics]
        published = data["status"].isin(["released", "remainder"])
        assert spec.min_subscribers, name
        if not any(key.private for key in spec.group_by):  # private keys may select no cell here
            assert published.any(), name  # else the checks below hold for nothing
        assert (data.loc[published, distinct] >= spec.min_subscribers).all(), name
        assert data.loc[published, metrics].notna().all().all(), name
        assert data.loc[~published, metrics].isna().all().all(), name  # held back: no value at all


def test_rerun_serves_the_stored_release_without_new_noise_or_charge(own_run, config_dir):
    run = own_run
    before = (_delivery(run) / "data.csv").read_bytes()
    again = daily_partner_reports(data_dir=str(run["data"]), out_dir=str(run["out"]),
                                  config_dir=str(config_dir), demo=True)
    assert all(r["reused"] for r in again["reports"])
    assert again["epsilon_spent"] == 0
    assert (_delivery(run) / "data.csv").read_bytes() == before
    assert len(Ledger(run["data"] / "ledger.sqlite").charges()) == len(again["reports"])


def test_a_corrupted_delivery_fails_verification(run, tmp_path):
    copy = tmp_path / "delivery"
    shutil.copytree(_delivery(run), copy)
    with (copy / "data.csv").open("a") as handle:
        handle.write("Seoul,0,1,0.0,0,1\n")
    with pytest.raises(ChecksumMismatch, match=r"data\.csv"):
        verify_checksums(copy)


def _landing_identifiers(spark, landing: Path) -> set[str]:
    values: set[str] = set()
    for source, columns in IDENTIFIER_COLUMNS.items():
        df = spark.read.parquet(str(landing / source))
        for row in df.select(*columns).distinct().collect():
            values.update(v for v in row if v and len(v) >= 6)
    return values


def test_nothing_in_out_holds_an_input_identifier(run, spark):
    identifiers = _landing_identifiers(spark, run["data"] / "landing")
    assert len(identifiers) > 1000
    texts = []
    for path in run["out"].rglob("*"):
        if path.suffix == ".parquet":
            texts.append(pd.read_parquet(path).to_csv())
        elif path.is_file():
            texts.append(path.read_text())
    texts.append(json.dumps(run["summary"]))
    blob = "\n".join(texts)
    leaked = [v for v in identifiers if v in blob]
    assert leaked == []


def test_disallowed_purpose_is_refused_before_any_data_is_read(tmp_path, config_dir, prefect_harness):
    config = tmp_path / "config"
    shutil.copytree(config_dir, config)
    pipeline = yaml.safe_load((config / "pipeline.yaml").read_text())
    for partner in pipeline["partners"]:
        partner["allowed_purposes"] = ["advertising_campaign_delivery"]
    (config / "pipeline.yaml").write_text(yaml.safe_dump(pipeline))
    with pytest.raises(ConfigError, match="not allowed purpose 'aggregate_reports'"):
        daily_partner_reports(data_dir=str(tmp_path / "no-data"), out_dir=str(tmp_path / "out"),
                              config_dir=str(config))


def test_no_key_outside_demo_mode_stops_the_run(tmp_path, config_dir, prefect_harness, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(PseudonymKeyError, match=KEY_ENV):
        daily_partner_reports(data_dir=str(tmp_path), out_dir=str(tmp_path / "out"),
                              config_dir=str(config_dir), demo=False)


def test_the_key_can_come_from_a_prefect_secret_block(prefect_harness, monkeypatch):
    from prefect.blocks.system import Secret

    from core.keys import KEY_BLOCK_ENV, master_key

    key = "0461eacf066825b766b46766fcc08aa2e0bd1d3c37b78343a6b2d806e0c2c661"  # random (a pattern is refused)
    Secret(value=key).save("kr-test-pseudonym-key", overwrite=True)
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.setenv(KEY_BLOCK_ENV, "kr-test-pseudonym-key")
    assert master_key(demo=False) == bytes.fromhex(key)
    monkeypatch.setenv(KEY_BLOCK_ENV, "no-such-block")
    with pytest.raises(PseudonymKeyError, match="no-such-block"):
        master_key(demo=False)


def test_the_leak_scanner_finds_nothing_in_a_delivery(run, capsys):
    from kr_reports.cli import main

    code = main(["scan", str(run["out"])])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "no identifier-shaped values found" in printed
    assert "report.html" not in printed  # scanned, not listed among the files it could not read


def _stage_args(run, config_dir):
    import datetime as dt

    from core.config import load_report_specs
    from stages.catalog import Catalog

    spec = next(s for s in load_report_specs(config_dir) if s.name == NETWORK_REPORT)
    day = dt.date.fromisoformat(run["summary"]["day"])
    return Catalog(run["data"], run["out"]), spec, day


def test_a_deliberate_new_release_is_charged_again_with_fresh_noise(own_run, config_dir):
    from stages.daily import release

    run = own_run
    catalog, spec, day = _stage_args(run, config_dir)
    first = release(catalog, spec, config_dir, day)
    assert first.reused and first.record.number == 1
    second = release(catalog, spec, config_dir, day, new_release=True)
    assert not second.reused and second.record.number == 2 and second.record.release_id.endswith("#2")
    charges = Ledger(run["data"] / "ledger.sqlite").charges()
    assert [c.release_id for c in charges if c.report == spec.name] == [
        first.record.release_id, second.record.release_id]
    old = first.stored.table()
    new = second.stored.table()
    assert not old["distinct_subscribers"].equals(new["distinct_subscribers"])
    assert release(catalog, spec, config_dir, day).record.number == 2  # the latest is served from now on


@pytest.mark.parametrize("refused_by", ["check before aggregation", "charge under the lock"])
def test_an_over_budget_release_is_refused_and_nothing_is_written(own_run, config_dir, tmp_path, monkeypatch,
                                                                 refused_by):
    from core.ledger import BudgetExceeded
    from stages import releaser
    from stages.daily import release

    run = own_run
    if refused_by == "check before aggregation":  # a refusal costs no Spark job
        def no_aggregation(*args, **kwargs):
            raise AssertionError("aggregated for a release the budget cannot take")

        monkeypatch.setattr(releaser, "_true_aggregates", no_aggregation)
    else:  # another run spent the budget after the check: the charge still refuses
        monkeypatch.setattr(Ledger, "check", lambda *args, **kwargs: None)

    catalog, spec, day = _stage_args(run, config_dir)
    config = tmp_path / "config"
    shutil.copytree(config_dir, config)
    pipeline_yaml = yaml.safe_load((config / "pipeline.yaml").read_text())
    pipeline_yaml["privacy_budget"]["epsilon"] = 0.3  # less than the report alone needs
    (config / "pipeline.yaml").write_text(yaml.safe_dump(pipeline_yaml))
    before = (catalog.release_numbers(spec.name, day), len(Ledger(run["data"] / "ledger.sqlite").charges()))
    with pytest.raises(BudgetExceeded, match=f"report '{spec.name}' for {day} refused"):
        release(catalog, spec, config, day, new_release=True)
    after = (catalog.release_numbers(spec.name, day), len(Ledger(run["data"] / "ledger.sqlite").charges()))
    assert after == before
    assert not list((catalog.data_dir / "releases").rglob(".*tmp*"))


def test_explain_prints_the_plan_without_touching_data(capsys, config_dir):
    from kr_reports.cli import main

    assert main(["explain", "network_traffic_region_hour", "--config-dir", str(config_dir)]) == 0
    printed = capsys.readouterr().out
    assert "L2 sensitivity 4, noise sd 56.57" in printed  # distinct subscribers: sqrt(16), rho 0.0025
    assert "Public cells: 408" in printed
    assert "Spark shuffles (physical plan): cells 2" in printed
    assert main(["explain", "no_such_report", "--config-dir", str(config_dir), "--no-spark"]) == 2


def test_the_analyst_zone_is_k_anonymous_and_l_diverse(run, spark, config_dir):
    from core.config import load_analyst_config
    from transforms.analyst import QUASI_IDENTIFIERS, SENSITIVE
    from transforms.kanon.verify import verify

    config = load_analyst_config(config_dir)
    zone = run["summary"]["analyst_zone"]
    records = spark.read.parquet(str(Path(zone["path"]) / "records"))
    kept = next(s["rows_kept"] for s in run["summary"]["sources"] if s["source"] == "subscribers")
    assert records.count() == kept  # one row per protected subscriber, none lost
    assert set(records.columns) == {*QUASI_IDENTIFIERS, SENSITIVE}
    result = verify(records, list(QUASI_IDENTIFIERS), sensitive=SENSITIVE)
    assert result.k >= config.k and result.l_distinct >= config.l
    assert result.suppressed_rows <= config.suppression_limit * records.count()
    report = json.loads((Path(zone["path"]) / "report.json").read_text())
    assert report["validation"]["success"] and report["validation"]["suite"] == "analyst_classes"
    assert {"loss", "ncp", "discernibility"} <= set(report["information_loss"])


def test_a_release_with_no_rows_keeps_its_column_types(tmp_path, config_dir):
    import pyarrow.parquet as pq

    from core.config import load_pipeline_config, load_report_specs
    from core.noise_plan import plan_aggregation, release_columns
    from stages.releaser import with_text_types

    spec = next(s for s in load_report_specs(config_dir) if s.name == "call_activity_cell_area_hour")
    plan = plan_aggregation(spec.aggregation, load_pipeline_config(config_dir).regions)
    empty = pd.DataFrame({c: pd.Series([], dtype="object") for c in release_columns(plan)})
    with_text_types(empty, plan).to_parquet(tmp_path / "release.parquet", index=False)
    schema = pq.read_schema(tmp_path / "release.parquet")
    assert str(schema.field("cell_area").type) == "string"
    assert str(schema.field("status").type) == "string"


def test_no_test_here_changed_the_sessions_run(run, run_state_before):
    # Last in this module: the shared run other modules read is as the first test found it.
    after = _run_state(run)
    assert after["charges"] == run_state_before["charges"]
    assert len(after["charges"]) == len(run["summary"]["reports"])
    assert after["files"] == run_state_before["files"]
