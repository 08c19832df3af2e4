"""Schedules, failures and artifacts: what an unattended deployment of the catalog shows in Prefect.

One test starts a real Prefect server (a subprocess with its own PREFECT_HOME
and SQLite database, on loopback) and `kr-reports serve`, and waits for a
scheduled run to complete; everything else runs under the session's harness.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from uuid import UUID

import httpx
import pytest
import yaml

from core.accounting import guarantee, total
from core.config import ConfigError, load_pipeline_config, load_report_specs
from core.ledger import Ledger
from flows.artifacts import release_artifact_key
from flows.daily import daily_partner_reports
from flows.schedules import (
    CATCH_UP_DEPLOYMENT,
    DAILY_DEPLOYMENT,
    build_deployments,
    catch_up_partner_reports,
    days_missing_a_release,
    load_schedules,
)
from flows.task_errors import StageFailed, stage_failure_message

ROOT = Path(__file__).resolve().parents[1]
KR_REPORTS = Path(sys.executable).with_name("kr-reports")
PREFECT = Path(sys.executable).with_name("prefect")
DAY = dt.date(2026, 11, 1)


# --- schedules config --------------------------------------------------------------------------

def _write_schedules(path: Path, **changes) -> Path:
    """The shipped schedules file with changes; a key's `__` separates nested names."""
    config = yaml.safe_load((ROOT / "config" / "schedules.yaml").read_text())
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = config
        for name in parents:
            node = node[name]
        node[leaf] = value
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_shipped_schedules_become_two_cron_deployments(config_dir):
    config = load_schedules(config_dir / "schedules.yaml")
    daily, catch_up = build_deployments(config)
    assert (daily.name, catch_up.name) == (DAILY_DEPLOYMENT, CATCH_UP_DEPLOYMENT)
    crons = [(d.schedules[0].schedule.cron, d.schedules[0].schedule.timezone) for d in (daily, catch_up)]
    assert crons == [("30 2 * * *", "UTC"), ("15 * * * *", "UTC")]
    assert daily.parameters == {"config_dir": str(config_dir.resolve()), "data_dir": None,
                                "out_dir": None, "demo": False}  # demo keys are for synthetic data only
    assert catch_up.parameters == {**daily.parameters, "lookback_days": 7}


def test_the_time_zone_and_folders_come_from_the_schedules_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _write_schedules(tmp_path / "s.yaml", timezone="Asia/Seoul", parameters__data_dir="d",
                            parameters__out_dir="/srv/out", parameters__demo=False)
    daily, _ = build_deployments(load_schedules(path))
    assert daily.schedules[0].schedule.timezone == "Asia/Seoul"
    assert daily.parameters["data_dir"] == str(tmp_path / "d")  # relative to where serve starts
    assert daily.parameters["out_dir"] == "/srv/out" and daily.parameters["demo"] is False


def test_serve_with_demo_keys_refuses_anything_but_the_generated_data(
        daily_run, config_dir, tmp_path, monkeypatch, capsys):
    from kr_reports.cli import main

    served = []
    monkeypatch.setattr("flows.schedules.check_api_url", lambda: "http://127.0.0.1:1/api")
    monkeypatch.setattr("flows.schedules.serve", lambda *deployments, limit: served.append(deployments))
    exported = tmp_path / "real" / "landing"  # an operator's exports, with their own complete marker
    exported.mkdir(parents=True)
    (exported / ".complete").write_text(json.dumps({"dates": [DAY.isoformat()], "format": "parquet"}))

    def serve(data_dir: Path, demo: bool = True) -> int:
        schedules = _write_schedules(tmp_path / "schedules.yaml", parameters__config_dir=str(config_dir),
                                     parameters__data_dir=str(data_dir), parameters__demo=demo)
        return main(["serve", "--schedules", str(schedules)])

    for data_dir in (exported.parent, tmp_path / "nothing-landed"):
        assert serve(data_dir) == 2
        err = capsys.readouterr().err
        assert err.startswith("kr-reports serve: error: schedules say demo: true") and err.count("\n") == 1
        assert f"{data_dir / 'landing'} does not hold the embedded synthetic data" in err
        assert "set demo: false" in err
    assert served == []
    assert serve(exported.parent, demo=False) == 0
    assert serve(daily_run["data"]) == 0  # what `kr-reports generate` wrote
    assert len(served) == 2


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"schedules__daily__cron": "61 * * * *"}, r"schedules\.daily\.cron: .*Invalid cron string"),
        ({"schedules__catch_up__cron": "H * * * *"}, r"schedules\.catch_up\.cron"),
        ({"timezone": "Mars/Olympus_Mons"}, r"timezone: .*unknown time zone 'Mars/Olympus_Mons'"),
        ({"schedules__catch_up__lookback_days": 0}, r"schedules\.catch_up\.lookback_days"),
        ({"parameters__data_folder": "x"}, r"parameters\.data_folder: Extra inputs are not permitted"),
    ],
)
def test_a_bad_schedules_file_is_refused_naming_the_field(tmp_path, changes, message):
    path = _write_schedules(tmp_path / "schedules.yaml", **changes)
    with pytest.raises(ConfigError, match=message):
        load_schedules(path)
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_schedules(tmp_path / "missing.yaml")


