"""Regular expressions that recognize identifier-shaped values.

The protected and release suites run each pattern against every string column
(`ExpectColumnValuesToNotMatchRegex`, which Spark evaluates with `rlike`, a
Java regex *search*: a pattern may match anywhere inside a value). The
patterns therefore carry their own boundaries, as lookarounds, so that a run of
digits inside a longer token (a 64-hex pseudonym, a longer number) is not
taken for an identifier and an identifier is not missed for lack of `^...$`.

Every pattern uses only syntax that Java and Python read alike: character
classes written out (`[0-9]`, never `\\d`, whose meaning differs), non-capturing
groups, fixed-width lookbehinds and numbered back-references. The tests compile
them with Python's `re`; Spark compiles them with `java.util.regex`.

Deliberately allowed: an IPv4 or IPv6 network written with a prefix length
shorter than a host route, such as the protect stage's "10.1.2.0/24" or an
IPv6 "/48": that is a truncated address, not an identifier. A "/32" (IPv4) or
"/128" (IPv6) suffix names one host and is still flagged.
"""

from __future__ import annotations

# Boundaries: the character before / after a match may not continue the token.
_NOT_AFTER_ALNUM = "(?<![0-9A-Za-z])"
_NOT_BEFORE_ALNUM = "(?![0-9A-Za-z])"
_NOT_BEFORE_DIGIT = "(?![0-9])"


def _token(body: str) -> str:
    """`body` as a whole token: no letter or digit right before or after it."""
    return _NOT_AFTER_ALNUM + "(?:" + body + ")" + _NOT_BEFORE_ALNUM


EMAIL = "[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\\.[A-Za-z0-9-]+)*\\.[A-Za-z]{2,}"
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

_HEXTET = "[0-9A-Fa-f]{1,4}"
_IPV6_NETWORK_SUFFIX = "/(?:12[0-7]|1[01][0-9]|[1-9]?[0-9])" + _NOT_BEFORE_DIGIT
_IPV6_END = "(?![0-9A-Fa-f:]|" + _IPV6_NETWORK_SUFFIX + ")"
IPV6 = "(?<![0-9A-Fa-f:])(?:" + _HEXTET + ":){7}" + _HEXTET + _IPV6_END
"""A full (uncompressed) IPv6 address: eight groups; a network with /0../127 is not one."""

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
"""IMEI-like: 15 digits, bare or grouped 2-6-6-1 as printed on devices."""

IMSI = _token("[2-7][0-9]{2}[0-9]{12}")
"""IMSI-like: 15 digits that open with a 3-digit mobile country code (2xx-7xx)."""

CARD_NUMBER = _token(
    "[0-9]{13,19}"
    # as printed: 4-4-4-1..7 (Visa, Mastercard, 19-digit) or 4-6-4..5 (Amex, Diners)
    "|[0-9]{4}([ -])[0-9]{4}\\1[0-9]{4}\\1[0-9]{1,7}"
    "|[0-9]{4}([ -])[0-9]{6}\\2[0-9]{4,5}"
)
"""Card-number-like: 13 to 19 digits, bare or in the groups printed on cards.

Other groupings (a cell id such as "450-05-1101-20345") are not card numbers.
"""

IDENTIFIER_PATTERNS: dict[str, str] = {
    "email": EMAIL,
    "phone": PHONE,
    "ipv4": IPV4,
    "ipv6": IPV6,
    "mac": MAC,
    "imei": IMEI,
    "imsi": IMSI,
    "card_number": CARD_NUMBER,
}


def identifier_patterns() -> dict[str, str]:
    """Detector name -> regex (Java and Python compatible), in a stable order."""
    return dict(IDENTIFIER_PATTERNS)
