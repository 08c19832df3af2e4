"""Synthetic devices: 1-4 per subscriber, with model, IMEI, IMSI and MAC."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.schemas import DEVICES
from synthetic.draws import luhn_check_digit, random_below, random_bits, uniform, weighted_index
from synthetic.model import DEVICE_MODELS, DEVICES_PER_SUBSCRIBER, REFERENCE_DATE
from synthetic.records import Records, landing_table, records_per_subscriber, subscriber_keys
from synthetic.text import date_text, fixed_width_text, hex_chars, literal_chars, lookup, zero_padded


def generate_devices(subscribers: pa.Table, seed: int) -> pa.Table:
    """1-4 devices per subscriber (mostly 1) with IMEI, IMSI, MAC and model."""
    keys = subscriber_keys(subscribers)
    n_devices = 1 + weighted_index(DEVICES_PER_SUBSCRIBER, uniform(seed, "devices", keys))
    records = records_per_subscriber(keys, n_devices)
    model = weighted_index([m[4] for m in DEVICE_MODELS], uniform(seed, "device:model", records.keys))
    signup = subscribers.column("signup_date").take(records.parent)
    columns = {
        "account_id": subscribers.column("account_id").take(records.parent),
        "brand": lookup([m[0] for m in DEVICE_MODELS], model),
        "model": lookup([m[1] for m in DEVICE_MODELS], model),
        "os": lookup([m[2] for m in DEVICE_MODELS], model),
        "first_seen": first_seen(seed, records, signup),
        **device_identifiers(seed, records, model),
    }
    return landing_table(DEVICES, columns)


def first_seen(seed: int, records: Records, signup: pa.ChunkedArray) -> pa.Array:
    """The first device is seen at signup, later ones on a day between signup and REFERENCE_DATE."""
    signup_day = pc.cast(signup, pa.date32()).to_numpy().astype("datetime64[D]")
    span = np.maximum((np.datetime64(REFERENCE_DATE, "D") - signup_day).astype(np.int64), 1)
    later = (uniform(seed, "device:first_seen", records.keys) * span).astype(np.int64)
    return date_text(np.where(records.seq == 1, signup_day, signup_day + later))


def device_identifiers(seed: int, records: Records, model: np.ndarray) -> dict[str, pa.Array]:
    """imei (TAC + 6-digit serial + Luhn digit), imsi (45005 + 10 digits) and mac."""
    tac = np.array([int(m[3]) for m in DEVICE_MODELS])[model]
    imei_body = tac * 10**6 + random_below(10**6, seed, "device:serial", records.keys)
    imsi = 45005 * 10**10 + random_below(10**10, seed, "device:imsi", records.keys)
    mac = hex_chars(random_bits(seed, "device:mac", records.keys), 12)
    colon = literal_chars(":", len(records))
    pairs = [mac[:, 2 * i:2 * i + 2] for i in range(6)]
    mac_text = np.hstack([pairs[0]] + [part for pair in pairs[1:] for part in (colon, pair)])
    return {
        "imei": zero_padded(imei_body * 10 + luhn_check_digit(imei_body, 14), 15),
        "imsi": zero_padded(imsi, 15),
        "mac": fixed_width_text(mac_text),
    }