def test_catch_up_picks_the_days_on_which_some_report_has_no_stored_release():
    stored = {("a", DAY), ("b", DAY), ("a", DAY + dt.timedelta(days=1))}
    days = [DAY + dt.timedelta(days=2), DAY + dt.timedelta(days=1), DAY]

    def has_release(report, day):
        return (report, day) in stored

    assert days_missing_a_release(days, ["a", "b"], has_release) == [DAY + dt.timedelta(days=1),
                                                                     DAY + dt.timedelta(days=2)]
    assert days_missing_a_release(days, ["a"], has_release) == [DAY + dt.timedelta(days=2)]
    assert days_missing_a_release([DAY], ["a", "b"], has_release) == []


def test_catch_up_has_nothing_to_do_when_every_day_is_released(daily_run, config_dir, prefect_harness):
    before = sorted(p.relative_to(daily_run["root"]) for p in daily_run["root"].rglob("*"))
    charges = len(Ledger(daily_run["data"] / "ledger.sqlite").charges())
    result = catch_up_partner_reports(config_dir=str(config_dir), data_dir=str(daily_run["data"]),
                                      out_dir=str(daily_run["out"]), demo=True)
    assert result == {"days": []}
    assert sorted(p.relative_to(daily_run["root"]) for p in daily_run["root"].rglob("*")) == before
    assert len(Ledger(daily_run["data"] / "ledger.sqlite").charges()) == charges


def test_catch_up_fails_naming_each_failed_day_and_its_stage(daily_run, config_dir, tmp_path,
                                                             prefect_harness):
    data = tmp_path / "data"
    shutil.copytree(daily_run["data"] / "landing", data / "landing")
    shutil.rmtree(data / "landing" / "subscribers")
    state = catch_up_partner_reports(config_dir=str(config_dir), data_dir=str(data),
                                     out_dir=str(tmp_path / "out"), demo=True, return_state=True)
    assert state.is_failed()
    assert f"CatchUpFailed: 1 of 1 day(s) failed: {DAY.isoformat()}: " in state.message
    assert f"stage 'ingest' failed for subscribers on {DAY.isoformat()}" in state.message


