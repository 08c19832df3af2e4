"""Real operator formats mapped onto the canonical landing text schemas.

Operators do not export the canonical files; they have Zeek logs, Argus flow
CSV, web server logs and CRM exports. Each function here takes the raw lines of
such a file and returns a `FormatResult`:

- `mapped`: exactly `SOURCES[target].column_names`, in order, all strings, in
  the landing conventions (timestamps 'yyyy-MM-dd HH:mm:ss' UTC), ready for
  `transforms.ingest`, which types the text and quarantines bad values;
- `rejected`: lines whose *structure* is broken (wrong field count, a line
  that does not parse, a truncated last line, a timestamp in no readable
  form), with columns `REJECTED_COLUMNS`: file, line_number, a
  machine-readable reason ('malformed:<what>') and the raw line as record.

Value problems (a port of 70000, negative bytes, 'abc' for a duration, an
unknown protocol) are not judged here: the text is passed on as it is, so
ingest quarantines the row with its own reason and the rules live in one
place (`core.schemas`).

Input of the text formats ("lines"): one row per line of the file, columns
`value` (the line without its terminator) and `line_number` (1-based), plus
optionally `file` (lines of several files; headers are matched per file) and
`truncated` (true for a last line that had no line terminator). The flows
layer builds it (`stages.formats.read_format`) with `number_lines`.

Everything is native Spark (regular expressions, higher-order functions,
small broadcast joins of per-file headers): no Python UDFs, no RDDs, nothing
collected.

The project's own landing files ('canonical'): `map_canonical_csv` and
`map_canonical_json` parse lines with Spark's `from_csv` / `from_json` (a
record that does not parse is 'malformed:record'); `map_canonical` casts a
Spark-read Parquet dataset to text.

`FORMATS` says, for every format, its target source and what becomes of each
of its input fields: the canonical column(s) it feeds, or why it is not
carried, so a run summary can list the columns it dropped.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from core.schemas import SOURCES, SourceSpec
from transforms.ingest import check_landing_columns

LANDING_TIMESTAMP_FORMAT = "yyyy-MM-dd HH:mm:ss"  # transforms.ingest.TIMESTAMP_FORMAT
REJECTED_COLUMNS = ("file", "line_number", "reason", "record")
REJECTED_SCHEMA = "file string, line_number bigint, reason string, record string"
DEFAULT_SITE_DOMAIN = "unknown.invalid"
CORRUPT_RECORD_COLUMN = "_corrupt_record"  # from_csv / from_json, PERMISSIVE mode

# Zeek's defaults for '#unset_field' and '#empty_field'; both mean "no value".
ZEEK_UNSET = "-"
ZEEK_EMPTY = "(empty)"
ZEEK_SEPARATOR = "\t"

# Web server combined log format (and the common log format, without the last
# two fields): host ident authuser [time] "request" status size "referer" "agent".
# Quoted fields may contain backslash-escaped quotes. Valid in Java and Python 3.11+
# (possessive quantifiers: no backtracking inside long user agents).
_QUOTED = r'"([^"\\]*+(?:\\.[^"\\]*+)*+)"'
COMBINED_LOG_PATTERN = (
    r"^(\S+) (\S+) (\S+) \[([^\]]+)\] " + _QUOTED + r" (\S+) (\S+)"
    r"(?: " + _QUOTED + " " + _QUOTED + r")?\s*$"
)
# '10/Oct/2000:13:55:36 -0700'
_CLF_TIME_PATTERN = r"^(\d{2})/([A-Za-z]{3})/(\d{4}):(\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})$"
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MAX_OFFSET_HOURS = 18  # java.time.ZoneOffset's limit
# Argus 'yyyy/MM/dd HH:mm:ss[.ffffff]' (ra's default), also with '-' between date parts.
_ARGUS_TIME_PATTERN = r"^(\d{4})[/-](\d{1,2})[/-](\d{1,2}) (\d{1,2}):(\d{2}):(\d{2}(?:\.\d{1,6})?)$"
_HEX_PORT_PATTERN = r"^0[xX][0-9A-Fa-f]{1,8}$"
_LAST_EPOCH_SECOND = 253_402_300_799  # 9999-12-31 23:59:59 UTC
_SECONDS_PER_DAY = 86_400
_UTC_OFFSET_PATTERN = re.compile(r"^[+-]\d{2}:\d{2}$")


class FormatResult(NamedTuple):
    """Canonical landing text and the lines that could not be read as records."""

    mapped: DataFrame
    rejected: DataFrame


# --- the registry --------------------------------------------------------------


@dataclass(frozen=True)
class InputField:
    """One field of an input format: the canonical column(s) it feeds, or why it is not carried."""

    name: str
    feeds: tuple[str, ...] = ()
    reason: str | None = None
    optional: bool = False  # a fallback source: files without it are still accepted

    def __post_init__(self) -> None:
        if bool(self.feeds) == (self.reason is not None):
            raise ValueError(f"input field '{self.name}': give either `feeds` or a `reason`, not both")


@dataclass(frozen=True)
class FormatSpec:
    """A file format operators have, and how its fields land in a canonical source.

    `target` is None only for 'canonical', which maps any source onto itself
    (see `canonical_spec`). Fields that feed a canonical column must be in a
    file's header; fields that are not carried may be absent.
    """

    name: str
    target: str | None
    layout: str  # zeek | csv | combined_log | canonical
    description: str
    fields: tuple[InputField, ...]
    options: tuple[str, ...] = ()  # keyword options of the mapping function
    zeek_path: str | None = None  # the '#path' a Zeek log of this kind declares

    @property
    def input_columns(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def required_columns(self) -> list[str]:
        """Input fields a file must have: those that feed a canonical column."""
        return [f.name for f in self.fields if f.feeds and not f.optional]

    @property
    def carried(self) -> dict[str, list[str]]:
        """Input field -> the canonical column(s) it feeds."""
        return {f.name: list(f.feeds) for f in self.fields if f.feeds}

    @property
    def dropped(self) -> dict[str, str]:
        """Input field -> why it is not carried."""
        return {f.name: f.reason for f in self.fields if f.reason is not None}

    @property
    def canonical_without_source(self) -> list[str]:
        """Canonical columns no input field feeds: always null in `mapped`."""
        if self.target is None:
            return []
        fed = {c for f in self.fields for c in f.feeds}
        return [c for c in SOURCES[self.target].column_names if c not in fed]


def _carried(name: str, *feeds: str) -> InputField:
    return InputField(name, feeds=feeds)


def _dropped(name: str, reason: str) -> InputField:
    return InputField(name, reason=reason)


_CONN_ID = "connection id: not needed"
_NOT_CANONICAL = "not in canonical schema"

_ZEEK_CONN_FIELDS = (
    _carried("ts", "start_time"),
    _dropped("uid", _CONN_ID),
    _carried("id.orig_h", "account_id", "src_ip"),
    _carried("id.orig_p", "src_port"),
    _carried("id.resp_h", "dst_ip"),
    _carried("id.resp_p", "dst_port"),
    _carried("proto", "protocol"),
    _dropped("service", f"application protocol guess: {_NOT_CANONICAL}"),
    _carried("duration", "duration_s"),
    _carried("orig_bytes", "bytes"),
    _carried("resp_bytes", "bytes"),
    _dropped("conn_state", f"connection state: {_NOT_CANONICAL}"),
    _dropped("local_orig", f"sensor-local flag: {_NOT_CANONICAL}"),
    _dropped("local_resp", f"sensor-local flag: {_NOT_CANONICAL}"),
    _dropped("missed_bytes", f"capture loss: {_NOT_CANONICAL}"),
    _dropped("history", f"TCP state history: {_NOT_CANONICAL}"),
    _carried("orig_pkts", "packets"),
    InputField("orig_ip_bytes", feeds=("bytes",), optional=True),  # when no payload count is set
    _carried("resp_pkts", "packets"),
    InputField("resp_ip_bytes", feeds=("bytes",), optional=True),
    _dropped("tunnel_parents", "tunnel connection ids: not needed"),
    _dropped("ip_proto", "IP protocol number: proto is carried"),
    _dropped("orig_l2_addr", "MAC address (device identifier): not part of network_flows"),
    _dropped("resp_l2_addr", "MAC address (device identifier): not part of network_flows"),
    _dropped("community_id", "flow hash: not needed"),
)

_ZEEK_DNS_FIELDS = (
    _carried("ts", "visit_time"),
    _dropped("uid", _CONN_ID),
    _carried("id.orig_h", "account_id", "client_ip"),
    _dropped("id.orig_p", f"client port: {_NOT_CANONICAL}"),
    _dropped("id.resp_h", f"resolver address: {_NOT_CANONICAL}"),
    _dropped("id.resp_p", f"resolver port: {_NOT_CANONICAL}"),
    _dropped("proto", f"transport: {_NOT_CANONICAL}"),
    _dropped("trans_id", "DNS transaction id: not needed"),
    _dropped("rtt", f"round-trip time: {_NOT_CANONICAL}"),
    _carried("query", "domain"),
    _dropped("qclass", f"query class: {_NOT_CANONICAL}"),
    _dropped("qclass_name", f"query class: {_NOT_CANONICAL}"),
    _dropped("qtype", f"query type: {_NOT_CANONICAL}"),
    _dropped("qtype_name", f"query type: {_NOT_CANONICAL}"),
    _dropped("rcode", f"response code: {_NOT_CANONICAL}"),
    _dropped("rcode_name", f"response code: {_NOT_CANONICAL}"),
    _dropped("AA", f"DNS header flag: {_NOT_CANONICAL}"),
    _dropped("TC", f"DNS header flag: {_NOT_CANONICAL}"),
    _dropped("RD", f"DNS header flag: {_NOT_CANONICAL}"),
    _dropped("RA", f"DNS header flag: {_NOT_CANONICAL}"),
    _dropped("Z", f"DNS header flag: {_NOT_CANONICAL}"),
    _dropped("answers", f"resolved addresses: {_NOT_CANONICAL}"),
    _dropped("TTLs", f"answer lifetimes: {_NOT_CANONICAL}"),
    _dropped("rejected", f"rejection flag: {_NOT_CANONICAL}"),
)

_ZEEK_HTTP_FIELDS = (
    _carried("ts", "visit_time"),
    _dropped("uid", _CONN_ID),
    _carried("id.orig_h", "account_id", "client_ip"),
    _dropped("id.orig_p", f"client port: {_NOT_CANONICAL}"),
    _dropped("id.resp_h", "server address: the Host header (host) is carried as domain"),
    _dropped("id.resp_p", f"server port: {_NOT_CANONICAL}"),
    _dropped("trans_depth", "request number within the connection: not needed"),
    _dropped("method", f"HTTP method: {_NOT_CANONICAL}"),
    _carried("host", "domain"),
    _carried("uri", "url"),
    _dropped("referrer", f"referring page (may carry identifiers): {_NOT_CANONICAL}"),
    _dropped("version", f"HTTP version: {_NOT_CANONICAL}"),
    _carried("user_agent", "user_agent"),
    _dropped("origin", f"Origin header: {_NOT_CANONICAL}"),
    _dropped("request_body_len", "upload size: bytes is the response body sent to the visitor"),
    _carried("response_body_len", "bytes"),
    _dropped("status_code", f"response status: {_NOT_CANONICAL}"),
    _dropped("status_msg", f"response status: {_NOT_CANONICAL}"),
    _dropped("info_code", f"1xx status: {_NOT_CANONICAL}"),
    _dropped("info_msg", f"1xx status: {_NOT_CANONICAL}"),
    _dropped("filename", f"download file name: {_NOT_CANONICAL}"),
    _dropped("tags", f"analyzer tags: {_NOT_CANONICAL}"),
    _dropped("username", "HTTP auth user name (account credentials): never carried"),
    _dropped("password", "HTTP auth password (account credentials): never carried"),
    _dropped("proxied", f"proxy headers: {_NOT_CANONICAL}"),
    _dropped("orig_fuids", "file ids: not needed"),
    _dropped("orig_filenames", f"uploaded file names: {_NOT_CANONICAL}"),
    _dropped("orig_mime_types", f"upload types: {_NOT_CANONICAL}"),
    _dropped("resp_fuids", "file ids: not needed"),
    _dropped("resp_filenames", f"downloaded file names: {_NOT_CANONICAL}"),
    _dropped("resp_mime_types", f"content types: {_NOT_CANONICAL}"),
)

_BINETFLOW_FIELDS = (
    _carried("StartTime", "start_time"),
    _carried("Dur", "duration_s"),
    _carried("Proto", "protocol"),
    _carried("SrcAddr", "account_id", "src_ip"),
    _carried("Sport", "src_port"),
    _dropped("Dir", f"direction marker: {_NOT_CANONICAL}"),
    _carried("DstAddr", "dst_ip"),
    _carried("Dport", "dst_port"),
    _dropped("State", f"flow state: {_NOT_CANONICAL}"),
    _dropped("sTos", f"type of service: {_NOT_CANONICAL}"),
    _dropped("dTos", f"type of service: {_NOT_CANONICAL}"),
    _carried("TotPkts", "packets"),
    _carried("TotBytes", "bytes"),
    _dropped("SrcBytes", "source-side bytes: TotBytes is carried"),
    _dropped("Label", "capture label (analyst annotation): not carried"),
)

_CLF_FIELDS = (
    _carried("host", "account_id", "client_ip"),
    _dropped("ident", "RFC 1413 identity (an identifier): never carried"),
    _dropped("authuser", "authenticated user name (an identifier): never carried"),
    _carried("time", "visit_time"),
    _carried("request", "url"),
    _dropped("status", f"response status: {_NOT_CANONICAL}"),
    _carried("size", "bytes"),
    _dropped("referer", f"referring page (may carry identifiers): {_NOT_CANONICAL}"),
    _carried("user_agent", "user_agent"),
)

# Telco add-on services: input column -> add-on name in `addons`.
TELCO_ADDONS: dict[str, str] = {
    "MultipleLines": "multiple_lines",
    "OnlineSecurity": "online_security",
    "OnlineBackup": "online_backup",
    "DeviceProtection": "device_protection",
    "TechSupport": "tech_support",
    "StreamingTV": "streaming_tv",
    "StreamingMovies": "streaming_movies",
}
TELCO_CONTRACTS = {"month-to-month": "month-to-month", "one year": "one_year", "two year": "two_year"}

_TELCO_FIELDS = (
    _carried("customerID", "account_id"),
    _carried("gender", "gender"),
    _dropped("SeniorCitizen", f"senior flag (birth date unknown): {_NOT_CANONICAL}"),
    _dropped("Partner", f"household: {_NOT_CANONICAL}"),
    _dropped("Dependents", f"household: {_NOT_CANONICAL}"),
    _dropped("tenure", f"months as a customer (no export date, so no signup_date): {_NOT_CANONICAL}"),
    _dropped("PhoneService", f"base phone line: {_NOT_CANONICAL} (MultipleLines is an add-on)"),
    _carried("MultipleLines", "addons"),
    _carried("InternetService", "plan"),
    _carried("OnlineSecurity", "addons"),
    _carried("OnlineBackup", "addons"),
    _carried("DeviceProtection", "addons"),
    _carried("TechSupport", "addons"),
    _carried("StreamingTV", "addons"),
    _carried("StreamingMovies", "addons"),
    _carried("Contract", "contract"),
    _dropped("PaperlessBilling", f"billing preference: {_NOT_CANONICAL}"),
    _carried("PaymentMethod", "payment_method"),
    _carried("MonthlyCharges", "monthly_charges"),
    _dropped("TotalCharges", f"lifetime total (blank for new customers): {_NOT_CANONICAL}"),
    _dropped("Churn", "churn label (analysis target): not a service option"),
)

FORMATS: dict[str, FormatSpec] = {
    spec.name: spec
    for spec in (
        FormatSpec(
            "zeek_conn", "network_flows", "zeek",
            "Zeek conn.log (TSV with #fields header); bytes and packets are orig + resp",
            _ZEEK_CONN_FIELDS, zeek_path="conn",
        ),
        FormatSpec(
            "zeek_dns", "web_visits", "zeek",
            "Zeek dns.log: one visit per DNS query, domain = query",
            _ZEEK_DNS_FIELDS, zeek_path="dns",
        ),
        FormatSpec(
            "zeek_http", "web_visits", "zeek",
            "Zeek http.log: one visit per request, domain = Host header",
            _ZEEK_HTTP_FIELDS, zeek_path="http",
        ),
        FormatSpec(
            "binetflow", "network_flows", "csv",
            "Argus bidirectional flow CSV (CTU-13 .binetflow); hex ICMP ports become decimal",
            _BINETFLOW_FIELDS, options=("timezone",),
        ),
        FormatSpec(
            "combined_log", "web_visits", "combined_log",
            "Web server combined (or common) log format; domain is the `site_domain` option",
            _CLF_FIELDS, options=("site_domain",),
        ),
        FormatSpec(
            "telco_customers", "subscribers", "csv",
            "IBM telco customer CSV: plan = InternetService, addons = services that are 'Yes'",
            _TELCO_FIELDS,
        ),
        FormatSpec(
            "canonical", None, "canonical",
            "The project's own landing files (Parquet, CSV with header, JSON lines) of any source",
            (), options=("source",),
        ),
    )
}


def canonical_spec(source: str) -> FormatSpec:
    """The 'canonical' format for one source: every column feeds itself."""
    if source not in SOURCES:
        raise ValueError(f"unknown source '{source}' (one of {', '.join(SOURCES)})")
    fields = tuple(_carried(c, c) for c in SOURCES[source].column_names)
    base = FORMATS["canonical"]
    return FormatSpec(base.name, source, base.layout, base.description, fields, base.options)


# --- shared pieces -------------------------------------------------------------


def number_lines(scanned: DataFrame) -> DataFrame:
    """Exact 1-based line numbers for lines read by `spark.read.text`, without a global sort.

    `scanned` has `file`, `value`, `block_start` (`_metadata.file_block_start`:
    which split of the file the line came from) and `row_id`
    (`monotonically_increasing_id()` taken right after the scan). A split is
    read in order by one task, so within a split the id grows by one per line;
    lines before a split are counted in a small per-split aggregate (one row
    per split) that is broadcast back. Adds `last_line` (the file's last line).
    """
    per_split = scanned.groupBy("file", "block_start").agg(
        F.count(F.lit(1)).alias("_lines"), F.min("row_id").alias("_first_id")
    )
    earlier = (
        Window.partitionBy("file").orderBy("block_start")
        .rowsBetween(Window.unboundedPreceding, -1)
    )
    whole_file = Window.partitionBy("file").rowsBetween(
        Window.unboundedPreceding, Window.unboundedFollowing
    )
    splits = per_split.select(
        "file",
        "block_start",
        "_first_id",
        F.coalesce(F.sum("_lines").over(earlier), F.lit(0)).alias("_lines_before"),
        F.sum("_lines").over(whole_file).alias("_file_lines"),
    )
    line_number = F.col("_lines_before") + (F.col("row_id") - F.col("_first_id")) + F.lit(1)
    return scanned.join(F.broadcast(splits), on=["file", "block_start"], how="inner").select(
        "file",
        line_number.cast("bigint").alias("line_number"),
        "value",
        (line_number == F.col("_file_lines")).alias("last_line"),
    )


def _with_line_defaults(lines: DataFrame) -> DataFrame:
    """`file`, `line_number`, `value`, `truncated`, whichever optional ones were absent."""
    file = F.col("file") if "file" in lines.columns else F.lit(None).cast("string")
    truncated = F.col("truncated") if "truncated" in lines.columns else F.lit(False)
    return lines.select(
        file.alias("file"),
        F.col("line_number").cast("bigint").alias("line_number"),
        F.col("value"),
        F.coalesce(truncated, F.lit(False)).alias("truncated"),
    )


def _is_blank(value: Column) -> Column:
    return F.trim(value) == F.lit("")


def _blank_to_null(text: Column) -> Column:
    return F.when(~_is_blank(text), text)


def _first_reason(*checks: tuple[Column, str]) -> Column:
    """The first failed check's reason, null when every check passes."""
    reason = F.lit(None).cast("string")
    for failed, name in reversed(checks):
        reason = F.when(failed, F.lit(name)).otherwise(reason)
    return reason


def _split_result(parsed: DataFrame, target: SourceSpec) -> FormatResult:
    """`parsed` has file, line_number, value, _reason and the canonical columns."""
    mapped = parsed.where(F.col("_reason").isNull()).select(
        *[F.col(c).cast("string").alias(c) for c in target.column_names]
    )
    rejected = parsed.where(F.col("_reason").isNotNull()).select(
        F.col("file").cast("string").alias("file"),
        F.col("line_number").cast("bigint").alias("line_number"),
        F.col("_reason").alias("reason"),
        F.col("value").cast("string").alias("record"),
    )
    return FormatResult(mapped, rejected)


def _field_getter(names: Column, values: Column) -> Callable[[str], Column]:
    """name -> the value of that field (null when the header lacks it)."""

    def get(name: str) -> Column:
        position = F.array_position(names, F.lit(name))
        return F.get(values, (position - F.lit(1)).cast("int"))

    return get


def _missing_fields(names: Column, required: list[str]) -> Column:
    return F.size(F.array_except(F.array(*[F.lit(n) for n in required]), names)) > F.lit(0)


def _epoch_to_utc_text(seconds: Column) -> Column:
    """Epoch seconds (text, with fraction) -> 'yyyy-MM-dd HH:mm:ss' UTC; null when unreadable.

    Plain arithmetic on days and seconds of the day, so neither the session
    time zone nor daylight saving can shift it; the fraction is truncated.
    """
    exact = seconds.try_cast("decimal(20,6)")
    in_range = (exact >= F.lit(0)) & (exact <= F.lit(_LAST_EPOCH_SECOND))
    whole = F.floor(exact).cast("bigint")
    days = F.floor(whole / F.lit(_SECONDS_PER_DAY)).cast("bigint")
    second_of_day = whole - days * F.lit(_SECONDS_PER_DAY)
    date = F.date_add(F.lit("1970-01-01").cast("date"), days.cast("int")).cast("string")
    clock = F.format_string(
        "%02d:%02d:%02d",
        F.floor(second_of_day / F.lit(3600)).cast("int"),
        F.floor((second_of_day % F.lit(3600)) / F.lit(60)).cast("int"),
        (second_of_day % F.lit(60)).cast("int"),
    )
    return F.when(in_range, F.concat(date, F.lit(" "), clock))


_GROUP_SEPARATOR = "\u0001"  # not in log text; a line holding it does not split into its groups


def _regex_groups(text: Column, pattern: str, groups: int) -> Column:
    """The pattern's groups 1..`groups` as an array, from one regex match (not one per group).

    Only meaningful where `text` matches the anchored `pattern` (check with rlike).
    """
    replacement = _GROUP_SEPARATOR.join(f"${i}" for i in range(1, groups + 1))
    return F.split(F.regexp_replace(text, pattern, replacement), _GROUP_SEPARATOR, -1)


def _ntz_text(wall_clock: Column) -> Column:
    return F.date_format(wall_clock, LANDING_TIMESTAMP_FORMAT)


def _check_timezone(timezone: str) -> str:
    if timezone == "UTC" or _UTC_OFFSET_PATTERN.match(timezone):
        return timezone
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone '{timezone}' (an IANA name like 'Europe/Prague', or '+01:00')"
        ) from exc
    return timezone


