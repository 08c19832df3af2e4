"""The daily flow on a real Spark cluster: a standalone master and worker on loopback.

`kr-reports run` runs as its own process (this one already has a local session),
on a copy of the landing zone of the session's local run (tests/conftest.py),
with its zones given as a file:// URL (KR_ZONES_URL, as shared storage would be),
KR_SPARK_MASTER pointing at the cluster and Spark's event log switched on
through a spark-defaults.conf in SPARK_CONF_DIR, as an operator would. It reads
and quarantines what the local run did. What shows that the cluster, not the
driver, did the work, and that the project's JVM functions reached it:

- the event log's finished tasks ran on executor "0", none on "driver"; in
  local mode every task is the driver's (`executor_tasks` on a local run's event
  log is the negative control below), so the same check fails there;
- the functions jar is in the executor's folder of the worker's work dir with
  the bytes pinned on the driver, and the executor added it to its class loader;
- the SQL executions whose plan calls kr_hmac_sha256_hex / kr_ipv4_network had
  their tasks finished on the executor (a session without the jar plans
  Spark's built-ins instead, so those names would not be there).

The cluster is stopped when the run ends; no JVM of it may be left.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from spark_cluster import group_members, standalone_cluster, stop

from core.config import load_report_specs
from core.keys import derive_key
from stages.delivery.verify import verify_checksums
from transforms.jvm_functions import FUNCTIONS

ROOT = Path(__file__).resolve().parents[1]
DAY = "2026-11-01"
RUN_WITHIN = 600  # seconds; the run takes about two minutes on two busy cores
# A fixed test key (not the demo's random one), so the event log can be searched for it.
KEY = "5f0c9e2b7a41d3886e19f4a2c07b5d3e9a61f8c24b0d7e3519c6a8f2e4b7d01c"


def _spark_conf(folder: Path, events: Path) -> Path:
    """What an operator puts in SPARK_CONF_DIR: the event log, the executors' size."""
    folder.mkdir(parents=True, exist_ok=True)
    events.mkdir(parents=True, exist_ok=True)
    (folder / "spark-defaults.conf").write_text(
        "spark.eventLog.enabled true\n"
        f"spark.eventLog.dir {events.as_uri()}\n"
        "spark.eventLog.compress false\n"
        "spark.executor.memory 1g\n"
        "spark.executor.cores 1\n"
    )
    return folder


def _run_env(root: Path, master: str, conf_dir: Path) -> dict[str, str]:
    import prefect.settings

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK_", "PYSPARK_SUBMIT"))}
    env.pop("KR_LEDGER_URL", None)  # the run's own ledger, in its data folder
    env.update(
        KR_SPARK_MASTER=master,
        KR_JVM_FUNCTIONS="on",
        KR_SPARK_DRIVER_MEMORY="1g",
        KR_SPARK_SHUFFLE_PARTITIONS="2",
        KR_SPARK_LOCAL_DIR=str(root / "driver-scratch"),
        KR_PSEUDONYM_KEY=KEY,
        SPARK_CONF_DIR=str(conf_dir),
        SPARK_LOCAL_IP="127.0.0.1",
        PYSPARK_PYTHON=os.environ.get("PYSPARK_PYTHON", sys.executable),
        PYSPARK_DRIVER_PYTHON=sys.executable,
        # the session's Prefect server: the run needs no temporary one of its own
        PREFECT_API_URL=str(prefect.settings.PREFECT_API_URL.value()),
    )
    return env


def _cli(args: list[str], env: dict[str, str], log: Path) -> tuple[subprocess.CompletedProcess, int]:
    """The command's result, and its process group (its driver JVM included), ended if it hangs."""
    with log.open("w") as stderr:
        cli = subprocess.Popen([sys.executable, "-m", "kr_reports.cli", *args], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=stderr, text=True, start_new_session=True)
        try:
            stdout, _ = cli.communicate(timeout=RUN_WITHIN)
        except subprocess.TimeoutExpired:
            stop([cli])
            raise
    return subprocess.CompletedProcess(cli.args, cli.returncode, stdout), cli.pid


