"""A release through the front door charged to a ledger on PostgreSQL (the throwaway test server).

`Releaser.open` takes the ledger's URL (or $KR_LEDGER_URL); the release store beside the data
is bound to that ledger, so the data folder's own SQLite ledger is refused for it afterwards.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from postgres_server import LedgerBackend
from specs import traffic_aggregation

from core.config import Delivery
from core.ledger import LEDGER_URL_ENV, Ledger
from stages.releaser import Releaser, ReleaseRefused

ROOT = Path(__file__).resolve().parents[1]
DAY = dt.date(2026, 11, 1)
DELIVERY = Delivery(partner="metro-planning", purpose="aggregate_reports", policy_clause="clause")


def test_a_release_through_the_front_door_is_charged_to_a_postgresql_ledger(postgres_server, tmp_path, spark,
                                                                          monkeypatch):
    backend = LedgerBackend("postgresql", tmp_path, postgres_server)
    url = backend.new()
    data = tmp_path / "data"
    flows = spark.createDataFrame([(f"s{i}", "Seoul" if i % 2 else "Busan", i % 2) for i in range(60)],
                                  "subscriber string, region string, hour int")
    monkeypatch.delenv(LEDGER_URL_ENV, raising=False)

    releaser = Releaser.open(data, ROOT / "config", ledger_url=url, random_state=np.random.RandomState(0))
    made = releaser.release(flows, traffic_aggregation(), DAY, DELIVERY)
    (charge,) = Ledger(url).charges()
    assert (charge.id, charge.state, charge.release_id) == (made.record.ledger_entry_id, "stored",
                                                            "traffic/2026-11-01")
    assert made.record.ledger_id == Ledger(url).id == releaser.store.ledger_id()
    assert not (data / "ledger.sqlite").exists()  # nothing was charged beside the data

    monkeypatch.setenv(LEDGER_URL_ENV, url)  # as an operator points every run at it
    again = Releaser.open(data, ROOT / "config").release(flows, traffic_aggregation(), DAY, DELIVERY)
    assert again.reused and again.table.equals(made.table)
    assert len(Ledger(url).charges()) == 1

    monkeypatch.delenv(LEDGER_URL_ENV)  # the URL forgotten: no fresh budget beside the store
    with pytest.raises(ReleaseRefused, match="no privacy ledger"):
        Releaser.open(data, ROOT / "config")
    assert not (data / "ledger.sqlite").exists()
    backend.drop_all()
