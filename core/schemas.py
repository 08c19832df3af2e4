"""Canonical schemas of the five sources: column types and validity rules.

Landing files arrive as text (every column a string, as operators' exports
do); ingest types them against these specs and quarantines what does not
parse or is out of range. The same specs build the Great Expectations raw
suites, so the two cannot drift apart. What the protect stage does with each
column is the privacy policy's decision (config/policy.yaml).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class ValuePattern:
    """The form every value of a string column must have: a regular expression matched whole.

    Java regex syntax (Spark's rlike); `name` makes the quarantine reason `bad_<name>:<column>`.
    """

    name: str
    regex: str

    @property
    def anchored(self) -> str:
        # \z, not $: "$" would let a value with a final line break by, a second spelling
        # of the same address (and so a second pseudonymous subscriber).
        return rf"^(?:{self.regex})\z"


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"  # 0-255, no leading zero
IPV4_TEXT = rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}"
_HEXTET = "[0-9A-Fa-f]{1,4}"


def _ipv6_text() -> str:
    """RFC 4291 text forms: eight hextets, or at most seven around one "::".

    No zone id ("%eth0"), no prefix length ("/64"): those are not one host's
    address. No dotted IPv4 tail ("::ffff:192.0.2.1") either: protect cuts an
    IPv6 network on hextets (transforms.protect), so every address let in
    here has a network there.
    """
    h = _HEXTET
    forms = [rf"(?:{h}:){{7}}{h}"]
    for left in range(8):  # hextets written before the "::"
        before = "" if left == 0 else rf"{h}(?::{h}){{{left - 1}}}"
        after = rf"(?:(?:{h}:){{0,{6 - left}}}{h})?" if left <= 6 else ""
        forms.append(f"{before}::{after}")
    return "|".join(forms)


IPV6_TEXT = _ipv6_text()
IP_ADDRESS = ValuePattern("ip_address", f"{IPV4_TEXT}|{IPV6_TEXT}")
# The generator's cell ids: C, the two-digit region number, a three-digit cell number. The
# reports' cell_area is the first four characters, so anything else would publish free text.
CELL_ID = ValuePattern("cell_id", "C[0-9]{5}")


@dataclass(frozen=True)
class FieldSpec:
    """One canonical column: its Spark type and validity rules."""

    name: str
    dtype: str  # Spark SQL type name: string, int, bigint, double, date, timestamp, boolean
    required: bool = False
    min_value: float | None = None
    max_value: float | None = None
    allowed: tuple[str, ...] | None = None
    pattern: ValuePattern | None = None  # string columns only


@dataclass(frozen=True)
class TimeRange:
    """Event times a run accepts as plausible: `start` <= t < `end` (both time-zone aware)."""

    start: dt.datetime
    end: dt.datetime

    def __post_init__(self) -> None:
        if self.start >= self.end:
            raise ValueError(f"time range is empty: {self.start} is not before {self.end}")


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

    @property
    def is_daily(self) -> bool:
        return self.event_time is not None


MAX_BYTES = 1e12  # one flow or page over a terabyte is a corrupt counter
MAX_DURATION_S = 86_400.0

SUBSCRIBERS = SourceSpec(
    name="subscribers",
    fields=(
        FieldSpec("account_id", "string", required=True),
        FieldSpec("name", "string"),
        FieldSpec("email", "string"),
        FieldSpec("msisdn", "string"),
        FieldSpec("birth_date", "date"),
        FieldSpec("gender", "string", allowed=("female", "male", "other")),
        FieldSpec("region", "string"),
        FieldSpec("postcode", "string"),
        FieldSpec("plan", "string", required=True),
        FieldSpec("addons", "string"),
        FieldSpec("contract", "string"),
        FieldSpec("payment_method", "string"),
        FieldSpec("card_number", "string"),  # payment information: forbidden
        FieldSpec("password_hash", "string"),  # account credentials: forbidden
        FieldSpec("monthly_charges", "double", min_value=0.0, max_value=10_000.0),
        FieldSpec("signup_date", "date"),
    ),
)

DEVICES = SourceSpec(
    name="devices",
    fields=(
        FieldSpec("account_id", "string", required=True),
        FieldSpec("imei", "string", required=True),
        FieldSpec("imsi", "string"),
        FieldSpec("mac", "string"),
        FieldSpec("brand", "string"),
        FieldSpec("model", "string"),
        FieldSpec("os", "string"),
        FieldSpec("first_seen", "date"),
    ),
)

CALL_RECORDS = SourceSpec(
    name="call_records",
    event_time="start_time",
    fields=(
        FieldSpec("call_id", "string"),
        FieldSpec("account_id", "string", required=True),
        FieldSpec("caller_msisdn", "string"),
        FieldSpec("callee_msisdn", "string"),
        FieldSpec("start_time", "timestamp", required=True),
        FieldSpec("duration_s", "int", required=True, min_value=0, max_value=MAX_DURATION_S),
        FieldSpec("call_type", "string", required=True, allowed=("voice", "sms", "data")),
        FieldSpec("cell_id", "string", pattern=CELL_ID),
        FieldSpec("roaming", "boolean"),
    ),
)

NETWORK_FLOWS = SourceSpec(
    name="network_flows",
    event_time="start_time",
    fields=(
        FieldSpec("account_id", "string", required=True),
        FieldSpec("src_ip", "string", pattern=IP_ADDRESS),
        FieldSpec("dst_ip", "string", pattern=IP_ADDRESS),
        FieldSpec("src_port", "int", min_value=0, max_value=65_535),
        FieldSpec("dst_port", "int", min_value=0, max_value=65_535),
        FieldSpec("protocol", "string", required=True, allowed=("tcp", "udp", "icmp")),
        FieldSpec("bytes", "bigint", required=True, min_value=0, max_value=MAX_BYTES),
        FieldSpec("packets", "bigint", min_value=0, max_value=MAX_BYTES),
        FieldSpec("start_time", "timestamp", required=True),
        FieldSpec("duration_s", "double", min_value=0.0, max_value=MAX_DURATION_S),
    ),
)

WEB_VISITS = SourceSpec(
    name="web_visits",
    event_time="visit_time",
    fields=(
        FieldSpec("account_id", "string", required=True),
        FieldSpec("client_ip", "string", pattern=IP_ADDRESS),
        FieldSpec("domain", "string", required=True),
        FieldSpec("url", "string"),  # paths and queries can carry identifiers
        FieldSpec("visit_time", "timestamp", required=True),
        FieldSpec("bytes", "bigint", min_value=0, max_value=MAX_BYTES),
        FieldSpec("user_agent", "string"),
    ),
)

SOURCES: dict[str, SourceSpec] = {
    s.name: s for s in (SUBSCRIBERS, DEVICES, CALL_RECORDS, NETWORK_FLOWS, WEB_VISITS)
}


# Letters, digits, "_" and "."; never a run of 3+ digits (ids, numbers, addresses).
SAFE_COLUMN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,63}")


def describe_column_names(names: list[str]) -> str:
    """Column names for an error message, without echoing data.

    A file without its header line turns its first row into column names, so
    a name that does not look like an identifier of a schema is counted, not shown.
    """
    shown = [n for n in names if SAFE_COLUMN_NAME.fullmatch(n) and not re.search(r"[0-9]{3}", n)]
    hidden = len(names) - len(shown)
    parts = shown + ([f"{hidden} more not shown (they look like data, not names)"] if hidden else [])
    return ", ".join(parts)
