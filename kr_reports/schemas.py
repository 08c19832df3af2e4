"""Canonical schemas of the five sources, and how each column is treated.

Landing files arrive as text (every column a string, as operators' exports
do); ingest types them against these specs and quarantines what does not
parse or is out of range. The same specs build the Great Expectations raw
suites and drive the protect stage, so the three cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Treatment(StrEnum):
    """What the protect stage does with a column."""

    DROP = "drop"  # direct identifiers and forbidden categories: never leave
    PSEUDONYMIZE = "pseudonymize"  # keyed HMAC-SHA256
    TRUNCATE_IP = "truncate_ip"  # IPv4 -> /24, IPv6 -> /48
    COARSEN_HOUR = "coarsen_hour"  # timestamp -> start of its hour
    AGE_BAND = "age_band"  # birth date -> ten-year band
    IMEI_TO_TAC = "imei_to_tac"  # IMEI -> type allocation code (device model)
    KEEP = "keep"


@dataclass(frozen=True)
class FieldSpec:
    """One canonical column: its Spark type, validity rules and treatment."""

    name: str
    dtype: str  # Spark SQL type name: string, int, bigint, double, date, timestamp, boolean
    treatment: Treatment
    required: bool = False
    min_value: float | None = None
    max_value: float | None = None
    allowed: tuple[str, ...] | None = None
    protected_name: str | None = None  # output name after protect, when it changes


@dataclass(frozen=True)
class SourceSpec:
    """A source dataset: its columns, privacy-unit column and event-time column."""

    name: str
    fields: tuple[FieldSpec, ...]
    subscriber_column: str = "account_id"
    event_time: str | None = None  # rows must fall inside the run's day

    @property
    def column_names(self) -> list[str]:
        return [f.name for f in self.fields]

    def field(self, name: str) -> FieldSpec:
        return next(f for f in self.fields if f.name == name)

    @property
    def is_daily(self) -> bool:
        return self.event_time is not None


T = Treatment
MAX_BYTES = 1e12  # one flow or page over a terabyte is a corrupt counter
MAX_DURATION_S = 86_400.0

SUBSCRIBERS = SourceSpec(
    name="subscribers",
    fields=(
        FieldSpec("account_id", "string", T.PSEUDONYMIZE, required=True, protected_name="subscriber"),
        FieldSpec("name", "string", T.DROP),
        FieldSpec("email", "string", T.DROP),
        FieldSpec("msisdn", "string", T.DROP),
        FieldSpec("birth_date", "date", T.AGE_BAND, protected_name="age_band"),
        FieldSpec("gender", "string", T.KEEP, allowed=("female", "male", "other")),
        FieldSpec("region", "string", T.KEEP, required=True),
        FieldSpec("postcode", "string", T.DROP),
        FieldSpec("plan", "string", T.KEEP, required=True),
        FieldSpec("addons", "string", T.KEEP),
        FieldSpec("contract", "string", T.KEEP),
        FieldSpec("payment_method", "string", T.KEEP),
        FieldSpec("card_number", "string", T.DROP),  # payment information: forbidden
        FieldSpec("password_hash", "string", T.DROP),  # account credentials: forbidden
        FieldSpec("monthly_charges", "double", T.KEEP, min_value=0.0, max_value=10_000.0),
        FieldSpec("signup_date", "date", T.KEEP),
    ),
)

DEVICES = SourceSpec(
    name="devices",
    fields=(
        FieldSpec("account_id", "string", T.PSEUDONYMIZE, required=True, protected_name="subscriber"),
        FieldSpec("imei", "string", T.IMEI_TO_TAC, required=True, protected_name="tac"),
        FieldSpec("imsi", "string", T.DROP),
        FieldSpec("mac", "string", T.DROP),
        FieldSpec("brand", "string", T.KEEP),
        FieldSpec("model", "string", T.KEEP),
        FieldSpec("os", "string", T.KEEP),
        FieldSpec("first_seen", "date", T.KEEP),
    ),
)

CALL_RECORDS = SourceSpec(
    name="call_records",
    event_time="start_time",
    fields=(
        FieldSpec("call_id", "string", T.DROP),
        FieldSpec("account_id", "string", T.PSEUDONYMIZE, required=True, protected_name="subscriber"),
        FieldSpec("caller_msisdn", "string", T.DROP),
        FieldSpec("callee_msisdn", "string", T.DROP),
        FieldSpec("start_time", "timestamp", T.COARSEN_HOUR, required=True, protected_name="start_hour"),
        FieldSpec("duration_s", "int", T.KEEP, required=True, min_value=0, max_value=MAX_DURATION_S),
        FieldSpec("call_type", "string", T.KEEP, required=True, allowed=("voice", "sms", "data")),
        FieldSpec("cell_id", "string", T.KEEP),
        FieldSpec("roaming", "boolean", T.KEEP),
    ),
)

NETWORK_FLOWS = SourceSpec(
    name="network_flows",
    event_time="start_time",
    fields=(
        FieldSpec("account_id", "string", T.PSEUDONYMIZE, required=True, protected_name="subscriber"),
        FieldSpec("src_ip", "string", T.TRUNCATE_IP, protected_name="src_net"),
        FieldSpec("dst_ip", "string", T.TRUNCATE_IP, protected_name="dst_net"),
        FieldSpec("src_port", "int", T.KEEP, min_value=0, max_value=65_535),
        FieldSpec("dst_port", "int", T.KEEP, min_value=0, max_value=65_535),
        FieldSpec("protocol", "string", T.KEEP, required=True, allowed=("tcp", "udp", "icmp")),
        FieldSpec("bytes", "bigint", T.KEEP, required=True, min_value=0, max_value=MAX_BYTES),
        FieldSpec("packets", "bigint", T.KEEP, min_value=0, max_value=MAX_BYTES),
        FieldSpec("start_time", "timestamp", T.COARSEN_HOUR, required=True, protected_name="start_hour"),
        FieldSpec("duration_s", "double", T.KEEP, min_value=0.0, max_value=MAX_DURATION_S),
    ),
)

WEB_VISITS = SourceSpec(
    name="web_visits",
    event_time="visit_time",
    fields=(
        FieldSpec("account_id", "string", T.PSEUDONYMIZE, required=True, protected_name="subscriber"),
        FieldSpec("client_ip", "string", T.TRUNCATE_IP, protected_name="client_net"),
        FieldSpec("domain", "string", T.KEEP, required=True),
        FieldSpec("url", "string", T.DROP),  # paths and queries can carry identifiers
        FieldSpec("visit_time", "timestamp", T.COARSEN_HOUR, required=True, protected_name="visit_hour"),
        FieldSpec("bytes", "bigint", T.KEEP, min_value=0, max_value=MAX_BYTES),
        FieldSpec("user_agent", "string", T.DROP),
    ),
)

SOURCES: dict[str, SourceSpec] = {
    s.name: s for s in (SUBSCRIBERS, DEVICES, CALL_RECORDS, NETWORK_FLOWS, WEB_VISITS)
}


def protected_columns(source: SourceSpec) -> list[str]:
    """Column names of the protected dataset, in canonical order."""
    return [
        f.protected_name or f.name for f in source.fields if f.treatment is not Treatment.DROP
    ]