def test_serve_refuses_to_start_without_a_prefect_server(tmp_path):
    env = _env_without_prefect(PREFECT_HOME=str(tmp_path / "prefect-home"))
    done = subprocess.run([str(KR_REPORTS), "serve"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "PREFECT_API_URL is not set" in done.stderr and "prefect server start" in done.stderr


# --- failures and artifacts under the harness ---------------------------------------------------

def test_a_failing_stage_fails_the_run_naming_stage_and_dataset(daily_run, config_dir, tmp_path,
                                                                prefect_harness):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    data = tmp_path / "data"
    shutil.copytree(daily_run["data"] / "landing", data / "landing")
    shutil.rmtree(data / "landing" / "devices")  # the second source to ingest never arrived
    state = daily_partner_reports(data_dir=str(data), out_dir=str(tmp_path / "out"),
                                  config_dir=str(config_dir), demo=True, return_state=True)
    assert state.is_failed()
    expected = f"stage 'ingest' failed for devices on {DAY.isoformat()}: MissingInput"
    assert expected in state.message
    with pytest.raises(StageFailed, match="stage 'ingest' failed for devices"):
        state.result()

    run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(run_id)
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
    assert flow_run.state.is_failed() and expected in flow_run.state.message
    failed = [t for t in tasks if t.state.is_failed()]
    assert [t.name.split("-")[0] for t in failed] == ["ingest"]
    assert failed[0].run_count == 1  # a missing input is not retried: it would fail the same way

    # what was validated before the failure is in the failed run's Data Docs
    index = data / "data_docs" / DAY.isoformat() / str(run_id) / "index.html"
    assert "raw_subscribers" in index.read_text() and "protected_subscribers" in index.read_text()
    assert "raw_devices" not in index.read_text()


def test_a_failure_message_withholds_what_a_foreign_error_says():
    foreign = ValueError("could not parse 'planted.person@example.org'")
    message = stage_failure_message("protect", "web_visits", DAY, foreign)
    assert message == (f"stage 'protect' failed for web_visits on {DAY.isoformat()}: "
                       "ValueError (details in the task run's log)")
    from stages.catalog import MissingInput

    ours = stage_failure_message("ingest", "devices", DAY, MissingInput("/x/devices: not found"))
    assert ours.endswith("MissingInput: /x/devices: not found")


def test_each_report_has_a_release_artifact_with_its_budget(daily_run, config_dir, prefect_harness):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    summary = daily_run["summary"]
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(summary["flow_run_id"])])))
    by_key = {a.key: a for a in artifacts}
    specs = load_report_specs(config_dir)
    assert set(by_key) == {"daily-partner-reports"} | {release_artifact_key(s.name) for s in specs}

    pipeline = load_pipeline_config(config_dir)
    run_charges = {c.report: c for c in Ledger(daily_run["data"] / "ledger.sqlite").charges()
                   if c.id <= max(r["ledger_entry_id"] for r in summary["reports"])}
    for report in summary["reports"]:
        spec = next(s for s in specs if s.name == report["report"])
        table = _markdown_rows(by_key[f"release-{spec.name.replace('_', '-')}"].data)
        charge = run_charges[spec.name]
        assert table["release id"] == f"`{spec.name}/{DAY.isoformat()}`"
        assert table["ledger entry"] == str(charge.id)
        assert table["reused"].startswith("no:")
        assert float(table["epsilon"]) == pytest.approx(charge.epsilon, rel=1e-5)  # printed with %g
        assert table["data docs"] == summary["data_docs"]
        stored = json.loads((daily_run["data"] / "releases" / spec.name / DAY.isoformat() / "1"
                             / "release.json").read_text())
        assert _cells(table["cells"]) == stored["cells_by_status"]
        budget = pipeline.privacy_budget  # one budget: every report's charge counts in it
        spent = guarantee(total(c.cost for c in run_charges.values()), budget.delta).epsilon
        assert table["budget"].split(" | ")[0] == f"{budget.epsilon:g}"
        assert float(table["spent"].split(" | ")[0]) == pytest.approx(spent, rel=1e-3)
        assert float(table["remaining"].split(" | ")[0]) == pytest.approx(budget.epsilon - spent, rel=1e-3)


def _cells(text: str) -> dict[str, int]:
    """"merged 1,034; released 37" -> {"merged": 1034, "released": 37}; "none" -> {}."""
    if text == "none":
        return {}
    parts = (part.rsplit(" ", 1) for part in text.split("; "))
    return {status: int(n.replace(",", "")) for status, n in parts}


def _markdown_rows(markdown: str) -> dict[str, str]:
    """First cell -> the rest, for every table row of a markdown text."""
    rows = {}
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] and not set(cells[0]) <= set("-:"):
            rows[cells[0]] = " | ".join(cells[1:])
    return rows


def test_artifact_keys_are_what_prefect_accepts():
    assert release_artifact_key("network_traffic_region_hour") == "release-network-traffic-region-hour"
    assert release_artifact_key("Web Reach.v2") == "release-web-reach-v2"


# --- a real server -----------------------------------------------------------------------------

SERVER_START_SECONDS = 120
SCHEDULED_RUN_SECONDS = 600  # a full run on a busy 2-core machine: about 5 minutes


