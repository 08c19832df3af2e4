"""Session-wide fixtures: one Spark session and one Prefect harness per test run, and the
ledger's backends: SQLite and a throwaway PostgreSQL server (tests/postgres_server.py).

Under `CI=true` every skip is reported as a failure (tests/strict_ci.py).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from postgres_server import ledger_at, ledger_backend, postgres_server  # noqa: F401 (fixtures)
from s3_endpoint import s3_endpoint  # noqa: F401 (a session fixture: moto's S3 server on loopback)
from strict_ci import pytest_make_collect_report, pytest_runtest_makereport  # noqa: F401 (hooks)

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_HOME", str(ROOT / ".prefect"))


@pytest.fixture(scope="session")
def spark():
    from stages.spark import get_spark

    session = get_spark("kr-reports-tests", KR_SPARK_MASTER="local[2]", KR_SPARK_SHUFFLE_PARTITIONS="2")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory):
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def config_dir() -> Path:
    return ROOT / "config"


@pytest.fixture(scope="session")
def daily_run(tmp_path_factory, spark, prefect_harness, config_dir):
    """The daily flow once per test session on small generated data (demo keys).

    Several test modules read what it wrote (deliveries, ledger, releases,
    analyst zone); none may modify it: copy what a test needs to damage.
    """
    from flows.daily import daily_partner_reports
    from stages.generate import write_landing

    root = tmp_path_factory.mktemp("e2e")
    data, out = root / "data", root / "out"
    generated = write_landing(data / "landing", n_subscribers=300, days=1, seed=11, bad_row_rate=0.03)
    summary = daily_partner_reports(data_dir=str(data), out_dir=str(out),
                                    config_dir=str(config_dir), demo=True)
    return {"root": root, "data": data, "out": out, "generated": generated, "summary": summary}
