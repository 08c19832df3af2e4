"""Generalization: coarse, public categories in place of identifying values.

Each function maps a precise value (a timestamp, a phone number, a user
agent, a URL, a postcode, an IMEI, a MAC address) to a category shared by many
subscribers. Everything is native Spark (column expressions, broadcast
joins), never a Python UDF. A function that needs a reference table takes it
as a DataFrame argument; `stages.reference` loads the shipped and public ones.

Anything that does not parse becomes null, never a pass-through of the raw
value: a generalizer that leaked what it could not read would defeat its
purpose.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StringType

# --- time --------------------------------------------------------------------

TIMESTAMP_UNITS = ("hour", "day")


def generalize_timestamp(ts: Column, unit: str) -> Column:
    """A timestamp truncated to the start of its hour or day, in the session time zone.

    `unit` is "hour" or "day"; anything else raises ValueError. The result is a
    timestamp (midnight for "day"); a null stays null.
    """
    if unit not in TIMESTAMP_UNITS:
        raise ValueError(f"unit must be one of {TIMESTAMP_UNITS}, got {unit!r}")
    return F.date_trunc(unit, ts)


# --- phone numbers -----------------------------------------------------------

# Country calling codes assigned by the ITU-T (Recommendation E.164, list of
# assigned country codes: geographic areas plus the global services 800, 808,
# 870, 881, 882, 883, 888 and 979). Withdrawn or spare codes (e.g. 259, 384,
# 388, 671, 684, 878, 969, 991) are left out. The set is prefix-free, so the
# longest match is also the only one.
COUNTRY_CALLING_CODES: tuple[str, ...] = (
    "1",
    "7",
    "20", "211", "212", "213", "216", "218",
    "220", "221", "222", "223", "224", "225", "226", "227", "228", "229",
    "230", "231", "232", "233", "234", "235", "236", "237", "238", "239",
    "240", "241", "242", "243", "244", "245", "246", "247", "248", "249",
    "250", "251", "252", "253", "254", "255", "256", "257", "258",
    "260", "261", "262", "263", "264", "265", "266", "267", "268", "269",
    "27", "290", "291", "297", "298", "299",
    "30", "31", "32", "33", "34",
    "350", "351", "352", "353", "354", "355", "356", "357", "358", "359",
    "36",
    "370", "371", "372", "373", "374", "375", "376", "377", "378", "379",
    "380", "381", "382", "383", "385", "386", "387", "389",
    "39",
    "40", "41", "420", "421", "423", "43", "44", "45", "46", "47", "48", "49",
    "500", "501", "502", "503", "504", "505", "506", "507", "508", "509",
    "51", "52", "53", "54", "55", "56", "57", "58",
    "590", "591", "592", "593", "594", "595", "596", "597", "598", "599",
    "60", "61", "62", "63", "64", "65", "66",
    "670", "672", "673", "674", "675", "676", "677", "678", "679",
    "680", "681", "682", "683", "685", "686", "687", "688", "689",
    "690", "691", "692",
    "800", "808", "81", "82", "84", "850", "852", "853", "855", "856", "86",
    "870", "880", "881", "882", "883", "886", "888",
    "90", "91", "92", "93", "94", "95",
    "960", "961", "962", "963", "964", "965", "966", "967", "968",
    "970", "971", "972", "973", "974", "975", "976", "977", "979",
    "98", "992", "993", "994", "995", "996", "998",
)  # fmt: skip

PHONE_SEPARATORS = r"[\s\-./()]"
E164_MAX_DIGITS = 15  # country code plus national significant number
E164_MIN_DIGITS = 7
MIN_NATIONAL_DIGITS = 4


def _country_code(digits: Column) -> Column:
    """The ITU country calling code at the start of a digit string (longest match), or null."""
    matched = F.lit(None).cast(StringType())
    for length in (1, 2, 3):  # the outermost `when` (checked first) is the longest
        codes = [c for c in COUNTRY_CALLING_CODES if len(c) == length]
        head = F.substring(digits, 1, length)
        matched = F.when(head.isin(*codes), head).otherwise(matched)
    return matched


def generalize_phone_to_prefix(
    number: Column, default_country_code: str = "82", prefix_digits: int = 2
) -> Column:
    """A phone number generalized to "+<country code> <first national digits>".

    Accepted forms, with any spaces, dashes, dots, slashes and parentheses:
    - international: "+" or "00", then the country code and national number
      ("+82 10-1234-5678", "0082 10 1234 5678", "+44 (0)20 7946 0958": the
      "(0)" trunk notation is dropped); a "tel:" prefix is allowed;
    - national: the trunk prefix 0, then the national number
      ("010-1234-5678", "(02) 123-4567"), read in `default_country_code`.

    Rule: the country code is the longest match against COUNTRY_CALLING_CODES;
    the prefix is the next `prefix_digits` digits of the national significant
    number (after the trunk 0): "+82 10" for a Korean mobile, "+82 21" for a
    Seoul line, "+1 41" for +1 415 .... It is a fixed digit count, not a
    numbering-plan parser, so it does not align with area codes of every
    length. The whole number must have 7 to 15 digits (E.164) and at least
    four after the country code. Digits written after a "+" are taken as
    written ("+82 010..." gives "+82 01"). National numbers without a trunk
    0 (NANP's "(415) 555-0123"), bare MSISDNs without "+", letters and
    extensions give null, like anything else that does not parse.
    Carrier-selection international prefixes (Korea's 001, 002, 00700) are not
    recognized: "001 1 415..." would be read as "00" + "11415...", so write
    such numbers in "+" form before generalizing them.
    """
    if default_country_code not in COUNTRY_CALLING_CODES:
        raise ValueError(f"{default_country_code!r} is not an ITU country calling code")
    if not 1 <= prefix_digits <= MIN_NATIONAL_DIGITS:
        raise ValueError(f"prefix_digits must be between 1 and {MIN_NATIONAL_DIGITS}, got {prefix_digits}")
    text = F.regexp_replace(F.trim(number), r"^(?i)tel:", "")
    compact = F.regexp_replace(F.regexp_replace(text, r"\(0\)", ""), PHONE_SEPARATORS, "")
    international = F.regexp_extract(compact, r"^(?:\+|00)([1-9][0-9]*)$", 1)
    national = F.regexp_extract(compact, r"^0([1-9][0-9]*)$", 1)
    digits = (
        F.when(international != F.lit(""), international)
        .when(national != F.lit(""), F.concat(F.lit(default_country_code), national))
    )
    code = _country_code(digits)
    national_length = F.length(digits) - F.length(code)
    parses = (
        F.length(digits).between(E164_MIN_DIGITS, E164_MAX_DIGITS)
        & (national_length >= F.lit(MIN_NATIONAL_DIGITS))
    )
    prefix = F.substr(digits, F.length(code) + F.lit(1), F.lit(prefix_digits))
    return F.when(parses, F.concat(F.lit("+"), code, F.lit(" "), prefix))


# --- user agents ----------------------------------------------------------------

# Ordered (family, Java regex) rules: the first match wins. Order matters
# because user agents quote each other: Edge, Opera, Samsung Internet, Whale
# and in-app browsers all carry "Chrome/", and Chrome carries "Safari/".
BROWSER_RULES: tuple[tuple[str, str], ...] = (
    ("Bot", r"(?i)(\bbot\b|[a-z]bot[/-]|crawl|spider|slurp|scrap|\byeti/|daumoa|facebookexternalhit"
            r"|bingpreview|mediapartners|headlesschrome|lighthouse)"),
    ("Tool", r"(?i)^(curl|wget|python-requests|python-urllib|python-httpx|aiohttp|go-http-client"
             r"|okhttp|java/|apache-httpclient|libwww-perl|postmanruntime|axios|node-fetch|httpie)"),
    ("KakaoTalk", r"KAKAOTALK"),
    ("Naver App", r"NAVER\((inapp|higgs)"),
    ("Edge", r"\b(Edg|Edge|EdgA|EdgiOS)/"),
    ("Opera", r"(\bOPR/|\bOPiOS/|\bOpera\b)"),
    ("Samsung Internet", r"\bSamsungBrowser/"),
    ("Whale", r"\bWhale/"),
    ("Firefox", r"\b(Firefox|FxiOS)/"),
    ("Chrome", r"\b(Chrome|CriOS|Chromium)/"),
    ("Safari", r"\bSafari/"),
    ("Internet Explorer", r"(\bMSIE |\bTrident/)"),
)
# Android before Linux (Android agents say "Linux"), iOS before Mac OS X
# (iPhone agents say "like Mac OS X"), Chrome OS before Linux ("X11; CrOS").
OS_RULES: tuple[tuple[str, str], ...] = (
    ("Android", r"\bAndroid\b"),
    ("iOS", r"(\biPhone\b|\biPad\b|\biPod\b|\biOS\b)"),
    ("Windows", r"\bWindows\b"),
    ("Chrome OS", r"\bCrOS\b"),
    ("Mac OS X", r"(\bMac OS X\b|\bMacintosh\b)"),
    ("Linux", r"(\bLinux\b|\bX11\b)"),
)
OTHER = "Other"
AUTOMATED_FAMILIES = ("Bot", "Tool")


def _first_matching(text: Column, rules: tuple[tuple[str, str], ...]) -> Column:
    matched = F.lit(OTHER)
    for family, pattern in reversed(rules):  # built inside out: the first rule is checked first
        matched = F.when(text.rlike(pattern), F.lit(family)).otherwise(matched)
    return matched


def user_agent_browser(ua: Column) -> Column:
    """Browser family of a User-Agent string by BROWSER_RULES; "Other" if none match.

    Crawlers are "Bot", HTTP libraries and command-line clients "Tool". A null
    or blank user agent gives null.
    """
    text = F.trim(ua)
    return F.when(text != F.lit(""), _first_matching(text, BROWSER_RULES))


def user_agent_os(ua: Column) -> Column:
    """Operating-system family of a User-Agent string by OS_RULES; "Other" if none match.

    A bot's or tool's claimed platform is not a device a subscriber runs, so
    their OS is "Other". A null or blank user agent gives null.
    """
    text = F.trim(ua)
    automated = user_agent_browser(ua).isin(*AUTOMATED_FAMILIES)
    family = F.when(automated, F.lit(OTHER)).otherwise(_first_matching(text, OS_RULES))
    return F.when(text != F.lit(""), family)


def generalize_user_agent(ua: Column) -> Column:
    """A User-Agent string as struct<browser_family: string, os_family: string>.

    See `user_agent_browser` and `user_agent_os`; a null or blank user agent
    gives a null struct.
    """
    families = F.struct(
        user_agent_browser(ua).alias("browser_family"), user_agent_os(ua).alias("os_family")
    )
    return F.when(F.trim(ua) != F.lit(""), families)


# --- URLs and domains -------------------------------------------------------

# Multi-label public suffixes: a subset of the ICANN section of the Public
# Suffix List (https://publicsuffix.org/list/public_suffix_list.dat, Mozilla),
# covering Korea's second-level domains and the common country ones. A
# registered domain is one label more than its public suffix; any other host
# is taken to sit under a one-label suffix (its TLD).
MULTI_LABEL_PUBLIC_SUFFIXES: tuple[str, ...] = (
    # .kr: organisational second-level domains
    "ac.kr", "co.kr", "es.kr", "go.kr", "hs.kr", "kg.kr", "mil.kr", "ms.kr", "ne.kr",
    "or.kr", "pe.kr", "re.kr", "sc.kr",
    # .kr: the regional second-level domains
    "busan.kr", "chungbuk.kr", "chungnam.kr", "daegu.kr", "daejeon.kr", "gangwon.kr",
    "gwangju.kr", "gyeongbuk.kr", "gyeonggi.kr", "gyeongnam.kr", "incheon.kr", "jeju.kr",
    "jeonbuk.kr", "jeonnam.kr", "seoul.kr", "ulsan.kr",
    # other countries
    "co.uk", "org.uk", "ac.uk", "gov.uk", "me.uk", "ltd.uk", "plc.uk", "net.uk", "nhs.uk",
    "com.au", "net.au", "org.au", "edu.au", "gov.au",
    "co.jp", "ne.jp", "or.jp", "ac.jp", "go.jp",
    "com.cn", "net.cn", "org.cn", "gov.cn", "edu.cn",
    "com.br", "net.br", "org.br", "gov.br",
    "co.in", "net.in", "org.in", "gov.in", "ac.in",
    "co.nz", "net.nz", "org.nz", "govt.nz", "ac.nz",
    "com.tw", "net.tw", "org.tw", "gov.tw", "edu.tw",
    "com.hk", "net.hk", "org.hk", "gov.hk", "edu.hk",
    "com.sg", "net.sg", "org.sg", "gov.sg", "edu.sg",
    "co.za", "org.za", "gov.za", "ac.za",
    "com.mx", "com.ar", "com.tr", "com.vn", "com.my", "com.ph",
    "co.id", "co.th", "co.il",
)  # fmt: skip

_LABEL = r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?"
_TLD = r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?"  # never all digits: rules out IPv4 literals
HOSTNAME_PATTERN = rf"^({_LABEL}\.)+{_TLD}$"
MAX_HOSTNAME_LENGTH = 253


def url_host(url: Column) -> Column:
    """The host of a URL or bare host, lowercase, without a leading "www."; else null.

    Drops the scheme, userinfo, port, path, query and fragment and a trailing
    dot. IP literals (IPv4, bracketed IPv6), single-label names and anything
    that is not a valid DNS name give null. Internationalized names must be in
    their ASCII (punycode, "xn--") form.
    """
    text = F.lower(F.trim(url))
    without_scheme = F.regexp_replace(text, r"^([a-z][a-z0-9+.-]*:)?//", "")
    authority = F.regexp_extract(without_scheme, r"^([^/?#]*)", 1)
    host_port = F.regexp_replace(authority, r"^.*@", "")
    host = F.regexp_replace(F.regexp_replace(host_port, r":[0-9]*$", ""), r"\.$", "")
    valid = host.rlike(HOSTNAME_PATTERN) & (F.length(host) <= F.lit(MAX_HOSTNAME_LENGTH))
    return F.when(valid, F.regexp_replace(host, r"^www\.", ""))


def _registered_domain(host: Column) -> Column:
    labels = F.split(host, r"\.")
    n_labels = F.size(labels)
    registered = F.when(n_labels >= F.lit(2), F.array_join(F.slice(labels, -2, 2), "."))
    suffix_lengths = sorted({s.count(".") + 1 for s in MULTI_LABEL_PUBLIC_SUFFIXES})
    for length in suffix_lengths:  # the outermost `when` (checked first) is the longest suffix
        suffixes = [s for s in MULTI_LABEL_PUBLIC_SUFFIXES if s.count(".") + 1 == length]
        tail = F.array_join(F.slice(labels, -length, length), ".")
        registered = (
            F.when(tail.isin(*suffixes) & (n_labels > F.lit(length)),
                   F.array_join(F.slice(labels, -(length + 1), length + 1), "."))
            .when(tail.isin(*suffixes), F.lit(None).cast(StringType()))  # the host is a suffix
            .otherwise(registered)
        )
    return registered


def generalize_url_to_domain(url: Column) -> Column:
    """The registered domain (eTLD+1) of a URL or bare host, lowercase; else null.

    "https://user@www.News.Example.co.kr:8443/a?b#c" and "www.Example.co.kr/path?x=1"
    both give "example.co.kr"; "chzzk.naver.com" gives "naver.com". Public
    suffixes are MULTI_LABEL_PUBLIC_SUFFIXES, else the TLD; a host that is
    itself a public suffix ("co.kr") has no registered domain. See `url_host`
    for what does not parse (IP literals, garbage, null or empty: null).
    """
    return _registered_domain(url_host(url))


UNCATEGORIZED = "uncategorized"


def with_domain_category(
    df: DataFrame, domain_col: str, categories: DataFrame, out_col: str = "domain_category"
) -> DataFrame:
    """Add `out_col`: the category of the host in `domain_col` (a URL, host or domain).

    `categories` has columns (domain, category). The host itself is looked up
    first (so "chzzk.naver.com" can differ from "naver.com"), then its
    registered domain; anything else, unparseable hosts included, is
    "uncategorized". A domain listed twice keeps its alphabetically first
    category, so the join never multiplies rows. Replaces an existing `out_col`.
    """
    table = categories.groupBy(F.lower(F.trim(F.col("domain"))).alias("_category_key")).agg(
        F.min("category").alias("_category")
    )
    host_match = table.select(
        F.col("_category_key").alias("_category_host"), F.col("_category").alias("_host_category")
    )
    domain_match = table.select(
        F.col("_category_key").alias("_category_domain"), F.col("_category").alias("_domain_category")
    )
    kept = [F.col(c) for c in df.columns if c != out_col]
    category = F.coalesce(F.col("_host_category"), F.col("_domain_category"), F.lit(UNCATEGORIZED))
    return (
        df.withColumn("_category_host", url_host(F.col(domain_col)))
        .withColumn("_category_domain", _registered_domain(F.col("_category_host")))
        .join(F.broadcast(host_match), on="_category_host", how="left")
        .join(F.broadcast(domain_match), on="_category_domain", how="left")
        .select(*kept, category.alias(out_col))
    )


# --- postcodes ---------------------------------------------------------------

# Korea Post's five-digit postcodes (national basic area numbers, in use since
# 1 August 2015): the first two digits give the first-level region. Ranges
# are the zones allocated to each region, reserved numbers included (Seoul's
# 09, Gyeonggi's 19-20, South Jeolla's 60). Keys are exactly the regions of
# config/pipeline.yaml.
POSTCODE_ZONES: dict[str, tuple[int, int]] = {
    "Seoul": (1, 9),
    "Busan": (46, 49),
    "Daegu": (41, 43),
    "Incheon": (21, 23),
    "Gwangju": (61, 62),
    "Daejeon": (34, 35),
    "Ulsan": (44, 45),
    "Sejong": (30, 30),
    "Gyeonggi": (10, 20),
    "Gangwon": (24, 26),
    "North Chungcheong": (27, 29),
    "South Chungcheong": (31, 33),
    "North Jeolla": (54, 56),
    "South Jeolla": (57, 60),
    "North Gyeongsang": (36, 40),
    "South Gyeongsang": (50, 53),
    "Jeju": (63, 63),
}


def generalize_postcode_to_region(postcode: Column) -> Column:
    """A Korean five-digit postcode to its first-level region (POSTCODE_ZONES); else null.

    Surrounding spaces are ignored. Pre-2015 six-digit codes ("123-456"),
    zones 00 and 64-99, and anything else give null.
    """
    text = F.trim(postcode)
    zones = [
        item
        for region, (first, last) in POSTCODE_ZONES.items()
        for zone in range(first, last + 1)
        for item in (F.lit(f"{zone:02d}"), F.lit(region))
    ]
    region = F.try_element_at(F.create_map(*zones), F.substring(text, 1, 2))
    return F.when(text.rlike(r"^[0-9]{5}$"), region)


# --- devices -------------------------------------------------------------------

IMEI_SEPARATORS = r"[\s\-/.]"


def imei_tac(imei: Column) -> Column:
    """The type allocation code (first 8 digits) of an IMEI or IMEISV; else null.

    Accepts 15 digits (IMEI with its check digit), 14 (without it) or 16
    (IMEISV), with optional spaces, dashes, slashes or dots between groups.
    The check digit is not verified: the TAC is read from the same place.
    """
    digits = F.regexp_replace(F.trim(imei), IMEI_SEPARATORS, "")
    return F.when(digits.rlike(r"^[0-9]{14,16}$"), F.substring(digits, 1, 8))


def with_device_model(
    df: DataFrame,
    imei_col: str,
    tac_table: DataFrame,
    brand_col: str = "device_brand",
    model_col: str = "device_model",
) -> DataFrame:
    """Add the device's brand and model, looked up by the TAC of `imei_col`.

    `tac_table` has columns (tac, brand, model). A TAC listed more than once
    keeps its smallest (brand, model), so the join never multiplies rows.
    Unknown TACs and IMEIs that do not parse give null brand and model.
    Replaces existing columns named `brand_col` or `model_col`.
    """
    table = tac_table.groupBy(F.col("tac").alias("_tac")).agg(
        F.min(F.struct("brand", "model")).alias("_device")
    )
    kept = [F.col(c) for c in df.columns if c not in (brand_col, model_col)]
    return (
        df.withColumn("_tac", imei_tac(F.col(imei_col)))
        .join(F.broadcast(table), on="_tac", how="left")
        .select(
            *kept,
            F.col("_device.brand").alias(brand_col),
            F.col("_device.model").alias(model_col),
        )
    )


MAC_PATTERN = (
    r"^([0-9a-f]{2}([:-])[0-9a-f]{2}(\2[0-9a-f]{2}){4}"  # 00:1a:11:... or 00-1A-11-...
    r"|[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}"  # 001a.11ab.cdef (Cisco)
    r"|[0-9a-f]{12})$"  # 001a11abcdef
)
# The U/L bit (0x02 of the first octet) set: the second hex digit is one of these.
LOCALLY_ADMINISTERED = r"^.[2367ABEF]"


def mac_oui(mac: Column) -> Column:
    """The OUI of a MAC address as 6 uppercase hex digits; else null.

    Accepts colon, dash, dot (Cisco) or bare hex notation in any case.
    Locally administered addresses (randomized "private" Wi-Fi addresses among
    them) carry no vendor and give null, as do malformed ones. The few
    pre-1990 registry entries with that bit set (e.g. 3Com's 02608C) are
    unreachable by design: they cannot be told apart from random addresses.
    """
    text = F.lower(F.trim(mac))
    oui = F.upper(F.substring(F.regexp_replace(text, r"[:.\-]", ""), 1, 6))
    return F.when(text.rlike(MAC_PATTERN) & ~oui.rlike(LOCALLY_ADMINISTERED), oui)


def with_mac_vendor(
    df: DataFrame, mac_col: str, oui_table: DataFrame, out_col: str = "mac_vendor"
) -> DataFrame:
    """Add `out_col`: the IEEE-registered vendor of the OUI of `mac_col`.

    `oui_table` has columns (oui, vendor), oui as 6 hex digits (any case). An
    OUI listed more than once keeps its alphabetically first vendor, so the
    join never multiplies rows. Locally administered, malformed and
    unregistered addresses give null. Replaces an existing `out_col`.
    """
    table = oui_table.groupBy(F.upper(F.trim(F.col("oui"))).alias("_oui")).agg(
        F.min("vendor").alias("_vendor")
    )
    kept = [F.col(c) for c in df.columns if c != out_col]
    return (
        df.withColumn("_oui", mac_oui(F.col(mac_col)))
        .join(F.broadcast(table), on="_oui", how="left")
        .select(*kept, F.col("_vendor").alias(out_col))
    )
