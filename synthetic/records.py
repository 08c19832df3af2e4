"""Subscriber-level helpers shared by the sources: keys, records per subscriber, addresses."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.schemas import SourceSpec
from synthetic.draws import child_keys, keys_of, random_bits, uniform, uniform_index, weighted_index
from synthetic.model import HOURLY_WEIGHTS, IPV6_SHARE
from synthetic.text import hex_numbers, small_numbers, time_text


def account_numbers(subscribers: pa.Table) -> np.ndarray:
    """The number inside each account id ('KR00000042' -> 42)."""
    digits = pc.utf8_slice_codeunits(subscribers.column("account_id"), 2)
    return pc.cast(digits, pa.int64()).to_numpy()


def subscriber_keys(subscribers: pa.Table) -> np.ndarray:
    """Each subscriber's hash key, the input of every per-subscriber draw."""
    return keys_of(account_numbers(subscribers))


@dataclass(frozen=True)
class Records:
    """Rows of a child source: the parent (subscriber) row of each, its number 1.. and key."""

    parent: np.ndarray  # row of the subscribers table, int64
    seq: np.ndarray  # 1..count within the subscriber
    keys: np.ndarray  # uint64: a function of the subscriber's key and seq

    def __len__(self) -> int:
        return len(self.parent)


def records_per_subscriber(keys: np.ndarray, counts: np.ndarray) -> Records:
    """`counts[i]` records for subscriber i, in subscriber order."""
    parent = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    starts = np.cumsum(counts) - counts
    seq = np.arange(len(parent), dtype=np.int64) - np.repeat(starts, counts) + 1
    return Records(parent=parent, seq=seq, keys=child_keys(keys[parent], seq))


def subscriber_ip(seed: int, numbers: np.ndarray, keys: np.ndarray) -> tuple[pa.Array, np.ndarray]:
    """Each subscriber's address, a unique 10.0.0.0/8 IPv4 or for some a 2001:db8::/32 IPv6;
    and whether it is IPv6."""
    # odd multiplier: a bijection of the 24-bit host numbers, so addresses are unique
    host = (numbers * 2_654_435 + seed % 2**24) % 2**24
    octets = small_numbers(256)
    ipv4 = pc.binary_join_element_wise(
        "10", octets.take(host >> 16), octets.take((host >> 8) % 256), octets.take(host % 256), ".")
    interface = 1 + (random_bits(seed, "ipv6:host", keys) % np.uint64(65535)).astype(np.int64)
    hextets = hex_numbers(65536)
    ipv6 = pc.binary_join_element_wise(
        "2001:db8", hextets.take(0x100 + (host >> 16)), hextets.take(host % 65536), "",
        hextets.take(interface), ":")
    is_ipv6 = uniform(seed, "ipv6", keys) < IPV6_SHARE
    return pc.if_else(pa.array(is_ipv6), ipv6, ipv4), is_ipv6


def event_seconds(seed: int, tag: str, keys: np.ndarray) -> np.ndarray:
    """Seconds of the day (0..86399), the hour drawn from the diurnal profile."""
    hour = weighted_index(HOURLY_WEIGHTS, uniform(seed, f"{tag}:hour", keys))
    return hour * 3600 + uniform_index(3600, uniform(seed, f"{tag}:second", keys))


def event_time(day: dt.date, seed: int, tag: str, keys: np.ndarray) -> pa.Array:
    """'yyyy-MM-dd HH:mm:ss' inside `day`, the hour drawn from the diurnal profile."""
    return time_text(day, event_seconds(seed, tag, keys))


def landing_table(source: SourceSpec, columns: dict[str, pa.Array]) -> pa.Table:
    """The canonical landing columns of `source`, in order, all strings."""
    names = source.column_names
    arrays = [columns[name] for name in names]
    if any(a.type != pa.string() for a in arrays):
        raise TypeError(f"{source.name}: every landing column must be a string")
    return pa.table(arrays, names=names)
