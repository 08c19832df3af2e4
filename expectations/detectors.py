"""Identifier detectors: each defined once, used by the GX suites and the leak scanner.

A detector is a regular expression that finds identifier-shaped text and, for
the numbers that carry a Luhn check digit (IMEI, ICCID, payment card), that
check on the digits of each candidate. `detector_predicates` turns every
detector into one Spark SQL boolean expression over a column; the protected
and release suites (`expectations.suites`) and `kr-reports scan`
(`stages.scan`) evaluate exactly those expressions, natively in Spark.

The regexes are *searches* (Java's `rlike`, `regexp_extract_all`): a pattern
may match anywhere inside a value. They therefore carry their own boundaries,
as lookarounds, so that a run of digits inside a longer token (a 64-hex
pseudonym, a longer number) is not taken for an identifier and an identifier
is not missed for lack of `^...$`.

Every pattern uses only syntax that Java and Python read alike: character
classes written out (`[0-9]`, never `\\d`, whose meaning differs), non-capturing
groups, fixed-width lookbehinds and numbered back-references. The tests compile
them with Python's `re`; Spark compiles them with `java.util.regex`.

Deliberately allowed: an IPv4 or IPv6 network written with a prefix length
shorter than a host route, such as the protect stage's "10.1.2.0/24" or
"2001:db8:1::/48": that is a truncated address, not an identifier. A "/32"
(IPv4) or "/128" (IPv6) suffix names one host and is still flagged.
"""

from __future__ import annotations

from dataclasses import dataclass

# Boundaries: the character before / after a match may not continue the token.
_NOT_AFTER_ALNUM = "(?<![0-9A-Za-z])"
_NOT_BEFORE_ALNUM = "(?![0-9A-Za-z])"
_NOT_BEFORE_DIGIT = "(?![0-9])"
_NOT_A_FRACTION = "(?<![0-9][.,])"  # the digits after a decimal point are not a number of their own


def _token(body: str) -> str:
    """`body` as a whole token: no letter or digit right before or after it, not a fraction."""
    return _NOT_AFTER_ALNUM + _NOT_A_FRACTION + "(?:" + body + ")" + _NOT_BEFORE_ALNUM


_LOCAL_PART = "[A-Za-z0-9._%+-]"
# Starting only where a local part starts matches the same values, without trying
# every position inside a long token (quadratic on a 64-hex pseudonym).
EMAIL = (
    "(?<!" + _LOCAL_PART + ")" + _LOCAL_PART + "+@[A-Za-z0-9-]+(?:\\.[A-Za-z0-9-]+)*\\.[A-Za-z]{2,}"
)
"""A mailbox: local part, "@", a dotted domain ending in a letters-only TLD."""

PHONE = "|".join(
    [
        # E.164, optionally written with spaces or dashes: +821012345678, +82 10-1234-5678
        "(?:\\+[1-9](?:[ -]?[0-9]){7,14}" + _NOT_BEFORE_DIGIT + ")",
        # Korean mobile, national form: 010-1234-5678, 010 1234 5678, 01012345678
        _token("01[016789][ .-]?[0-9]{3,4}[ .-]?[0-9]{4}"),
        # Korean landline, national form with separators: 02-123-4567, 031-1234-5678
        _token("0(?:2|[3-6][1-5])[ .-][0-9]{3,4}[ .-][0-9]{4}"),
    ]
)
"""A phone number: E.164 (+CC...) or a Korean national mobile or landline number."""

_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4_NETWORK_SUFFIX = "/(?:3[01]|[12][0-9]|[0-9])" + _NOT_BEFORE_DIGIT
# Not part of a longer dotted number, and not a network such as 10.1.2.0/24.
_IPV4_END = "(?![0-9]|\\.[0-9]|" + _IPV4_NETWORK_SUFFIX + ")"
IPV4 = "(?<![0-9.])" + _OCTET + "(?:\\." + _OCTET + "){3}" + _IPV4_END
"""A full dotted-quad IPv4 address; a network with a /0../31 prefix is not one."""