# --- Zeek ------------------------------------------------------------------------


def _zeek_records(lines: DataFrame, required: list[str]) -> DataFrame:
    """Data lines of Zeek logs with their section's `#fields` (`names`) and split `values`.

    A file may hold several sections (rotated logs concatenated with `cat`),
    each opened by its own '#fields' line: a data line takes the nearest
    '#fields' line above it in its file. Lines starting with '#' and blank
    lines are not data.
    """
    lines = _with_line_defaults(lines)
    headers = lines.where(F.col("value").startswith("#fields\t")).select(
        F.col("file").alias("_h_file"),
        F.col("line_number").alias("_h_line"),
        F.split(F.regexp_extract("value", r"^#fields\t(.*)$", 1), ZEEK_SEPARATOR).alias("names"),
    )
    # lead() needs no frame: it reads the next header line of the same file.
    next_header = Window.partitionBy("_h_file").orderBy("_h_line")
    sections = headers.select(
        "_h_file", "_h_line", "names", F.lead("_h_line").over(next_header).alias("_h_next")
    )
    data = lines.where(~F.col("value").startswith("#") & ~_is_blank(F.col("value")))
    in_section = (
        data["file"].eqNullSafe(sections["_h_file"])
        & (data["line_number"] > sections["_h_line"])
        & (sections["_h_next"].isNull() | (data["line_number"] < sections["_h_next"]))
    )
    joined = data.join(F.broadcast(sections), on=in_section, how="left")
    values = F.split(F.col("value"), ZEEK_SEPARATOR, -1)
    structural = _first_reason(
        (F.col("truncated"), "malformed:truncated"),
        (F.col("names").isNull(), "malformed:no_header"),
        (_missing_fields(F.col("names"), required), "malformed:header"),
        (F.size(values) != F.size(F.col("names")), "malformed:field_count"),
    )
    return joined.select(
        "file", "line_number", "value", "names", values.alias("values"), structural.alias("_structural")
    )


