"""A Spark standalone cluster on loopback for the tests: one master, one worker.

Both run from the installed pyspark's own `spark-class` (nothing is downloaded),
on free ports, with their logs, work and scratch folders under a folder the test
owns. `standalone_cluster` yields once the master's JSON status shows the worker
ALIVE, and on exit ends both process groups (TERM, then KILL) and waits for them:
a test asserts that no JVM of the cluster is left.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyspark

SPARK_CLASS = Path(pyspark.__file__).parent / "bin" / "spark-class"
READY_WITHIN = 90  # seconds: two JVMs starting on a busy two-core machine
STOP_WITHIN = 20
LOOPBACK = "127.0.0.1"


@dataclass
class Cluster:
    """The running cluster: where to submit, where its worker keeps the executors' folders."""

    master_url: str
    master_status_url: str
    work_dir: Path
    logs: dict[str, Path]
    processes: list[subprocess.Popen] = field(default_factory=list)

    def status(self) -> dict:
        with urllib.request.urlopen(self.master_status_url, timeout=5) as response:
            return json.load(response)

    def log_tails(self, chars: int = 3000) -> str:
        return "\n".join(f"--- {name} ({path}):\n{_tail(path, chars)}" for name, path in self.logs.items())


def _tail(path: Path, chars: int) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def cluster_env(folder: Path) -> dict[str, str]:
    """The daemons' environment: loopback only, no operator's Spark configuration, small JVMs."""
    conf = folder / "conf"
    conf.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK_", "PYSPARK_SUBMIT"))}
    env.update(
        SPARK_LOCAL_IP=LOOPBACK,
        SPARK_CONF_DIR=str(conf),  # empty: nothing from the machine's own spark-defaults
        SPARK_LOG_DIR=str(folder / "logs"),
        SPARK_LOCAL_DIRS=str(folder / "local"),  # the executors' shuffles and spills
        SPARK_DAEMON_MEMORY="256m",
        SPARK_NO_DAEMONIZE="1",
        # the executors' Python workers: the venv's interpreter, as on the driver
        PYSPARK_PYTHON=os.environ.get("PYSPARK_PYTHON", sys.executable),
    )
    return env


def _start(name: str, arguments: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("w") as output:
        return subprocess.Popen(
            [str(SPARK_CLASS), *arguments], env=env, stdin=subprocess.DEVNULL,
            stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: spark-class execs the JVM in it
            preexec_fn=_daemon_umask,
        )


def _daemon_umask() -> None:
    """A service's usual umask (022), not the test process's private one: what the executors
    write is then private only if the job's own settings make it so."""
    os.umask(0o022)


def _alive_workers(cluster: Cluster) -> list[dict]:
    with contextlib.suppress(OSError, ValueError):
        return [w for w in cluster.status().get("workers", []) if w.get("state") == "ALIVE"]
    return []


def _wait_until_ready(cluster: Cluster) -> None:
    deadline = time.monotonic() + READY_WITHIN
    while time.monotonic() < deadline:
        ended = [p for p in cluster.processes if p.poll() is not None]
        if ended:
            raise RuntimeError(f"a Spark daemon ended (rc {ended[0].returncode}) before the worker "
                               f"registered:\n{cluster.log_tails()}")
        if _alive_workers(cluster):
            return
        time.sleep(0.5)
    raise RuntimeError(f"no ALIVE worker at {cluster.master_status_url} within {READY_WITHIN} s:\n"
                       f"{cluster.log_tails()}")


def stop(processes: list[subprocess.Popen]) -> None:
    """TERM every daemon's process group, KILL what is left after STOP_WITHIN, and reap them."""
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_WITHIN
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    for process in processes:  # the group's other members (an executor the worker launched)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group `pgid`, from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(stat.parent.name))
    return members


@contextlib.contextmanager
def standalone_cluster(folder: Path, worker_memory: str = "2g") -> Iterator[Cluster]:
    """A master and a one-core worker on loopback, stopped (and reaped) on exit."""
    folder.mkdir(parents=True, exist_ok=True)
    for sub in ("logs", "work", "local"):
        (folder / sub).mkdir(exist_ok=True)
    env = cluster_env(folder)
    port, ui_port, worker_ui_port = free_port(), free_port(), free_port()
    cluster = Cluster(
        master_url=f"spark://{LOOPBACK}:{port}",
        master_status_url=f"http://{LOOPBACK}:{ui_port}/json/",
        work_dir=folder / "work",
        logs={"master": folder / "logs" / "master.out", "worker": folder / "logs" / "worker.out"},
    )
    try:
        cluster.processes.append(_start("master", [
            "org.apache.spark.deploy.master.Master", "--host", LOOPBACK, "--port", str(port),
            "--webui-port", str(ui_port)], env, cluster.logs["master"]))
        cluster.processes.append(_start("worker", [
            "org.apache.spark.deploy.worker.Worker", cluster.master_url, "--host", LOOPBACK,
            "--cores", "1", "--memory", worker_memory, "--work-dir", str(cluster.work_dir),
            "--webui-port", str(worker_ui_port)], env, cluster.logs["worker"]))
        _wait_until_ready(cluster)
        yield cluster
    finally:
        stop(cluster.processes)
