"""Synthetic network flows: a day of flows per subscriber, heavy-tailed bytes, skewed servers."""

from __future__ import annotations

import datetime as dt
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.schemas import NETWORK_FLOWS
from synthetic.draws import (
    daily_count,
    keys_of,
    lognormal,
    normal,
    random_bits,
    uniform,
    uniform_index,
    weighted_index,
)
from synthetic.model import PROTOCOLS, PUBLIC_FIRST_OCTETS, SERVER_POOL, TCP_PORTS, UDP_PORTS
from synthetic.records import (
    Records,
    account_numbers,
    event_time,
    landing_table,
    records_per_subscriber,
    subscriber_ip,
    subscriber_keys,
)
from synthetic.text import (
    decimal_text,
    fixed_width_text,
    hex_chars,
    hex_numbers,
    lookup,
    plain_number,
    small_numbers,
)

_TCP, _UDP, _ICMP = (p for p, _ in PROTOCOLS)


def generate_network_flows(
    subscribers: pa.Table, day: dt.date, seed: int, flows_per_subscriber: float = 20.0
) -> pa.Table:
    """A day of flows: ~flows_per_subscriber per subscriber on average, heavy-tailed bytes."""
    tag = f"flows:{day.isoformat()}"
    keys = subscriber_keys(subscribers)
    cap = int(100 * flows_per_subscriber) + 10
    records = records_per_subscriber(keys, daily_count(seed, tag, keys, flows_per_subscriber, 0.6, cap))
    src_ip, is_ipv6 = subscriber_ip(seed, account_numbers(subscribers), keys)
    protocol = weighted_index([w for _, w in PROTOCOLS], uniform(seed, f"{tag}:protocol", records.keys))
    columns = {
        "account_id": subscribers.column("account_id").take(records.parent),
        "src_ip": src_ip.take(records.parent),
        "protocol": lookup([p for p, _ in PROTOCOLS], protocol),
        "start_time": event_time(day, seed, tag, records.keys),
        **endpoints(seed, tag, records, protocol, is_ipv6[records.parent]),
        **volume(seed, tag, records, protocol),
    }
    return landing_table(NETWORK_FLOWS, columns)


def endpoints(
    seed: int, tag: str, records: Records, protocol: np.ndarray, ipv6: np.ndarray
) -> dict[str, pa.Array]:
    """dst_ip (a skewed pool of public servers), src_port and dst_port (null for icmp)."""
    keys = records.keys
    # cubing the uniform concentrates traffic on the first servers of the pool
    server = (uniform(seed, f"{tag}:server", keys) ** 3 * SERVER_POOL).astype(np.int64)
    port_u = uniform(seed, f"{tag}:dst_port", keys)
    tcp_port = np.array([p for p, _ in TCP_PORTS])[weighted_index([w for _, w in TCP_PORTS], port_u)]
    udp_port = np.array([p for p, _ in UDP_PORTS])[weighted_index([w for _, w in UDP_PORTS], port_u)]
    is_icmp = protocol == [p for p, _ in PROTOCOLS].index(_ICMP)
    is_tcp = protocol == [p for p, _ in PROTOCOLS].index(_TCP)
    src_port = 32_768 + uniform_index(28_232, uniform(seed, f"{tag}:src_port", keys))
    ports = small_numbers(65_536)
    return {
        "dst_ip": server_addresses(seed).take(server + SERVER_POOL * ipv6),
        "src_port": ports.take(pa.array(src_port, mask=is_icmp)),
        "dst_port": ports.take(pa.array(np.where(is_tcp, tcp_port, udp_port), mask=is_icmp)),
    }


@cache
def server_addresses(seed: int) -> pa.Array:
    """Public-looking addresses of the pool's servers: IPv4 ones, then the IPv6 ones (for IPv6 clients)."""
    server_hash = random_bits(seed, "server", keys_of(np.arange(SERVER_POOL)))
    octets = small_numbers(256)

    def field(shift: int, modulo: int) -> np.ndarray:
        return ((server_hash >> np.uint64(shift)) % np.uint64(modulo)).astype(np.int64)

    first = np.array(PUBLIC_FIRST_OCTETS)[field(0, len(PUBLIC_FIRST_OCTETS))]
    ipv4 = pc.binary_join_element_wise(
        octets.take(first), octets.take(field(8, 256)), octets.take(field(16, 256)),
        octets.take(1 + field(24, 254)), ".")
    subnet = fixed_width_text(hex_chars(field(32, 4096), 3))
    host = hex_numbers(65536).take(1 + field(44, 65535))
    ipv6 = pc.binary_join_element_wise("2001:db8:f", subnet, "::", host, "")
    return pa.concat_arrays([ipv4, ipv6])


def volume(seed: int, tag: str, records: Records, protocol: np.ndarray) -> dict[str, pa.Array]:
    """bytes (lognormal, median ~24 KB; pings for icmp), packets and duration_s."""
    keys = records.keys
    z_bytes = normal(seed, f"{tag}:bytes", keys)
    payload = np.floor(np.minimum(lognormal(24_000.0, 1.8, z_bytes), 5e10))
    ping = 64 * (1 + uniform_index(20, uniform(seed, f"{tag}:ping", keys)))
    is_icmp = protocol == [p for p, _ in PROTOCOLS].index(_ICMP)
    n_bytes = np.where(is_icmp, ping, payload).astype(np.int64)
    packet_size = 700.0 + 200.0 * uniform(seed, f"{tag}:packet", keys)
    # longer flows carry more bytes: the duration shares part of the bytes draw
    z_duration = 0.6 * z_bytes + 0.8 * normal(seed, f"{tag}:duration", keys)
    duration = np.minimum(lognormal(1.5, 2.0, z_duration), 86_400.0)
    return {
        "bytes": plain_number(n_bytes),
        "packets": plain_number(np.floor(n_bytes / packet_size).astype(np.int64) + 1),
        "duration_s": decimal_text(duration, 3),
    }