def _zeek_getter(records: DataFrame) -> Callable[[str], Column]:
    raw = _field_getter(F.col("names"), F.col("values"))

    def get(name: str) -> Column:
        text = raw(name)
        return F.when(~text.isin(ZEEK_UNSET, ZEEK_EMPTY, ""), text)

    return get


def _sum_counts(first: Column, second: Column) -> Column:
    """first + second for Zeek counts; unset counts as 0, both unset is null.

    Anything that is not a non-negative integer is passed on as text (one
    value alone, or 'a+b') for ingest to reject, rather than summed away.
    """
    a, b = first.try_cast("bigint"), second.try_cast("bigint")
    a_ok = first.isNull() | (a >= F.lit(0))
    b_ok = second.isNull() | (b >= F.lit(0))
    total = F.try_add(F.coalesce(a, F.lit(0)), F.coalesce(b, F.lit(0))).cast("string")
    as_text = F.concat_ws("+", first, second)
    return (
        F.when(first.isNull() & second.isNull(), F.lit(None).cast("string"))
        .when(a_ok & b_ok & total.isNotNull(), total)
        .otherwise(as_text)
    )


def _map_zeek(
    lines: DataFrame, spec: FormatSpec, columns: Callable[[Callable[[str], Column]], dict[str, Column]]
) -> FormatResult:
    target = SOURCES[spec.target or ""]
    records = _zeek_records(lines, spec.required_columns)
    get = _zeek_getter(records)
    ts = get("ts")
    mapped_columns = columns(get)
    unreadable_time = ts.isNotNull() & mapped_columns[target.event_time or ""].isNull()
    reason = F.coalesce(F.col("_structural"), F.when(unreadable_time, F.lit("malformed:timestamp")))
    parsed = records.select(
        "file", "line_number", "value", reason.alias("_reason"),
        *[mapped_columns[c].alias(c) for c in target.column_names],
    )
    return _split_result(parsed, target)


