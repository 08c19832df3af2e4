"""An interrupted `kr-reports run --new-release`, resumed; and what a run's summary claims.

One small data folder of its own (the session's `daily_run` is not touched), four runs
through the command line in order: a first run, a new release stopped part way (one
report delivered, one charged but not stored, the rest not reached), a plain run, and
the resumed new release.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pytest

from core.config import load_report_specs
from core.ledger import Ledger
from core.store import ReleaseStore
from kr_reports.cli import main

DAY = "2026-11-01"


@pytest.fixture(scope="module")
def folder(tmp_path_factory, spark, prefect_harness):
    from stages.generate import write_landing

    root = tmp_path_factory.mktemp("resume")
    write_landing(root / "data" / "landing", n_subscribers=300, days=1, seed=11, bad_row_rate=0.03)
    return root


def _run(folder: Path, config_dir: Path, *options: str) -> int:
    return main(["run", "--demo", "--day", DAY, "--data-dir", str(folder / "data"),
                 "--out-dir", str(folder / "out"), "--config-dir", str(config_dir), *options])


def _ledger(folder: Path) -> Ledger:
    return Ledger(folder / "data" / "ledger.sqlite", create=False)


def _delivered(out: str) -> dict[str, str]:
    """report -> the line `_print_run` gave it."""
    return {line.split()[0]: line for line in out.splitlines() if line.startswith("  ") and " -> " in line}


def _charged_this_run(out: str) -> tuple[int, float]:
    [line] = [line for line in out.splitlines() if line.startswith("Charged this run:")]
    words = line.split()
    return int(words[3]), float(words[-1].rstrip(")"))


@pytest.fixture(scope="module")
def runs(folder, config_dir):
    """The four runs' exit status and output, and the ledger after each."""
    from stages import releaser

    names = [s.name for s in load_report_specs(config_dir)]
    results = {}
    capture = _Capture()
    with capture:
        results["first"] = (_run(folder, config_dir), *capture.take(), _ledger(folder).charges())

    # Stop the new release after its first report: the second is charged and not stored (the
    # store write dies), the others die before their charge.
    true_aggregates, store_write = releaser._true_aggregates, ReleaseStore.write

    def aggregates(data, plan):
        if plan.aggregation.name not in names[:2]:
            raise OSError("killed before the charge")
        return true_aggregates(data, plan)

    def write(store, name, *args, **kwargs):
        if name == names[1]:
            raise OSError("killed between the charge and the store")
        return store_write(store, name, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch, capture:
        patch.setattr(releaser, "_true_aggregates", aggregates)
        patch.setattr(ReleaseStore, "write", write)
        results["interrupted"] = (_run(folder, config_dir, "--new-release"), *capture.take(),
                                  _ledger(folder).charges())
    with capture:  # what the operator sees of the interrupted run's leftover charge
        main(["ledger", "--data-dir", str(folder / "data")])
        main(["budget", "--data-dir", str(folder / "data"), "--config-dir", str(config_dir), "--as-of", DAY])
        results["ledger"], _ = capture.take()
    with capture:
        results["plain"] = (_run(folder, config_dir), *capture.take(), _ledger(folder).charges())
    with capture:
        results["resumed"] = (_run(folder, config_dir, "--new-release"), *capture.take(),
                              _ledger(folder).charges())
    return {"names": names, **results}


class _Capture:
    """stdout and stderr of a block, for a module-scoped fixture (capsys is function-scoped)."""

    def __enter__(self):
        import contextlib
        import io

        self._out, self._err = io.StringIO(), io.StringIO()
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(contextlib.redirect_stdout(self._out))
        self._stack.enter_context(contextlib.redirect_stderr(self._err))
        return self

    def __exit__(self, *exc):
        self._stack.close()
        return False

    def take(self) -> tuple[str, str]:
        """What the block printed so far (and stop capturing)."""
        self._stack.close()
        return self._out.getvalue(), self._err.getvalue()


def test_the_first_run_charges_each_report_once_and_says_so(runs):
    status, out, err, charges = runs["first"]
    assert status == 0, err
    assert len(charges) == len(runs["names"])
    count, epsilon = _charged_this_run(out)
    assert count == len(charges)
    assert epsilon == pytest.approx(math.fsum(c.epsilon for c in charges), rel=1e-3)


def test_a_partly_failed_run_lists_what_it_delivered_and_counts_only_as_it_is(runs):
    status, out, err, charges = runs["interrupted"]
    first, second = runs["names"][:2]
    assert status == 2
    assert set(_delivered(out)) == {first}  # its path is printed although the others failed
    assert Path(_delivered(out)[first].split(" -> ")[1]).is_dir()
    others = len(runs["names"]) - 1
    assert f"{others} of {len(runs['names'])} reports failed; of the others, 1 was delivered" in err
    assert "the others were delivered" not in err
    new = [c for c in charges if c.number == 2]
    assert sorted(c.report for c in new) == sorted([first, second])  # the ledger grew by these two
    assert _charged_this_run(out) == (2, pytest.approx(math.fsum(c.epsilon for c in new), rel=1e-3))
    assert [c.state for c in new if c.report == second] == ["charged"]


def test_the_ledger_flags_the_charge_left_without_its_release_and_budget_counts_no_release(runs):
    second, count = runs["names"][1], len(runs["names"])
    lines = runs["ledger"].splitlines()
    flagged = [line for line in lines if line.endswith("[NOT STORED]")]
    assert [line.split()[2] for line in flagged] == [f"{second}/{DAY}#2"]
    [budget] = [line for line in lines if line.startswith("all releases ")]
    assert budget.split()[-3:] == [str(count + 1), "(+1", "unstored)"]  # 7 releases, 8 charges


def test_a_plain_rerun_does_not_serve_the_old_release_of_what_the_new_release_left(runs):
    status, out, err, charges = runs["plain"]
    first, *rest = runs["names"]
    assert status == 2
    assert set(_delivered(out)) == {first} and "(stored release reused)" in _delivered(out)[first]
    for name in rest:
        assert f"interrupted before it released '{name}'" in err
    assert charges == runs["interrupted"][3]  # nothing charged
    assert _charged_this_run(out) == (0, 0.0)


def test_the_resumed_new_release_finishes_exactly_the_missing_releases_with_no_new_charge(runs, folder):
    status, out, err, charges = runs["resumed"]
    first, second, *rest = runs["names"]
    assert status == 0, err
    delivered = _delivered(out)
    assert set(delivered) == set(runs["names"])
    assert "(stored release reused)" in delivered[first]
    assert "(under the charge an interrupted run left unstored)" in delivered[second]
    by_report = {name: sorted(c.number for c in charges if c.report == name) for name in runs["names"]}
    assert by_report == {name: [1, 2] for name in runs["names"]}  # each charged once per release
    assert {c.state for c in charges} == {"stored"}
    new = [c for c in charges if c.report in rest and c.number == 2]
    assert _charged_this_run(out) == (len(rest), pytest.approx(math.fsum(c.epsilon for c in new), rel=1e-3))
    assert _ledger(folder).open_new_release_of(dt.date.fromisoformat(DAY)) is None  # closed


def test_the_failure_line_says_what_became_of_the_others():
    from flows.daily import reports_failed_message

    assert reports_failed_message(6, ["a"] * 6, 0, []).startswith("all 6 reports failed: ")
    assert reports_failed_message(6, ["a"] * 2, 3, ["r"]).startswith(
        "2 of 6 reports failed; of the others, 3 were delivered and 1 refused by the privacy budget: ")
    assert reports_failed_message(2, ["a"], 0, ["r"]).startswith(
        "1 of 2 reports failed; of the others, 1 refused by the privacy budget: a; r")