def _env_without_prefect(**settings: str) -> dict[str, str]:
    """This process's environment minus every Prefect setting (the harness's included), plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return {**env, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **settings}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    # Its own process group: stopping it stops what it started (the flow run and its Spark JVM).
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def _wait_for(check, seconds: float, what: str, logs: list[Path]):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(2)
    tails = "\n".join(f"--- {log.name}\n" + "\n".join(log.read_text().splitlines()[-40:]) for log in logs)
    pytest.fail(f"timed out after {seconds:.0f} s waiting for {what}\n{tails}")


def _healthy(api: str) -> bool:
    try:
        return httpx.get(f"{api}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _flow_runs(api: str, deployment_id: str) -> list[dict]:
    body = {"flow_runs": {"deployment_id": {"any_": [deployment_id]}}}
    return httpx.post(f"{api}/flow_runs/filter", json=body, timeout=10).raise_for_status().json()


def _deployment(api: str, flow_name: str, name: str) -> dict | None:
    response = httpx.get(f"{api}/deployments/name/{flow_name}/{name}", timeout=10)
    return response.json() if response.status_code == 200 else None


def _scheduled_run_done(api: str, deployment_id: str, logs: list[Path]):
    def check():
        runs = [r for r in _flow_runs(api, deployment_id) if r["auto_scheduled"]]
        broken = [r for r in runs if r["state_type"] in ("FAILED", "CRASHED")]
        if broken:
            tails = "\n".join("\n".join(log.read_text().splitlines()[-60:]) for log in logs)
            pytest.fail(f"scheduled run {broken[0]['state_type']}: {broken[0]['state']['message']}\n{tails}")
        return next((r for r in runs if r["state_type"] == "COMPLETED"), None)
    return check


def test_served_schedules_run_the_catalog_on_a_real_prefect_server(tmp_path, spark, config_dir):
    from stages.generate import write_landing

    data, out = tmp_path / "data", tmp_path / "out"
    write_landing(data / "landing", n_subscribers=150, days=1, seed=5, start_date=DAY)
    schedules = _write_schedules(
        tmp_path / "schedules.yaml",
        parameters={"config_dir": str(config_dir), "data_dir": str(data), "out_dir": str(out), "demo": True},
        schedules={"daily": {"cron": "0 0 1 1 *"},  # not during the test
                   "catch_up": {"cron": "* * * * *", "lookback_days": 3}},  # the next minute
    )
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    server_log, serve_log = tmp_path / "server.log", tmp_path / "serve.log"
    server = _start(
        [str(PREFECT), "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui"],
        _env_without_prefect(
            PREFECT_HOME=str(tmp_path / "server-home"),
            PREFECT_SERVER_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}",
            PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="5",
        ),
        server_log,
    )
    serving = None
    try:
        _wait_for(lambda: _healthy(api), SERVER_START_SECONDS, "the Prefect server", [server_log])
        serving = _start(
            [str(KR_REPORTS), "serve", "--schedules", str(schedules)],
            _env_without_prefect(
                PREFECT_API_URL=api, PREFECT_HOME=str(tmp_path / "serve-home"),
                PREFECT_RUNNER_POLL_FREQUENCY="2", KR_SPARK_MASTER="local[2]",
                KR_SPARK_SHUFFLE_PARTITIONS="2",
            ),
            serve_log,
        )
        logs = [serve_log, server_log]
        catch_up = _wait_for(lambda: _deployment(api, "catch_up_partner_reports", CATCH_UP_DEPLOYMENT),
                             SERVER_START_SECONDS, "the catch-up deployment", logs)
        daily = _deployment(api, "daily_partner_reports", DAILY_DEPLOYMENT)
        assert daily is not None and daily["schedules"][0]["schedule"]["cron"] == "0 0 1 1 *"
        run = _wait_for(_scheduled_run_done(api, catch_up["id"], logs), SCHEDULED_RUN_SECONDS,
                        "a scheduled catch-up run to complete", logs)
        assert run["parameters"]["data_dir"] == str(data)
    finally:
        for process in (serving, server):
            if process is not None:
                _stop(process)
    for spec in load_report_specs(config_dir):
        delivery = out / "deliveries" / spec.delivery.partner / spec.name / DAY.isoformat()
        assert (delivery / "manifest.json").is_file(), spec.name
    assert list((data / "data_docs" / DAY.isoformat()).glob("*/index.html"))


def test_a_failing_report_does_not_hold_back_the_others(monkeypatch, prefect_harness):
    from types import SimpleNamespace

    from prefect import flow

    from flows import daily
    from stages.results import Refused

    specs = [SimpleNamespace(name=name) for name in ("first", "broken", "over_budget", "last")]

    def release_one(catalog, spec, *args):
        if spec.name == "broken":
            raise StageFailed(f"stage 'release' failed for broken on {DAY}: PlanError: bounds")
        if spec.name == "over_budget":
            return Refused(f"report 'over_budget' for {DAY} refused: ...")
        return SimpleNamespace(report=spec.name)

    monkeypatch.setattr(daily, "_release_and_deliver_one", release_one)

    @flow
    def each_report():
        releasing = daily.Releasing(config_dir="config", demo=True, new_release=False, recover_lost=False)
        return daily._release_and_deliver(None, specs, None, DAY, releasing)

    reports, failed, refused = each_report()
    assert [r.report for r in reports] == ["first", "last"]
    assert failed == [f"stage 'release' failed for broken on {DAY}: PlanError: bounds"]
    assert refused == [f"report 'over_budget' for {DAY} refused: ..."]