def map_zeek_conn(lines: DataFrame) -> FormatResult:
    """Zeek conn.log lines -> network_flows text (account_id = the originating address)."""

    def columns(get: Callable[[str], Column]) -> dict[str, Column]:
        return {
            "account_id": get("id.orig_h"),
            "src_ip": get("id.orig_h"),
            "dst_ip": get("id.resp_h"),
            "src_port": get("id.orig_p"),
            "dst_port": get("id.resp_p"),
            "protocol": F.lower(get("proto")),
            # Payload bytes; when Zeek set neither (no payload seen), the IP-level count.
            "bytes": F.coalesce(
                _sum_counts(get("orig_bytes"), get("resp_bytes")),
                _sum_counts(get("orig_ip_bytes"), get("resp_ip_bytes")),
            ),
            "packets": _sum_counts(get("orig_pkts"), get("resp_pkts")),
            "start_time": _epoch_to_utc_text(get("ts")),
            "duration_s": get("duration"),
        }

    return _map_zeek(lines, FORMATS["zeek_conn"], columns)


def map_zeek_dns(lines: DataFrame) -> FormatResult:
    """Zeek dns.log lines -> web_visits text: the client looked up `query` (lower-cased)."""

    def columns(get: Callable[[str], Column]) -> dict[str, Column]:
        return {
            "account_id": get("id.orig_h"),
            "client_ip": get("id.orig_h"),
            "domain": F.regexp_replace(F.lower(get("query")), r"\.$", ""),
            "url": F.lit(None).cast("string"),
            "visit_time": _epoch_to_utc_text(get("ts")),
            "bytes": F.lit(None).cast("string"),
            "user_agent": F.lit(None).cast("string"),
        }

    return _map_zeek(lines, FORMATS["zeek_dns"], columns)