@pytest.fixture(scope="module")
def cluster_run(tmp_path_factory, daily_run, prefect_harness, config_dir):
    """The daily flow on the cluster, on the landing zone of the session's local run
    (tests/conftest.py); the cluster is stopped before any test reads the result."""
    root = tmp_path_factory.mktemp("cluster")
    data, out, shared = root / "data", root / "out", root / "shared"
    shutil.copytree(daily_run["data"] / "landing", shared / "landing")
    events = root / "events"
    conf_dir = _spark_conf(root / "driver-conf", events)
    with standalone_cluster(root / "cluster") as cluster:
        # The zones by URL, as on storage every executor reads (README "Zones on shared storage").
        env = {**_run_env(root, cluster.master_url, conf_dir), "KR_ZONES_URL": shared.as_uri()}
        result, driver = _cli(["run", "--demo", "--day", DAY, "--data-dir", str(data),
                               "--out-dir", str(out), "--config-dir", str(config_dir)], env, root / "run.log")
        applications = _completed_applications(cluster)
        daemons = [p.pid for p in cluster.processes]
    return {"driver": driver, "root": root, "data": data, "shared": shared, "out": out, "result": result,
            "cluster": cluster,
            "applications": applications, "daemons": daemons, "events": _events(events),
            "log": (root / "run.log").read_text(errors="replace")}


def _completed_applications(cluster, within: float = 10) -> list[dict]:
    """The master's finished applications, once the run's has left the running ones."""
    deadline = time.monotonic() + within
    status = cluster.status()
    while status.get("activeapps") and time.monotonic() < deadline:
        time.sleep(0.5)
        status = cluster.status()
    return status.get("completedapps", [])


# The event log: one JSON event per line, in a file or in a rolling log's folder.

def _events(folder: Path) -> list[dict]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith((".", "appstatus")))
    return [json.loads(line) for path in files for line in path.read_text().splitlines() if line.strip()]


def executor_tasks(events: list[dict]) -> Counter:
    """Successful tasks by the executor that ran them ("driver" in local mode)."""
    return Counter(e["Task Info"]["Executor ID"] for e in events
                   if e["Event"] == "SparkListenerTaskEnd" and e["Task End Reason"]["Reason"] == "Success")


def tasks_of_executions_calling(events: list[dict], function: str) -> Counter:
    """The successful tasks, by executor, of the SQL executions whose plan calls `function`."""
    calling = {e["executionId"] for e in events
               if e["Event"].endswith("SparkListenerSQLExecutionStart")
               and f"{function}(" in e.get("physicalPlanDescription", "")}
    stages = {stage for e in events if e["Event"] == "SparkListenerJobStart"
              and int((e.get("Properties") or {}).get("spark.sql.execution.id", -1)) in calling
              for stage in e["Stage IDs"]}
    return Counter(e["Task Info"]["Executor ID"] for e in events
                   if e["Event"] == "SparkListenerTaskEnd" and e["Stage ID"] in stages
                   and e["Task End Reason"]["Reason"] == "Success")


def test_the_run_on_the_cluster_delivers_every_report(cluster_run, config_dir):
    result = cluster_run["result"]
    assert result.returncode == 0, f"rc {result.returncode}:\n{cluster_run['log'][-4000:]}"
    delivered = dict(line.strip().split(" -> ") for line in result.stdout.splitlines() if " -> " in line)
    assert set(delivered) == {s.name for s in load_report_specs(config_dir)}
    for delivery in delivered.values():
        verify_checksums(Path(delivery))
    apps = cluster_run["applications"]
    assert [a["state"] for a in apps] == ["FINISHED"], apps  # the run was the cluster's application


def test_the_cluster_read_and_quarantined_what_the_local_run_did(cluster_run, daily_run):
    counts = re.search(r"Day (\S+): ([\d,]+) rows read, ([\d,]+) quarantined", cluster_run["result"].stdout)
    assert counts, cluster_run["result"].stdout
    day, rows_in, quarantined = counts.group(1), *(int(n.replace(",", "")) for n in counts.groups()[1:])
    local = daily_run["summary"]
    assert (day, rows_in, quarantined) == (local["day"], local["rows_in"], local["rows_quarantined"])


