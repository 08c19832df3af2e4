"""The analyst notebooks: committed without outputs, and executed on the session's daily run.

Each notebook runs in its own `python3` kernel (ipykernel's native spec, which
jupyter_client starts with this interpreter, the venv's), with the run's folders
in the environment and matplotlib's Agg backend; nothing in them starts Spark.
"""

import os
import shutil
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

from core.ledger import Ledger
from core.store import ReleaseStore
from kr_reports import analysis
from stages.catalog import Catalog

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
EXPECTED = (
    "01_explore_a_release.ipynb",
    "02_privacy_ledger.ipynb",
    "03_accuracy_vs_parameters.ipynb",
    "04_analyst_zone.ipynb",
    "05_adhoc_query.ipynb",
)
# Notebooks that charge the ledger run on a copy of the daily run's data, which others only read.
CHARGING = ("05_adhoc_query.ipynb",)
CELL_TIMEOUT = 120  # seconds per cell; each takes a few at most
PSEUDONYM_PREFIX = 12  # pandas may truncate a long value: look for its start


def _execute(nb, env: dict[str, str]):
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, startup_timeout=60, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    return client.execute(env=env)


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory, daily_run, config_dir) -> dict[str, str]:
    inherited = {name: value for name, value in os.environ.items() if name != analysis.REPORT_ENV}
    return {
        **inherited,  # a report chosen in the caller's shell may not be in this run
        "KR_DATA_DIR": str(daily_run["data"]),
        "KR_OUT_DIR": str(daily_run["out"]),
        "KR_CONFIG_DIR": str(config_dir),
        "MPLBACKEND": "Agg",
        "IPYTHONDIR": str(tmp_path_factory.mktemp("ipython")),  # no profile written to the home folder
    }


@pytest.fixture(scope="module")
def charging_data(tmp_path_factory, daily_run) -> Path:
    """What a charging notebook needs of the daily run (protected zone, store, ledger), copied."""
    copy = tmp_path_factory.mktemp("charging") / "data"
    for part in ("protected", "releases", "ledger.sqlite"):
        source = daily_run["data"] / part
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, copy / part)
    return copy


@pytest.fixture(scope="module")
def executed(kernel_env, charging_data):
    """Each notebook executed once per module, on demand."""
    done = {}

    def run(name: str):
        if name not in done:
            env = {**kernel_env, "KR_DATA_DIR": str(charging_data)} if name in CHARGING else kernel_env
            done[name] = _execute(nbformat.read(NOTEBOOKS / name, as_version=4), env)
        return done[name]

    return run


def _outputs(nb) -> list[dict]:
    return [output for cell in nb.cells if cell.cell_type == "code" for output in cell.outputs]


def _output_text(nb) -> str:
    texts = []
    for output in _outputs(nb):
        texts.append(output.get("text", ""))
        data = output.get("data", {})
        texts += [data.get("text/plain", ""), data.get("text/html", "")]
    return "\n".join(texts)


def test_the_analyst_notebooks_are_all_there():
    assert tuple(sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))) == EXPECTED


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_committed_notebooks_have_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code, "a notebook without code"
    assert all(cell.outputs == [] for cell in code), "outputs saved: clear them before committing"
    assert all(cell.execution_count is None for cell in code), "execution counts saved: clear them"


def test_the_kernel_runs_this_interpreter_with_the_agg_backend(kernel_env):
    source = "import os, sys\nprint(sys.executable)\nprint(os.environ['MPLBACKEND'])"
    nb = new_notebook(cells=[new_code_cell(source)])
    printed = _execute(nb, kernel_env).cells[0].outputs[0]["text"].split()
    assert printed == [sys.executable, "Agg"]


@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_runs_on_the_daily_run_and_draws_a_figure(executed, name):
    nb = executed(name)  # nbclient raises CellExecutionError on any failing cell
    outputs = _outputs(nb)
    assert not [o for o in outputs if o["output_type"] == "error"]
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert figures, f"{name} drew no figure"


@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_outputs_show_no_pseudonym(executed, daily_run, name):
    pseudonyms = pd.read_parquet(daily_run["data"] / "protected" / "subscribers", columns=["subscriber"])
    text = _output_text(executed(name))
    shown = [p for p in pseudonyms["subscriber"] if p[:PSEUDONYM_PREFIX] in text]
    assert not shown, f"{name} shows {len(shown)} subscriber pseudonyms"


def test_the_adhoc_query_is_charged_to_the_ledger_as_internal(executed, charging_data):
    executed("05_adhoc_query.ipynb")
    charges = Ledger(charging_data / "ledger.sqlite", create=False).charges("network_flows")
    adhoc = [c for c in charges if c.report.startswith("adhoc_")]
    assert [(c.report, c.partner, c.purpose, c.state) for c in adhoc] == [
        ("adhoc_bytes_by_region", "internal", "internal_analysis", "stored")]  # the greedy one refused
    assert ReleaseStore(charging_data / "releases").numbers("adhoc_greedy", adhoc[0].period) == []


def test_every_delivered_report_can_be_explored(daily_run, config_dir):
    """What notebooks 01 and 03 compute, for each delivered report, not only the default one."""
    deliveries = analysis.find_deliveries(daily_run["out"])
    delivered = {r["report"] for r in daily_run["summary"]["reports"]}
    assert set(deliveries["report"]) == delivered
    catalog = Catalog(daily_run["data"], daily_run["out"])
    for report in sorted(delivered):
        delivery = analysis.load_delivery(analysis.choose_delivery(deliveries, report))
        plan = analysis.load_plan(delivery.aggregation, config_dir)
        truth = analysis.load_truth(catalog, delivery, plan)
        assert truth.values is not None, f"{report}: {truth.note}"
        comparison = analysis.compare_release(delivery, truth)
        for output in delivery.outputs:
            released = analysis.released_values(delivery, output)
            compared = comparison[comparison["output"] == output]
            if delivery.metric_of(output)["kind"] in analysis.ZERO_WHEN_EMPTY:
                # every released cell has a true value, 0 when no row fell in it
                assert len(compared) == (released["status"] == "released").sum(), f"{report} {output}"
        grid = analysis.default_grid(delivery.aggregation)
        bounding = analysis.load_bounding(catalog, delivery, plan, grid)
        noise = analysis.accuracy_grid(plan, grid, bounding.rows_per_cell)
        assert set(noise["metric"]) == {m.name for m in delivery.aggregation.metrics}
        assert bounding.kept["kept_share"].between(0, 1).all(), report