def _host_without_port(host: Column) -> Column:
    """'Example.com:8080' -> 'example.com'; '[2001:db8::1]:80' -> '[2001:db8::1]'."""
    return F.regexp_replace(F.lower(host), r"^([^:\[\]]+|\[[^\]]+\]):[0-9]+$", "$1")


def map_zeek_http(lines: DataFrame) -> FormatResult:
    """Zeek http.log lines -> web_visits text: domain = Host header, bytes = response body."""

    def columns(get: Callable[[str], Column]) -> dict[str, Column]:
        return {
            "account_id": get("id.orig_h"),
            "client_ip": get("id.orig_h"),
            "domain": _host_without_port(get("host")),
            "url": get("uri"),
            "visit_time": _epoch_to_utc_text(get("ts")),
            "bytes": get("response_body_len"),
            "user_agent": get("user_agent"),
        }

    return _map_zeek(lines, FORMATS["zeek_http"], columns)


# --- CSV with a header line ----------------------------------------------------------


def _split_csv(line: Column) -> Column:
    """Fields of one CSV line: commas inside double quotes do not split; quotes are removed.

    RFC 4180 quoting on one line ('"a,b"', '""' for a quote); a field with a
    line break inside quotes is not supported (these formats have none).
    """
    outside_quotes = r',(?=(?:[^"]*"[^"]*")*[^"]*$)'
    parts = F.when(line.contains('"'), F.split(line, outside_quotes, -1)).otherwise(F.split(line, ",", -1))
    quoted = r'^"(.*)"$'
    return F.transform(
        parts,
        lambda p: F.when(
            p.rlike(quoted), F.regexp_replace(F.regexp_extract(p, quoted, 1), '""', '"')
        ).otherwise(p),
    )