_H = "[0-9A-Fa-f]{1,4}"  # one group (hextet)
_IPV6_NETWORK_SUFFIX = "/(?:12[0-7]|1[01][0-9]|[1-9]?[0-9])" + _NOT_BEFORE_DIGIT
_IPV6_FORMS = [
    f"(?:{_H}:){{7}}{_H}",  # full: eight groups
    # compressed ("::" stands for one or more zero groups), at most seven groups written
    f"(?:{_H}:){{1,7}}:",  # 2001:db8::
    f"(?:{_H}:){{1,6}}:{_H}",  # 2001:db8::1
    f"(?:{_H}:){{1,5}}(?::{_H}){{1,2}}",
    f"(?:{_H}:){{1,4}}(?::{_H}){{1,3}}",
    f"(?:{_H}:){{1,3}}(?::{_H}){{1,4}}",
    f"(?:{_H}:){{1,2}}(?::{_H}){{1,5}}",
    f"{_H}:(?::{_H}){{1,6}}",  # fe80::1:2:3:4:5:6
    f"::(?:{_H}:){{0,6}}{_H}",  # ::1, ::ffff:a:b
]
IPV6 = (
    "(?<![0-9A-Za-z:])(?:" + "|".join(_IPV6_FORMS) + ")"
    + "(?![0-9A-Za-z:]|" + _IPV6_NETWORK_SUFFIX + ")"
)
"""An IPv6 address, full or "::"-compressed; a network with /0../127 is not one.

An address with an embedded IPv4 tail ("::ffff:10.1.2.3") is left to the IPv4
detector, which finds the tail.
"""

MAC = "".join(
    [
        "(?<![0-9A-Fa-f:.-])(?:",
        # 00:1a:2b:3c:4d:5e or 00-1A-2B-3C-4D-5E (one separator throughout)
        "[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(?:\\1[0-9A-Fa-f]{2}){4}",
        # 001a.2b3c.4d5e (Cisco)
        "|[0-9A-Fa-f]{4}\\.[0-9A-Fa-f]{4}\\.[0-9A-Fa-f]{4}",
        ")(?![0-9A-Fa-f:.-])",
    ]
)
"""A 48-bit MAC address in colon, dash or dotted-quad-hex notation."""

IMEI = _token("[0-9]{15}|[0-9]{2}[ -][0-9]{6}[ -][0-9]{6}[ -][0-9]")
"""IMEI candidate: 15 digits, bare or grouped 2-6-6-1 as printed on devices (plus Luhn)."""

IMSI = _token("[2-7][0-9]{2}[0-9]{12}")
"""IMSI-like: 15 digits that open with a 3-digit mobile country code (2xx-7xx)."""

ICCID = _token("89[0-9]{17,18}")
"""ICCID candidate: a SIM serial, 19 or 20 digits opening with 89 (telecom) (plus Luhn)."""

# First two digits of a card: 22-99. No scheme issues cards opening with 0, 1, 20
# or 21; leaving those out keeps epoch milliseconds (1710496800000) and compact
# timestamps (20240315100000) from passing for card numbers one time in ten.
_CARD_LEAD = "(?:2[2-9]|[3-9][0-9])"
CARD_NUMBER = _token(
    _CARD_LEAD + "[0-9]{11,17}"
    # as printed: 4-4-4-1..7 (Visa, Mastercard, 19-digit) or 4-6-4..5 (Amex, Diners)
    + "|" + _CARD_LEAD + "[0-9]{2}([ -])[0-9]{4}\\1[0-9]{4}\\1[0-9]{1,7}"
    + "|" + _CARD_LEAD + "[0-9]{2}([ -])[0-9]{6}\\2[0-9]{4,5}"
)
"""Card-number candidate: 13 to 19 digits, bare or in the groups printed on cards (plus Luhn).

Other groupings (a cell id such as "450-05-1101-20345") are not card numbers.
"""


