"""Synthetic network flows: a day of flows per subscriber, heavy-tailed bytes, skewed servers."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from core.schemas import NETWORK_FLOWS
from synthetic.draws import (
    RECORD_KEY,
    daily_count,
    decimal_text,
    event_time,
    lognormal,
    normal,
    pick,
    pick_weighted,
    random_bits,
    uniform,
    uniform_index,
)
from synthetic.model import PROTOCOLS, PUBLIC_FIRST_OCTETS, SERVER_POOL, TCP_PORTS, UDP_PORTS
from synthetic.records import (
    select_landing,
    subscriber_ip,
    with_records_per_subscriber,
    with_subscriber_key,
)


def generate_network_flows(
    subscribers: DataFrame, day: dt.date, seed: int, flows_per_subscriber: float = 20.0
) -> DataFrame:
    """A day of flows: ~flows_per_subscriber per subscriber on average, heavy-tailed bytes."""
    tag = f"flows:{day.isoformat()}"
    count = daily_count(seed, tag, flows_per_subscriber, 0.6, int(100 * flows_per_subscriber) + 10)
    return (
        subscribers.transform(with_subscriber_key)
        .withColumn("src_ip", subscriber_ip(seed))
        .transform(with_records_per_subscriber, count, ["src_ip"])
        .transform(with_flow_draws, seed, tag)
        .transform(with_flow_endpoints)
        .transform(with_flow_volume, day, seed, tag)
        .transform(select_landing, NETWORK_FLOWS)
    )


def with_flow_draws(df: DataFrame, seed: int, tag: str) -> DataFrame:
    """Add the draws used more than once: protocol, port uniform, server and bytes normal."""
    keys = (F.col(RECORD_KEY),)
    # cubing the uniform concentrates traffic on the first servers of the pool
    server = F.floor(uniform(seed, f"{tag}:server", *keys) ** 3 * F.lit(SERVER_POOL))
    return df.withColumns(
        {
            "protocol": pick_weighted(PROTOCOLS, uniform(seed, f"{tag}:protocol", *keys)),
            "port_u": uniform(seed, f"{tag}:dst_port", *keys),
            "src_port_draw": F.lit(32_768)
            + uniform_index(28_232, uniform(seed, f"{tag}:src_port", *keys)),
            "server_hash": random_bits(seed, "server", server),
            "z_bytes": normal(seed, f"{tag}:bytes", *keys),
        }
    )


def with_flow_endpoints(df: DataFrame) -> DataFrame:
    """Add dst_ip (a skewed pool of public servers), src_port and dst_port (null for icmp)."""
    protocol, port_u = F.col("protocol"), F.col("port_u")
    dst_port = (
        F.when(protocol == "tcp", pick_weighted(TCP_PORTS, port_u))
        .when(protocol == "udp", pick_weighted(UDP_PORTS, port_u))
    )
    return df.withColumns(
        {
            "dst_ip": server_ip(F.col("server_hash"), F.col("src_ip").contains(":")),
            "src_port": F.when(protocol != "icmp", F.col("src_port_draw")),
            "dst_port": dst_port,
        }
    )


def server_ip(server_hash: Column, ipv6: Column) -> Column:
    """Public-looking address of a server (by its hash): IPv4, or IPv6 for IPv6 clients."""
    first = pick(PUBLIC_FIRST_OCTETS, F.pmod(server_hash, F.lit(len(PUBLIC_FIRST_OCTETS))))
    ipv4 = F.concat_ws(
        ".",
        first.cast("string"),
        F.pmod(F.shiftright(server_hash, 8), F.lit(256)).cast("string"),
        F.pmod(F.shiftright(server_hash, 16), F.lit(256)).cast("string"),
        (F.pmod(F.shiftright(server_hash, 24), F.lit(254)) + F.lit(1)).cast("string"),
    )
    ipv6_text = F.concat(
        F.lit("2001:db8:f"),
        F.lpad(F.lower(F.hex(F.pmod(F.shiftright(server_hash, 32), F.lit(4096)))), 3, "0"),
        F.lit("::"),
        F.lower(F.hex(F.pmod(F.shiftright(server_hash, 44), F.lit(65535)) + F.lit(1))),
    )
    return F.when(ipv6, ipv6_text).otherwise(ipv4)


def with_flow_volume(df: DataFrame, day: dt.date, seed: int, tag: str) -> DataFrame:
    """Add bytes (lognormal, median ~24 KB), packets, start_time and duration_s."""
    keys = (F.col(RECORD_KEY),)
    z_bytes = F.col("z_bytes")
    payload = F.least(lognormal(24_000.0, 1.8, z_bytes), F.lit(5e10))
    ping = F.lit(64) * (F.lit(1) + uniform_index(20, uniform(seed, f"{tag}:ping", *keys)))
    is_icmp = F.col("protocol") == "icmp"
    packet_size = F.lit(700.0) + F.lit(200.0) * uniform(seed, f"{tag}:packet", *keys)
    # longer flows carry more bytes: the duration shares part of the bytes draw
    z_duration = F.lit(0.6) * z_bytes + F.lit(0.8) * normal(seed, f"{tag}:duration", *keys)
    duration = F.least(lognormal(1.5, 2.0, z_duration), F.lit(86_400.0))
    return df.withColumn(
        "bytes", F.when(is_icmp, ping).otherwise(F.floor(payload)).cast("long")
    ).withColumns(
        {
            "packets": (F.floor(F.col("bytes") / packet_size) + F.lit(1)).cast("long"),
            "start_time": event_time(day, seed, tag, *keys),
            "duration_s": decimal_text(duration, 3),
        }
    )