def _csv_records(lines: DataFrame, required: list[str]) -> DataFrame:
    """Data lines of a CSV file with its header (`names`, line 1 of each file) and split `values`.

    A byte-order mark before the header is ignored; a line equal to its
    file's header (files concatenated with `cat`) and blank lines are not data.
    """
    lines = _with_line_defaults(lines)
    header_text = F.trim(F.regexp_replace(F.col("value"), "^\ufeff", ""))
    headers = lines.where(F.col("line_number") == F.lit(1)).select(
        F.col("file").alias("_h_file"),
        header_text.alias("_h_text"),
        F.transform(_split_csv(header_text), lambda n: F.trim(n)).alias("names"),
    )
    data = lines.where((F.col("line_number") > F.lit(1)) & ~_is_blank(F.col("value")))
    joined = data.join(
        F.broadcast(headers), on=data["file"].eqNullSafe(headers["_h_file"]), how="left"
    ).where(F.col("_h_text").isNull() | (F.trim(F.col("value")) != F.col("_h_text")))
    values = _split_csv(F.col("value"))
    structural = _first_reason(
        (F.col("truncated"), "malformed:truncated"),
        (F.col("names").isNull(), "malformed:no_header"),
        (_missing_fields(F.col("names"), required), "malformed:header"),
        (F.size(values) != F.size(F.col("names")), "malformed:field_count"),
    )
    return joined.select(
        "file", "line_number", "value", "names", values.alias("values"), structural.alias("_structural")
    )


def _decimal_port(port: Column) -> Column:
    """'0x0303' -> '771' (Argus prints ICMP type/code and ids as hex); other text unchanged."""
    return F.when(port.rlike(_HEX_PORT_PATTERN), F.conv(F.substring(port, 3, 8), 16, 10)).otherwise(port)


def _argus_time_to_utc_text(text: Column, timezone: str) -> Column:
    """'2013/10/21 13:22:59.340835' (wall clock in `timezone`) -> UTC landing text; null if unreadable."""

    parts = _regex_groups(text, _ARGUS_TIME_PATTERN, 6)

    def part(i: int) -> Column:
        return F.get(parts, i - 1)

    wall_clock = F.try_make_timestamp_ntz(
        years=part(1).try_cast("int"),
        months=part(2).try_cast("int"),
        days=part(3).try_cast("int"),
        hours=part(4).try_cast("int"),
        mins=part(5).try_cast("int"),
        secs=part(6).try_cast("decimal(8,6)"),
    )
    if timezone != "UTC":
        wall_clock = F.convert_timezone(F.lit(timezone), F.lit("UTC"), wall_clock)
    return F.when(text.rlike(_ARGUS_TIME_PATTERN), _ntz_text(wall_clock))


def map_binetflow(lines: DataFrame, *, timezone: str = "UTC") -> FormatResult:
    """Argus bidirectional flow CSV lines -> network_flows text.

    `timezone`: the zone of StartTime's wall clock (ra prints local time;
    the CTU-13 captures are Europe/Prague). Hex ports ('0x0303', ICMP
    type/code) become decimal; empty ports (ARP) stay null; protocols other
    than tcp/udp/icmp are passed on for ingest to reject.
    """
    timezone = _check_timezone(timezone)
    spec = FORMATS["binetflow"]
    target = SOURCES["network_flows"]
    records = _csv_records(lines, spec.required_columns)
    raw = _field_getter(F.col("names"), F.col("values"))

    def get(name: str) -> Column:
        return _blank_to_null(F.trim(raw(name)))

    start = get("StartTime")
    start_utc = _argus_time_to_utc_text(start, timezone)
    columns = {
        "account_id": get("SrcAddr"),
        "src_ip": get("SrcAddr"),
        "dst_ip": get("DstAddr"),
        "src_port": _decimal_port(get("Sport")),
        "dst_port": _decimal_port(get("Dport")),
        "protocol": F.lower(get("Proto")),
        "bytes": get("TotBytes"),
        "packets": get("TotPkts"),
        "start_time": start_utc,
        "duration_s": get("Dur"),
    }
    reason = F.coalesce(
        F.col("_structural"),
        F.when(start.isNotNull() & start_utc.isNull(), F.lit("malformed:timestamp")),
    )
    parsed = records.select(
        "file", "line_number", "value", reason.alias("_reason"),
        *[columns[c].alias(c) for c in target.column_names],
    )
    return _split_result(parsed, target)


def _snake_case(text: Column) -> Column:
    """'Fiber optic' -> 'fiber_optic'; 'Credit card (automatic)' -> 'credit_card'."""
    without_note = F.regexp_replace(F.lower(F.trim(text)), r"\s*\(automatic\)$", "")
    return F.regexp_replace(F.regexp_replace(without_note, r"[^a-z0-9]+", "_"), r"^_+|_+$", "")


