"""A release's record as a typed value: read back from release.json as every version wrote it."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from core.release_record import (
    MetricRecord,
    PartRecord,
    RecordInvalid,
    ReleaseRecord,
    SelectionRecord,
    ThresholdSelectionRecord,
)
from core.store import RECORD_FILE, ReleaseStore, json_text

METRIC = {
    "name": "subscribers", "kind": "count_distinct_subscribers", "column": None, "outputs": ["subscribers"],
    "epsilon": 0.3, "delta": 0.0, "rho": 0.0,
    "parts": [{"part": "value", "mechanism": "geometric", "sensitivity": 1, "noise_sd": 4.696413832425444,
               "ci95_half_width": 10}],
}
# release.json as the store wrote it before records stated the guarantee, and before partition
# selection was truncated geometric (a bench store of 2026-12-07, one metric kept).
BEFORE_THE_GUARANTEE = {
    "release_id": "web_reach_category_day/2000-01-05", "number": 1,
    "ledger_id": "902f12cb0a8d48a8b46446ff1055672b", "ledger_entry_id": 5,
    "aggregation_hash": "e5c4a9440ce33d701dcb232fe9ac59b7d120e34d40d81cc82be6fcdd6bee32b8",
    "report": "web_reach_category_day", "source": "web_visits", "partner": None, "period": "2000-01-05",
    "accounting": "pure_dp", "epsilon": 0.8, "delta": 1e-06, "rho": 0.0, "cells": 40,
    "cells_by_status": {"released": 31, "suppressed": 9}, "metrics": [METRIC],
    "partition_selection": {"epsilon": 0.5, "delta": 1e-06, "threshold": 118, "noise_sd": 11.306346158727699},
    "created_at": "2026-12-07T01:19:36+00:00",
}
# The first release records named their ledger as an object.
FIRST_FORMAT = {**{k: v for k, v in BEFORE_THE_GUARANTEE.items() if k != "ledger_id"},
                "ledger": {"id": "902f12cb0a8d48a8b46446ff1055672b", "charge_id": 5}}
NOW = {
    **BEFORE_THE_GUARANTEE,
    "partition_selection": {"epsilon": 0.5, "delta": 1e-06, "mechanism": "truncated_geometric",
                            "even_odds_from": 40, "always_from": 118},
    "guarantee": {"statement": "(1, 1e-06)-DP per subscriber per 30-day window", "window_days": 30,
                  "epsilon": 1.0, "delta": 1e-06},
}


def _stored(tmp_path, document: dict) -> ReleaseStore:
    store = ReleaseStore(tmp_path / "releases")
    folder = store.folder(document["report"], document["period"], document.get("number", 1))
    folder.mkdir(parents=True)
    (folder / RECORD_FILE).write_text(json.dumps(document, indent=2))
    pd.DataFrame({"status": ["released"]}).to_parquet(folder / "release.parquet")
    return store


def test_a_record_of_today_reads_back_as_written():
    record = ReleaseRecord.from_dict(NOW)
    assert record.to_dict() == NOW
    assert isinstance(record.partition_selection, SelectionRecord)
    assert record.partition_selection.always_from == 118 and record.guarantee.window_days == 30
    assert record.metric("subscribers").parts == (PartRecord("value", "geometric", 1, 4.696413832425444, 10),)
    assert ReleaseRecord.from_dict(json.loads(json_text(record.to_dict()))) == record


def test_a_record_stored_before_the_guarantee_and_truncated_geometric_selection_loads(tmp_path):
    store = _stored(tmp_path, BEFORE_THE_GUARANTEE)
    (record,) = store.records()
    assert record.guarantee is None
    assert record.partition_selection == ThresholdSelectionRecord(0.5, 1e-06, 118, 11.306346158727699)
    assert record.to_dict() == {**BEFORE_THE_GUARANTEE, "guarantee": None}  # nothing lost or renamed
    assert store.latest("web_reach_category_day", "2000-01-05").record == record


def test_the_first_records_name_their_ledger_as_an_object():
    record = ReleaseRecord.from_dict(FIRST_FORMAT)
    assert (record.ledger_id, record.ledger_entry_id) == ("902f12cb0a8d48a8b46446ff1055672b", 5)


def test_a_zcdp_metric_states_no_epsilon_as_nan_when_made_and_null_when_stored():
    metric = MetricRecord.from_dict({**METRIC, "epsilon": math.nan, "delta": math.nan, "rho": 0.05})
    stored = json.loads(json_text(metric.to_dict()))
    assert (stored["epsilon"], stored["delta"]) == (None, None)
    assert MetricRecord.from_dict(stored).epsilon is None


def test_a_record_without_its_charge_is_refused_naming_the_file_and_field(tmp_path):
    store = _stored(tmp_path, {k: v for k, v in NOW.items() if k not in ("ledger_entry_id", "cells")})
    with pytest.raises(RecordInvalid) as refused:
        list(store.records())
    message = str(refused.value)
    assert message.startswith(str(store.root)) and RECORD_FILE in message
    assert message.endswith("release record: missing ledger_entry_id, cells")


def test_a_metric_record_without_its_parts_is_refused():
    with pytest.raises(RecordInvalid, match="metric: missing parts"):
        ReleaseRecord.from_dict({**NOW, "metrics": [{k: v for k, v in METRIC.items() if k != "parts"}]})


def test_a_record_is_frozen():
    record = ReleaseRecord.from_dict(NOW)
    with pytest.raises(AttributeError):
        record.epsilon = 0.0