def test_the_executor_ran_the_tasks_and_the_driver_none(cluster_run):
    tasks = executor_tasks(cluster_run["events"])
    assert set(tasks) == {"0"}, tasks  # the worker's one executor; no task on "driver"
    assert tasks["0"] >= 100, tasks  # the whole flow: ingest, protect, analyst zone, six reports


def test_the_jvm_functions_jar_reached_the_executor(cluster_run):
    app_dirs = list(cluster_run["cluster"].work_dir.glob("app-*/0"))
    assert len(app_dirs) == 1, app_dirs
    shipped = list(app_dirs[0].glob("kr-reports-functions-*.jar"))
    assert len(shipped) == 1, list(app_dirs[0].iterdir())
    pinned = cluster_run["root"] / "driver-scratch" / "jvm" / shipped[0].name
    assert hashlib.sha256(shipped[0].read_bytes()).hexdigest() == (
        pinned.with_name(pinned.name + ".sha256").read_text().strip())
    executor_log = (app_dirs[0] / "stderr").read_text(errors="replace")
    assert f"{shipped[0].name} to class loader" in executor_log


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_tasks_calling_the_jvm_functions_ran_on_the_executor(cluster_run, function):
    tasks = tasks_of_executions_calling(cluster_run["events"], function)
    assert set(tasks) == {"0"} and tasks["0"] > 0, tasks


def test_the_zones_were_read_and_written_by_url_and_the_data_folder_kept_none(cluster_run):
    shared, data = cluster_run["shared"], cluster_run["data"]
    for zone in ("raw", "quarantine", "protected", "analyst", "releases"):
        assert (shared / zone).is_dir(), zone
        assert not (data / zone).exists(), zone
    assert (data / "ledger.sqlite").is_file()


def test_files_the_executor_wrote_are_private(cluster_run):
    """The worker runs with umask 022; Hadoop's umask setting, shipped with the job, still holds."""
    written = [p for p in (cluster_run["shared"] / "protected").rglob("*.parquet")]
    assert written
    assert [p for p in written if p.stat().st_mode & 0o077] == []


def test_the_event_log_holds_no_key(cluster_run):
    """The event log keeps every plan: the key travels as data, never as a literal in one."""
    text = json.dumps(cluster_run["events"])
    master = bytes.fromhex(KEY)
    for key in (master, derive_key(master, "protected", DAY)):
        assert key.hex() not in text.lower()
        assert base64.b64encode(key).decode() not in text


def test_no_jvm_of_the_cluster_or_the_run_is_left(cluster_run):
    assert [group_members(pid) for pid in cluster_run["daemons"]] == [[], []]
    deadline = time.monotonic() + 10  # the run's own driver JVM ends with it, a moment later
    while group_members(cluster_run["driver"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert group_members(cluster_run["driver"]) == []


def test_a_local_run_fails_the_executor_checks(tmp_path, config_dir):
    """The negative control: the same event-log checks on a local-mode session's log."""
    events = tmp_path / "events"
    conf_dir = _spark_conf(tmp_path / "conf", events)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK_", "PYSPARK_SUBMIT"))}
    env.update(SPARK_CONF_DIR=str(conf_dir), KR_SPARK_LOCAL_DIR=str(tmp_path / "scratch"),
               KR_SPARK_DRIVER_MEMORY="512m", PYSPARK_PYTHON=sys.executable)
    script = ("from stages.spark import get_spark\n"
              "spark = get_spark('local-control', KR_SPARK_MASTER='local[1]')\n"
              "spark.range(8).selectExpr(\"kr_ipv4_network(concat('10.1.2.', id), 24)\").collect()\n"
              "spark.stop()\n")
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True, timeout=RUN_WITHIN,
                   capture_output=True)
    local = _events(events)
    assert executor_tasks(local) and set(executor_tasks(local)) == {"driver"}
    assert set(tasks_of_executions_calling(local, "kr_ipv4_network")) == {"driver"}