def map_telco_customers(lines: DataFrame) -> FormatResult:
    """IBM telco customer CSV lines -> subscribers text.

    plan = InternetService ('dsl', 'fiber_optic', 'no_internet'); addons =
    the add-on services (TELCO_ADDONS) that are 'Yes', ';'-joined (null when
    none); contract and payment method in the generator's vocabulary
    ('month-to-month', 'one_year', 'two_year'; 'credit_card', 'bank_transfer',
    'electronic_check', 'mailed_check'); gender lower-cased. Columns the file
    does not have (name, email, msisdn, birth_date, region, postcode,
    card_number, password_hash, signup_date) are null.
    """
    spec = FORMATS["telco_customers"]
    target = SOURCES["subscribers"]
    records = _csv_records(lines, spec.required_columns)
    raw = _field_getter(F.col("names"), F.col("values"))

    def get(name: str) -> Column:
        return _blank_to_null(F.trim(raw(name)))

    plan = _snake_case(get("InternetService"))
    taken = [F.when(F.lower(get(col)) == F.lit("yes"), F.lit(name)) for col, name in TELCO_ADDONS.items()]
    addons = F.concat_ws(";", *taken)
    contract_key = F.lower(get("Contract"))
    contract = F.coalesce(
        F.element_at(F.create_map(*[F.lit(x) for kv in TELCO_CONTRACTS.items() for x in kv]), contract_key),
        _snake_case(get("Contract")),
    )
    fed = {
        "account_id": get("customerID"),
        "gender": F.lower(get("gender")),
        "plan": F.when(plan == F.lit("no"), F.lit("no_internet")).otherwise(plan),
        "addons": F.when(addons != F.lit(""), addons),
        "contract": F.when(contract_key.isNotNull(), contract),
        "payment_method": _snake_case(get("PaymentMethod")),
        "monthly_charges": get("MonthlyCharges"),
    }
    columns = {c: fed.get(c, F.lit(None).cast("string")) for c in target.column_names}
    parsed = records.select(
        "file", "line_number", "value", F.col("_structural").alias("_reason"),
        *[columns[c].alias(c) for c in target.column_names],
    )
    return _split_result(parsed, target)


# --- web server logs -------------------------------------------------------------------


def _clf_time_to_utc_text(text: Column) -> Column:
    """'10/Oct/2000:13:55:36 -0700' -> '2000-10-10 20:55:36'; null if unreadable."""

    parts = _regex_groups(text, _CLF_TIME_PATTERN, 9)

    def part(i: int) -> Column:
        return F.get(parts, i - 1)

    month = F.array_position(F.array(*[F.lit(m) for m in _MONTHS]), F.lower(part(2)))
    wall_clock = F.try_make_timestamp_ntz(
        years=part(3).try_cast("int"),
        months=month.cast("int"),
        days=part(1).try_cast("int"),
        hours=part(4).try_cast("int"),
        mins=part(5).try_cast("int"),
        secs=part(6).try_cast("decimal(8,6)"),
    )
    offset_ok = (part(8).try_cast("int") <= F.lit(_MAX_OFFSET_HOURS)) & (part(9).try_cast("int") < F.lit(60))
    zone = F.concat(part(7), part(8), F.lit(":"), part(9))
    utc = F.convert_timezone(zone, F.lit("UTC"), wall_clock)
    return F.when(text.rlike(_CLF_TIME_PATTERN) & offset_ok & wall_clock.isNotNull(), _ntz_text(utc))


def map_combined_log(lines: DataFrame, *, site_domain: str = DEFAULT_SITE_DOMAIN) -> FormatResult:
    """Web server combined log lines -> web_visits text.

    The log does not name the site, so `domain` is `site_domain`; url is the
    request target as logged (method and HTTP version removed; null when the
    request is not 'METHOD TARGET [VERSION]'); times with any UTC offset
    become UTC; a size of '-' (no body sent) is 0 bytes; account_id and
    client_ip are the client host. A line that does not have the format's
    structure (e.g. an unterminated quoted field) is 'malformed:line'.
    """
    if not site_domain or not site_domain.strip():
        raise ValueError("site_domain must be a non-empty host name")
    target = SOURCES["web_visits"]
    lines = _with_line_defaults(lines)
    value = F.col("value")
    data = lines.where(~_is_blank(value)).select(
        "*", _regex_groups(value, COMBINED_LOG_PATTERN, 9).alias("_parts")
    )

    def part(i: int) -> Column:
        return F.get(F.col("_parts"), i - 1)

    def dash_to_null(text: Column) -> Column:
        return F.when((text != F.lit("-")) & (text != F.lit("")), text)

    well_formed = value.rlike(COMBINED_LOG_PATTERN) & (F.size("_parts") == F.lit(9))
    time_text = part(4)
    visit_time = _clf_time_to_utc_text(time_text)
    request_pattern = r"^(\S+) (\S+)(?: (\S+))?$"
    request = part(5)
    size = part(7)
    columns = {
        "account_id": dash_to_null(part(1)),
        "client_ip": dash_to_null(part(1)),
        "domain": F.lit(site_domain.strip().lower()),
        "url": F.when(request.rlike(request_pattern), F.regexp_extract(request, request_pattern, 2)),
        "visit_time": visit_time,
        "bytes": F.when(size == F.lit("-"), F.lit("0")).otherwise(size),
        "user_agent": dash_to_null(part(9)),
    }
    reason = _first_reason(
        (F.col("truncated"), "malformed:truncated"),
        (~well_formed, "malformed:line"),
        (visit_time.isNull(), "malformed:timestamp"),
    )
    parsed = data.select(
        "file", "line_number", "value", reason.alias("_reason"),
        *[F.when(well_formed, columns[c]).alias(c) for c in target.column_names],
    )
    return _split_result(parsed, target)


# --- canonical files ---------------------------------------------------------------------


def _text_schema(columns: list[str]) -> str:
    fields = [f"`{c}` string" for c in columns]
    return ", ".join([*fields, f"`{CORRUPT_RECORD_COLUMN}` string"])


_PERMISSIVE = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT_RECORD_COLUMN}


