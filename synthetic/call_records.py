"""Synthetic call records: a day of calls and messages per subscriber."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.schemas import CALL_RECORDS
from synthetic.draws import (
    daily_count,
    normal,
    random_below,
    random_bits,
    uniform,
    uniform_index,
    weighted_index,
)
from synthetic.model import CALL_TYPES, CELLS_PER_REGION, REGIONS, ROAMING_RATE
from synthetic.records import Records, event_time, landing_table, records_per_subscriber, subscriber_keys
from synthetic.text import NULL_TEXT, fixed_width_text, hex_chars, lookup, zero_padded

CALLEE_PREFIXES = (("+8210", 0.85), ("+822", 0.10), ("+8231", 0.05))
# (median seconds, sigma) of the duration by call type; an sms lasts 0 s
DURATIONS = {"voice": (75.0, 1.1), "sms": (0.0, 1.3), "data": (600.0, 1.3)}


def generate_call_records(subscribers: pa.Table, day: dt.date, seed: int) -> pa.Table:
    """A day of calls and messages: about 6 per subscriber, heavy-tailed, diurnal."""
    tag = f"calls:{day.isoformat()}"
    keys = subscriber_keys(subscribers)
    records = records_per_subscriber(keys, daily_count(seed, tag, keys, 6.0, 0.6, 500))
    call_type = weighted_index([w for _, w in CALL_TYPES], uniform(seed, f"{tag}:type", records.keys))
    roaming = uniform(seed, f"{tag}:roaming", records.keys) < ROAMING_RATE
    columns = {
        "call_id": fixed_width_text(hex_chars(random_bits(seed, f"{tag}:id", records.keys), 16)),
        "account_id": subscribers.column("account_id").take(records.parent),
        "caller_msisdn": subscribers.column("msisdn").take(records.parent),
        "callee_msisdn": callees(seed, tag, records),
        "start_time": event_time(day, seed, tag, records.keys),
        "duration_s": durations(seed, tag, records, call_type),
        "call_type": lookup([t for t, _ in CALL_TYPES], call_type),
        "cell_id": cells(seed, tag, records, subscribers.column("region"), roaming),
        "roaming": lookup(["false", "true"], roaming.astype(np.int64)),
    }
    return landing_table(CALL_RECORDS, columns)


def callees(seed: int, tag: str, records: Records) -> pa.Array:
    """The other party: mostly a mobile line, some landlines, as prefix + 8 digits."""
    kind_u = uniform(seed, f"{tag}:callee_kind", records.keys)
    prefix = weighted_index([w for _, w in CALLEE_PREFIXES], kind_u)
    line = zero_padded(random_below(10**8, seed, f"{tag}:callee", records.keys), 8)
    return pc.binary_join_element_wise(lookup([p for p, _ in CALLEE_PREFIXES], prefix), line, "")


def durations(seed: int, tag: str, records: Records, call_type: np.ndarray) -> pa.Array:
    """Seconds, lognormal by call type, at most a day."""
    median = np.array([DURATIONS[t][0] for t, _ in CALL_TYPES])[call_type]
    sigma = np.array([DURATIONS[t][1] for t, _ in CALL_TYPES])[call_type]
    seconds = median * np.exp(sigma * normal(seed, f"{tag}:duration", records.keys))
    return pc.cast(pa.array(np.minimum(np.floor(seconds), 86_400).astype(np.int64)), pa.string())


def cells(seed: int, tag: str, records: Records, region: pa.ChunkedArray, roaming: np.ndarray) -> pa.Array:
    """'C' + region number (home, or another when away) + cell; null when roaming abroad."""
    home = pc.index_in(region, value_set=pa.array(REGIONS)).to_numpy(zero_copy_only=False)[records.parent] + 1
    away = uniform(seed, f"{tag}:away", records.keys) < 0.08
    visited = 1 + uniform_index(len(REGIONS), uniform(seed, f"{tag}:visit", records.keys))
    cell = uniform_index(CELLS_PER_REGION, uniform(seed, f"{tag}:cell", records.keys))
    cell_id = zero_padded(np.where(away, visited, home) * 1000 + cell, 5, prefix="C")
    return pc.if_else(pa.array(roaming), NULL_TEXT, cell_id)