@dataclass(frozen=True)
class Detector:
    """One kind of identifier: a regex and, optionally, a Luhn check on its digits.

    `min_digits` and `needs_one_of` state what every match of the regex
    contains (that many digits, one of those characters). The predicate tests
    them first, with plain string functions, so that most values never reach
    the regex; they change no result.
    """

    name: str
    regex: str
    luhn: bool = False
    min_digits: int = 0
    needs_one_of: str = ""

    def predicate(self) -> str:
        """Spark SQL boolean template over `{column}` (a string expression).

        Braces of the regex are doubled, so `template.format(column=...)` gives
        the SQL. NULL for a NULL value, which a WHERE or `count_if` treats as
        "no match".
        """
        column = "\0column\0"  # stands for the placeholder while braces are doubled
        pattern = _sql_raw_string(self.regex)
        tests = [f"instr({column}, '{c}') > 0" for c in self.needs_one_of]
        guards = ["(" + " OR ".join(tests) + ")"] if tests else []
        if self.min_digits:
            digit_count = f"length({column}) - length(translate({column}, '0123456789', ''))"
            guards.append(f"{digit_count} >= {self.min_digits}")
        if self.luhn:
            candidates = f"regexp_extract_all({column}, {pattern}, 0)"
            digits = f"transform({candidates}, _kr_c -> regexp_replace(_kr_c, '[^0-9]', ''))"
            check = f"exists({digits}, _kr_d -> {_luhn_valid('_kr_d')})"
        else:
            check = f"{column} RLIKE {pattern}"
        sql = "(" + " AND ".join([*guards, check]) + ")"
        return _escape_braces(sql).replace(column, "{column}")


def _luhn_valid(digits: str) -> str:
    """Spark SQL: the Luhn sum of the digit string `digits` is a multiple of 10.

    From the right, every second digit is doubled (less 9 when that exceeds 9).
    """
    from_right = (
        f"transform(sequence(1, length({digits})), "
        f"_kr_i -> CAST(substring({digits}, length({digits}) - _kr_i + 1, 1) AS INT))"
    )
    weighted = (
        f"transform({from_right}, (_kr_n, _kr_k) -> CASE WHEN _kr_k % 2 = 1 "
        "THEN 2 * _kr_n - CASE WHEN _kr_n > 4 THEN 9 ELSE 0 END ELSE _kr_n END)"
    )
    return f"(aggregate({weighted}, 0, (_kr_s, _kr_v) -> _kr_s + _kr_v) % 10 = 0)"


def _sql_raw_string(text: str) -> str:
    """A Spark SQL raw string literal (no escape processing), for a regex."""
    if "'" in text:
        raise ValueError("a detector regex may not contain a single quote")
    return f"r'{text}'"


def _escape_braces(sql: str) -> str:
    return sql.replace("{", "{{").replace("}", "}}")


DETECTORS: tuple[Detector, ...] = (
    Detector("email", EMAIL, needs_one_of="@"),
    Detector("phone", PHONE, min_digits=8),
    Detector("ipv4", IPV4, min_digits=4, needs_one_of="."),
    Detector("ipv6", IPV6, needs_one_of=":"),
    Detector("mac", MAC, needs_one_of=":-."),
    Detector("imei", IMEI, luhn=True, min_digits=15),
    Detector("imsi", IMSI, min_digits=15),
    Detector("iccid", ICCID, luhn=True, min_digits=19),
    Detector("card_number", CARD_NUMBER, luhn=True, min_digits=13),
)

IDENTIFIER_PATTERNS: dict[str, str] = {d.name: d.regex for d in DETECTORS}


def detectors() -> tuple[Detector, ...]:
    """Every detector, in a stable order."""
    return DETECTORS


def identifier_patterns() -> dict[str, str]:
    """Detector name -> regex (Java and Python compatible), in a stable order.

    For the Luhn detectors (`imei`, `iccid`, `card_number`) the regex finds
    candidates only; `detector_predicates` adds the check digit.
    """
    return dict(IDENTIFIER_PATTERNS)


def detector_predicates() -> dict[str, str]:
    """Detector name -> Spark SQL boolean template with a `{column}` placeholder.

    Fill it with `str.format(column=...)`, giving a string-typed SQL expression:
    `detector_sql` does so for a column name.
    """
    return {d.name: d.predicate() for d in DETECTORS}


def quote_identifier(name: str) -> str:
    """`name` as a Spark SQL identifier: in backticks, inner backticks doubled."""
    return "`" + name.replace("`", "``") + "`"


def detector_sql(detector: str, column: str) -> str:
    """The detector's predicate on column `column`, read as a string."""
    template = detector_predicates()[detector]
    return template.format(column=f"CAST({quote_identifier(column)} AS STRING)")