def _map_canonical_records(lines: DataFrame, source: str, record: Column) -> FormatResult:
    """`record` parses `value` into a struct of the canonical columns plus the corrupt-record column."""
    target = SOURCES[canonical_spec(source).target or ""]
    parsed = lines.select("file", "line_number", "value", "truncated", record.alias("_r"))
    reason = _first_reason(
        (F.col("truncated"), "malformed:truncated"),
        (F.col("_r").isNull() | F.col(f"_r.{CORRUPT_RECORD_COLUMN}").isNotNull(), "malformed:record"),
    )
    return _split_result(
        parsed.select(
            "file", "line_number", "value", reason.alias("_reason"),
            *[F.col(f"_r.`{c}`").alias(c) for c in target.column_names],
        ),
        target,
    )


def join_quoted_lines(lines: DataFrame) -> DataFrame:
    """CSV lines with each record whole: a quoted field holding line breaks joins its lines.

    A line with an odd number of double quotes opens or closes a quoted field
    (a doubled quote counts two, a backslash-escaped one none, as Spark's CSV
    parser reads them); a line that starts inside one continues the record
    above it. The record keeps its first line's number, its lines are joined
    with '\n' (a CRLF inside the field becomes LF) and it is `truncated` when
    any of its lines is. A quote never closed runs to the end of its file and
    fails to parse there, as one malformed record.

    Cost: one sort of each file's lines (a window per file), as Spark's own
    multiLine CSV reading makes each file one task.
    """
    lines = _with_line_defaults(lines)
    unescaped = F.regexp_replace(F.col("value"), r"\\.", "")
    quotes = F.length(unescaped) - F.length(F.regexp_replace(unescaped, '"', ""))
    in_file = Window.partitionBy("file").orderBy("line_number")
    above = in_file.rowsBetween(Window.unboundedPreceding, -1)
    so_far = in_file.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    continues = F.coalesce(F.sum(quotes % F.lit(2)).over(above), F.lit(0)) % F.lit(2) == F.lit(1)
    opened = lines.select("*", continues.alias("_continues"))
    record = F.max(F.when(~F.col("_continues"), F.col("line_number"))).over(so_far)
    ordered = F.array_sort(F.collect_list(F.struct("line_number", "value")))
    return (
        opened.select("*", record.alias("_record"))
        .groupBy("file", "_record")
        .agg(
            F.concat_ws("\n", F.transform(ordered, lambda part: part["value"])).alias("value"),
            F.max("truncated").alias("truncated"),
        )
        .select("file", F.col("_record").alias("line_number"), "value", "truncated")
    )


def map_canonical_csv(lines: DataFrame, source: str, header: list[str]) -> FormatResult:
    """Lines of the project's landing CSV files (header line 1 = `header`) -> canonical text.

    Parsed with Spark's own CSV options (`from_csv`: double quotes, backslash
    escapes, as Spark writes them); a record with another number of fields is
    'malformed:record'. A quoted value spanning lines is one record
    (`join_quoted_lines`), numbered by its first line.
    """
    lines = join_quoted_lines(lines)
    data = lines.where((F.col("line_number") > F.lit(1)) & ~_is_blank(F.col("value")))
    return _map_canonical_records(data, source, F.from_csv(F.col("value"), _text_schema(header), _PERMISSIVE))


def map_canonical_json(lines: DataFrame, source: str) -> FormatResult:
    """Lines of the project's landing JSON-lines files -> canonical text.

    Numbers and booleans become their JSON text, absent keys null; a line
    that is not a JSON object is 'malformed:record'.
    """
    lines = _with_line_defaults(lines)
    data = lines.where(~_is_blank(F.col("value")))
    columns = SOURCES[canonical_spec(source).target or ""].column_names
    is_object = F.trim(F.col("value")).startswith("{")
    record = F.when(is_object, F.from_json(F.col("value"), _text_schema(columns), _PERMISSIVE))
    return _map_canonical_records(data, source, record)


def map_canonical(df: DataFrame, source: str) -> FormatResult:
    """A Spark-read dataset of the project's landing files (Parquet) -> canonical text columns.

    `df` has the source's canonical columns (any order, any types) and may
    have `file`. Timestamps are written in the landing format, everything
    else cast to string; nothing is rejected (a Parquet file has no broken
    lines). Raises `transforms.ingest.SchemaMismatch` when columns differ.
    """
    target = SOURCES[canonical_spec(source).target or ""]
    check_landing_columns(df.drop("file"), target, f"canonical {source}")
    types = dict(df.dtypes)

    def as_text(name: str) -> Column:
        if types[name].startswith("timestamp"):
            return F.date_format(F.col(name), LANDING_TIMESTAMP_FORMAT)
        return F.col(name).cast("string")

    file = F.col("file") if "file" in df.columns else F.lit(None).cast("string")
    parsed = df.select(
        file.alias("file"),
        F.lit(None).cast("bigint").alias("line_number"),
        F.lit(None).cast("string").alias("value"),
        F.lit(None).cast("string").alias("_reason"),
        *[as_text(c).alias(c) for c in target.column_names],
    )
    return _split_result(parsed, target)


# --- dispatch -------------------------------------------------------------------------------

LINE_MAPPERS: dict[str, Callable[..., FormatResult]] = {
    "zeek_conn": map_zeek_conn,
    "zeek_dns": map_zeek_dns,
    "zeek_http": map_zeek_http,
    "binetflow": map_binetflow,
    "combined_log": map_combined_log,
    "telco_customers": map_telco_customers,
}


def map_lines(fmt: str, lines: DataFrame, **options: str) -> FormatResult:
    """Map the lines of a text format (`FORMATS` name other than 'canonical')."""
    if fmt not in LINE_MAPPERS:
        raise ValueError(f"unknown line format '{fmt}' (one of {', '.join(LINE_MAPPERS)})")
    unknown = sorted(set(options) - set(FORMATS[fmt].options))
    if unknown:
        allowed = ", ".join(FORMATS[fmt].options) or "none"
        raise ValueError(f"format '{fmt}' takes no option(s) {', '.join(unknown)} (allowed: {allowed})")
    return LINE_MAPPERS[fmt](lines, **options)
