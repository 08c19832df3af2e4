"""The release front door: one path for every release, and a store and ledger that must agree.

Each test damages what an operator could damage (the ledger file, its URL, the store, the
spec between a charge and its store) and checks that nothing is released and the message
names both locations.
"""

from __future__ import annotations

import ast
import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import pytest
from releasing import ample_config, open_releaser
from specs import report_spec

import kr_reports
from core.accounting import pure_dp_cost
from core.config import Budget, Delivery
from core.ledger import BudgetExceeded, ChargeMismatch, ChargeRequest, Ledger
from core.store import ReleaseStore
from stages.releaser import Releaser, ReleaseRefused

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = "subscriber string, region string, hour int, bytes bigint"
DAY = dt.date(2026, 11, 1)
DELIVERY = Delivery(partner="metro-planning", purpose="aggregate_reports", policy_clause="clause")


def _aggregation(epsilon: float = 1.0, name: str = "traffic"):
    return report_spec({
        "name": name, "source": "network_flows", "partner": "p", "purpose": "aggregate_reports",
        "policy_clause": "c",
        "group_by": [{"column": "region", "values": "regions"}, {"column": "hour", "range": [0, 1]}],
        "contribution": {"max_groups_per_subscriber": 2, "max_rows_per_group": 2},
        "metrics": [{"name": "subs", "kind": "count_distinct_subscribers", "epsilon": epsilon},
                    {"name": "total", "kind": "sum", "column": "bytes", "lower": 0, "upper": 100,
                     "epsilon": epsilon}],
    }).aggregation


@pytest.fixture(scope="module")
def flows(spark):
    rows = [(f"s{i}", "North" if i % 2 else "South", i % 2, 10 * (i % 7)) for i in range(60)]
    return spark.createDataFrame(rows, SCHEMA)


def _reopen(folder: Path, ledger: Path | None = None, create: bool = True) -> Releaser:
    ledger = Ledger(ledger or folder / "ledger.sqlite", create=create)
    store = ReleaseStore(folder / "releases")
    return Releaser(ledger, store, ample_config(), random_state=np.random.RandomState(1))


def _released(folder: Path, flows) -> Releaser:
    releaser = open_releaser(folder, random_state=np.random.RandomState(0))
    releaser.release(flows, _aggregation(), DAY, DELIVERY)
    return releaser


def test_the_public_api_is_the_front_door():
    exported = {"Releaser", "Aggregation", "Delivery", "Release", "Ledger", "ReleaseStore"}
    assert exported <= set(kr_reports.__all__)
    assert kr_reports.Releaser is Releaser


def test_a_release_is_charged_stored_and_served_again_without_new_noise(tmp_path, flows):
    releaser = open_releaser(tmp_path, random_state=np.random.RandomState(0))
    first = releaser.release(flows, _aggregation(), DAY, DELIVERY)
    again = _reopen(tmp_path).release(flows, _aggregation(), DAY, DELIVERY)
    assert not first.reused and again.reused
    assert again.table.equals(first.table)
    (charge,) = releaser.ledger.charges()
    assert (charge.id, charge.state, charge.partner) == (first.record.ledger_entry_id, "stored",
                                                        "metro-planning")
    assert first.record.ledger_id == releaser.ledger.id == releaser.store.ledger_id()
    assert first.record.aggregation_hash == _aggregation().fingerprint()


def test_an_internal_aggregation_is_charged_to_the_same_ledger_and_refused_alike(tmp_path, flows):
    tight = Budget(window_days=30, epsilon=5.0)
    releaser = open_releaser(tmp_path, budget=tight, random_state=np.random.RandomState(0))
    releaser.release(flows, _aggregation(), DAY, DELIVERY)  # a scheduled report: epsilon 2
    adhoc = releaser.release(flows, _aggregation(name="adhoc"), DAY)  # an analyst's query: 2 more
    assert adhoc.record.partner is None
    assert [c.partner for c in releaser.ledger.charges()] == ["metro-planning", "internal"]
    with pytest.raises(BudgetExceeded, match=r"report 'adhoc2' for .* refused"):
        releaser.release(flows, _aggregation(name="adhoc2"), DAY)
    assert releaser.store.numbers("adhoc2", DAY.isoformat()) == []


@pytest.mark.parametrize("damage", ["deleted", "emptied"])
def test_a_deleted_or_emptied_ledger_stops_the_next_release(tmp_path, flows, damage):
    _released(tmp_path, flows)
    ledger = tmp_path / "ledger.sqlite"
    ledger.unlink()
    if damage == "emptied":
        ledger.write_bytes(b"")
    with pytest.raises(ReleaseRefused, match="no privacy ledger") as refused:
        Releaser.open(tmp_path, ROOT / "config")
    assert str(ledger) in str(refused.value) and str(tmp_path / "releases") in str(refused.value)
    # nothing was created in its place
    assert (not ledger.exists()) if damage == "deleted" else ledger.stat().st_size == 0


def test_another_ledger_is_refused_naming_both(tmp_path, flows):
    _released(tmp_path, flows)
    other = tmp_path / "other.sqlite"
    with pytest.raises(ReleaseRefused, match="was charged to ledger") as refused:
        _reopen(tmp_path, ledger=other)
    assert str(other) in str(refused.value) and str(tmp_path / "releases") in str(refused.value)


def test_a_rolled_back_ledger_is_refused(tmp_path, flows):
    releaser = open_releaser(tmp_path, random_state=np.random.RandomState(0))
    releaser.release(flows, _aggregation(), DAY, DELIVERY)
    backup = tmp_path / "backup.sqlite"
    shutil.copy(tmp_path / "ledger.sqlite", backup)
    releaser.release(flows, _aggregation(name="later"), DAY, DELIVERY)
    shutil.copy(backup, tmp_path / "ledger.sqlite")
    with pytest.raises(ReleaseRefused, match="lacks the charges of 1 release"):
        _reopen(tmp_path)


def test_a_lost_store_is_refused_unless_recovered_under_a_new_number(tmp_path, flows):
    _released(tmp_path, flows)
    shutil.rmtree(tmp_path / "releases" / "traffic")
    releaser = _reopen(tmp_path)
    with pytest.raises(ReleaseRefused, match="no longer holds it"):
        releaser.release(flows, _aggregation(), DAY, DELIVERY)
    recovered = releaser.release(flows, _aggregation(), DAY, DELIVERY, recover_lost=True)
    assert recovered.record.release_id == "traffic/2026-11-01#2" and not recovered.reused
    assert [c.release_id for c in releaser.ledger.charges()] == ["traffic/2026-11-01", "traffic/2026-11-01#2"]


def _crash_between_charge_and_store(tmp_path, flows, monkeypatch) -> Releaser:
    releaser = open_releaser(tmp_path, random_state=np.random.RandomState(0))

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(releaser.store, "write", crash)
    with pytest.raises(OSError):
        releaser.release(flows, _aggregation(), DAY, DELIVERY)
    monkeypatch.undo()
    (charge,) = releaser.ledger.charges()
    assert charge.state == "charged"
    return _reopen(tmp_path)


def test_a_retry_after_a_crash_takes_up_its_charge(tmp_path, flows, monkeypatch):
    releaser = _crash_between_charge_and_store(tmp_path, flows, monkeypatch)
    release = releaser.release(flows, _aggregation(), DAY, DELIVERY)
    (charge,) = releaser.ledger.charges()
    assert release.record.ledger_entry_id == charge.id and charge.state == "stored"


def test_an_interrupted_new_release_is_resumed_with_no_new_charge(tmp_path, flows, monkeypatch):
    """A new release of three aggregations stopped after the first, between the second's charge
    and its store: a plain run refuses what it has not released; resumed, it finishes exactly
    those, taking up the second's charge (its noise was never stored), and charges the third once."""
    names = ("first", "second", "third")
    releaser = open_releaser(tmp_path, random_state=np.random.RandomState(0))
    for name in names:
        releaser.release(flows, _aggregation(name=name), DAY, DELIVERY)
    opened, resumed = releaser.ledger.open_new_release(DAY)
    assert not resumed
    done = releaser.release(flows, _aggregation(name="first"), DAY, DELIVERY, new_release=opened)
    assert done.newly_charged and done.record.number == 2

    def killed(*args, **kwargs):
        raise OSError("killed")

    monkeypatch.setattr(releaser.store, "write", killed)
    with pytest.raises(OSError):
        releaser.release(flows, _aggregation(name="second"), DAY, DELIVERY, new_release=opened)
    monkeypatch.undo()  # the third never started

    plain = _reopen(tmp_path)
    assert plain.release(flows, _aggregation(name="first"), DAY, DELIVERY).record.number == 2
    for name in ("second", "third"):  # not served at release 1 as if nothing happened
        with pytest.raises(ReleaseRefused, match=f"interrupted before it released '{name}'.*--new-release"):
            plain.release(flows, _aggregation(name=name), DAY, DELIVERY)
    before = plain.ledger.charges()
    assert len(before) == 5 and [c.state for c in before if c.release_id == "second/2026-11-01#2"] == [
        "charged"]

    again = _reopen(tmp_path)
    assert again.ledger.open_new_release(DAY) == (opened, True)
    first, second, third = (again.release(flows, _aggregation(name=name), DAY, DELIVERY, new_release=opened)
                            for name in names)
    assert first.reused and first.table.equals(done.table)
    unstored = next(c for c in before if c.release_id == "second/2026-11-01#2")
    assert not second.reused and not second.newly_charged
    assert second.record.ledger_entry_id == unstored.id
    assert not third.reused and third.newly_charged and third.record.number == 2
    charges = again.ledger.charges()
    assert len(charges) == 6 and {c.state for c in charges} == {"stored"}
    assert sorted(c.release_id for c in charges if c.new_release == opened.id) == [
        f"{name}/2026-11-01#2" for name in names]


def test_a_spec_changed_between_charge_and_store_is_refused(tmp_path, flows, monkeypatch):
    releaser = _crash_between_charge_and_store(tmp_path, flows, monkeypatch)
    with pytest.raises(ChargeMismatch, match=r"epsilon 2\.0 vs 3\.0"):
        releaser.release(flows, _aggregation(epsilon=1.5), DAY, DELIVERY)
    bounds = _aggregation().model_copy(update={"contribution": _aggregation().contribution.model_copy(
        update={"max_rows_per_group": 5})})  # same epsilon, other noise: only the hash tells
    with pytest.raises(ChargeMismatch, match="the aggregation"):
        releaser.release(flows, bounds, DAY, DELIVERY)
    assert releaser.store.is_empty() and len(releaser.ledger.charges()) == 1


def test_a_spec_changed_after_its_release_is_not_served_as_the_old_one(tmp_path, flows):
    releaser = _released(tmp_path, flows)
    with pytest.raises(ReleaseRefused, match="another version of aggregation 'traffic'"):
        releaser.release(flows, _aggregation(epsilon=1.5), DAY, DELIVERY)
    deliberate = releaser.release(flows, _aggregation(epsilon=1.5), DAY, DELIVERY, new_release=True)
    assert deliberate.record.number == 2


def test_a_stored_charge_never_pays_for_another_release(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    request = ChargeRequest(release_id="r/2026-11-01", dataset="d", privacy_unit="subscriber", period=DAY,
                            report="r", partner="p", purpose="aggregate_reports", cost=pure_dp_cost([1.0]))
    limits = [Budget(window_days=30, epsilon=10)]
    charge, new = ledger.charge(request, limits)
    assert new and ledger.charge(request, limits) == (charge, False)  # charged, not stored: reusable
    ledger.mark_stored(charge.id)
    with pytest.raises(ChargeMismatch, match="not paid for again"):
        ledger.charge(request, limits)


def test_a_ledger_is_never_created_by_a_reader(tmp_path):
    from core.ledger import LedgerMissing

    with pytest.raises(LedgerMissing, match="no privacy ledger"):
        Ledger(tmp_path / "nothing" / "ledger.sqlite", create=False)
    assert not (tmp_path / "nothing").exists()


# Calls that draw noise, and the only modules allowed to make them.
NOISE_CALLS = {"add_to", "randomise", "noisy_release", "select_partitions", "NoisyTree", "sampler"}
NOISE_MODULES = {"core/mechanisms.py", "core/noisy_cells.py", "core/quantile_tree.py",
                 "stages/releaser.py"}


def _noise_calls(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in NOISE_CALLS:
                names.append(f"{name} (line {node.lineno})")
    return names


def test_no_module_but_the_front_door_draws_noise():
    """Product code, benchmarks and notebooks' helpers: noise is drawn behind the Releaser only."""
    offenders = {}
    for folder in ("kr_reports", "flows", "stages", "transforms", "expectations", "synthetic", "core",
                   "bench"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative not in NOISE_MODULES and (calls := _noise_calls(path)):
                offenders[relative] = calls
    assert offenders == {}


def test_the_noise_scan_would_catch_a_bypass(tmp_path):
    bypass = tmp_path / "bypass.py"
    bypass.write_text("from core import noisy_cells\nnoisy_cells.noisy_release(cells, {}, plan)\n")
    assert _noise_calls(bypass) == ["noisy_release (line 2)"]
