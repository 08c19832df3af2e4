"""Synthetic landing data for the five sources: the embedded default data.

Pure Spark: every value is an expression over `spark.range` ids or the
subscribers frame, every random draw a hash of (seed, tag, key columns), so a
seed gives the same rows whatever the partitioning. No UDFs, no row loops.

Output is the landing zone as operators export it: exactly the canonical
columns of `core.schemas.SOURCES`, in order, all strings (timestamps
'yyyy-MM-dd HH:mm:ss' UTC, dates 'yyyy-MM-dd', booleans 'true'/'false').
Monthly charges are in thousands of won (69.00 is 69,000 won a month).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from core.schemas import (
    CALL_RECORDS,
    DEVICES,
    NETWORK_FLOWS,
    SUBSCRIBERS,
    WEB_VISITS,
    SourceSpec,
)

# Signups, births and first-seen dates are drawn before this day.
REFERENCE_DATE = dt.date(2026, 11, 1)

# Population in millions: keys are exactly config/pipeline.yaml `regions`, in order.
REGION_WEIGHTS: dict[str, float] = {
    "Seoul": 9.4,
    "Busan": 3.3,
    "Daegu": 2.4,
    "Incheon": 3.0,
    "Gwangju": 1.4,
    "Daejeon": 1.4,
    "Ulsan": 1.1,
    "Sejong": 0.4,
    "Gyeonggi": 13.6,
    "Gangwon": 1.5,
    "North Chungcheong": 1.6,
    "South Chungcheong": 2.1,
    "North Jeolla": 1.8,
    "South Jeolla": 1.8,
    "North Gyeongsang": 2.6,
    "South Gyeongsang": 3.3,
    "Jeju": 0.7,
}
REGIONS = tuple(REGION_WEIGHTS)
# First two digits of the five-digit postcodes of each region (inclusive range).
POSTCODE_PREFIXES: dict[str, tuple[int, int]] = {
    "Seoul": (1, 9),
    "Busan": (46, 49),
    "Daegu": (41, 43),
    "Incheon": (21, 23),
    "Gwangju": (61, 62),
    "Daejeon": (34, 35),
    "Ulsan": (44, 45),
    "Sejong": (30, 30),
    "Gyeonggi": (10, 18),
    "Gangwon": (24, 26),
    "North Chungcheong": (27, 29),
    "South Chungcheong": (31, 33),
    "North Jeolla": (54, 56),
    "South Jeolla": (57, 59),
    "North Gyeongsang": (36, 40),
    "South Gyeongsang": (50, 53),
    "Jeju": (63, 63),
}

# (name, weight, monthly charge in thousands of won)
PLANS: tuple[tuple[str, float, float], ...] = (
    ("5g_standard", 30, 69.0),
    ("lte_basic", 17, 33.0),
    ("5g_slim", 15, 49.0),
    ("lte_unlimited", 14, 59.0),
    ("5g_premium", 12, 95.0),
    ("prepaid", 7, 22.0),
    ("5g_senior", 5, 39.0),
)
# (name, take-up probability, monthly price in thousands of won)
ADDONS: tuple[tuple[str, float, float], ...] = (
    ("device_insurance", 0.30, 5.5),
    ("music_streaming", 0.18, 7.9),
    ("video_streaming", 0.15, 9.9),
    ("cloud_storage", 0.10, 3.3),
    ("extra_data", 0.08, 11.0),
    ("family_share", 0.06, 4.4),
    ("roaming_pass", 0.03, 8.8),
)
CONTRACTS = (("month-to-month", 0.45), ("one_year", 0.20), ("two_year", 0.35))
PAYMENT_METHODS = (
    ("credit_card", 0.46),
    ("bank_transfer", 0.34),
    ("debit_card", 0.12),
    ("giro", 0.08),
)
CARD_PREFIXES = ("404825", "457972", "516459", "540926", "552115", "944003")
GENDERS = (("female", 0.495), ("male", 0.495), ("other", 0.01))
# (youngest, oldest, weight): ages 16-90 at REFERENCE_DATE
AGE_BANDS = ((16, 19, 5), (20, 29, 16), (30, 39, 17), (40, 49, 19), (50, 59, 19),
             (60, 69, 14), (70, 79, 7), (80, 90, 3))

FAMILY_NAMES = (
    ("Kim", 21.5), ("Lee", 14.7), ("Park", 8.4), ("Choi", 4.7), ("Jung", 4.4),
    ("Kang", 2.3), ("Cho", 2.1), ("Yoon", 2.1), ("Jang", 2.0), ("Lim", 1.7),
    ("Han", 1.5), ("Oh", 1.5), ("Seo", 1.5), ("Shin", 1.4), ("Kwon", 1.4),
    ("Hwang", 1.4), ("Ahn", 1.3), ("Song", 1.3), ("Jeon", 1.1), ("Hong", 1.1),
    ("Yoo", 1.0), ("Ko", 0.9), ("Moon", 0.9), ("Yang", 0.9), ("Son", 0.9),
    ("Bae", 0.8), ("Baek", 0.8), ("Heo", 0.6), ("Nam", 0.5), ("Noh", 0.4),
)
FEMALE_NAMES = (
    "Seoyeon", "Jiwoo", "Seoyun", "Jiyoo", "Hayoon", "Minseo", "Subin", "Jimin",
    "Yejin", "Eunji", "Soyeon", "Hyejin", "Jisoo", "Minji", "Yuna", "Chaewon",
    "Dahyun", "Sujin", "Eunseo", "Hana", "Mikyung", "Younghee", "Sunhee", "Jiyeon",
)
MALE_NAMES = (
    "Minjun", "Seojun", "Doyun", "Yejun", "Siwoo", "Hajun", "Jihoon", "Junwoo",
    "Hyunwoo", "Jiho", "Dongho", "Sungmin", "Jaehyun", "Taeyang", "Youngsoo",
    "Sangwoo", "Minho", "Joonho", "Kyungsoo", "Seungwoo", "Donghyun", "Jinwoo",
)
NEUTRAL_NAMES = ("Haneul", "Jiwon", "Yoonseo", "Sol", "Bom", "Hayan", "Eun", "Seung")
EMAIL_DOMAINS = (("example.com", 5), ("example.net", 3), ("example.org", 2), ("mail.example", 1))

# (brand, model, os, TAC, weight): invented TACs, one model each.
DEVICE_MODELS: tuple[tuple[str, str, str, str, float], ...] = (
    ("Samsung", "Galaxy S24", "Android 14", "35162874", 13),
    ("Samsung", "Galaxy S23", "Android 14", "35081529", 11),
    ("Samsung", "Galaxy A54 5G", "Android 14", "35489612", 9),
    ("Samsung", "Galaxy Z Flip5", "Android 14", "35530217", 7),
    ("Samsung", "Galaxy S22", "Android 13", "35270461", 6),
    ("Samsung", "Galaxy A34 5G", "Android 13", "35489744", 5),
    ("Samsung", "Galaxy Z Fold5", "Android 14", "35530309", 3),
    ("Samsung", "Galaxy Tab S9", "Android 14", "35617055", 3),
    ("Samsung", "Galaxy Watch6", "Wear OS 4", "35720486", 3),
    ("Apple", "iPhone 15 Pro", "iOS 17", "35391077", 9),
    ("Apple", "iPhone 15", "iOS 17", "35390912", 7),
    ("Apple", "iPhone 14", "iOS 17", "35297133", 6),
    ("Apple", "iPhone 13", "iOS 16", "35346812", 5),
    ("Apple", "iPad Air (5th gen)", "iPadOS 17", "35593218", 2),
    ("LG", "Velvet", "Android 13", "35438906", 2),
    ("LG", "V50 ThinQ", "Android 12", "35226410", 1),
    ("Google", "Pixel 8", "Android 14", "35822471", 1),
    ("Xiaomi", "Redmi Note 13", "Android 13", "86471203", 1),
)
DEVICES_PER_SUBSCRIBER = (0.55, 0.28, 0.12, 0.05)  # weights of 1, 2, 3, 4 devices

# Share of a day's activity in each UTC hour (Korea is UTC+9; the shape is a
# synthetic evening-peaked profile, not a time-zone model).
HOURLY_WEIGHTS = (
    3.0, 1.8, 1.0, 0.7, 0.6, 0.8, 1.6, 3.0, 4.4, 5.0, 5.2, 5.4,
    5.8, 5.5, 5.3, 5.3, 5.5, 5.9, 6.3, 6.8, 7.2, 7.4, 6.4, 4.8,
)
# Spread of a subscriber's lasting activity level (log scale), shared by all sources.
ACTIVITY_SIGMA = 0.8

CALL_TYPES = (("voice", 0.55), ("sms", 0.35), ("data", 0.10))
CELLS_PER_REGION = 400
ROAMING_RATE = 0.015

PROTOCOLS = (("tcp", 0.74), ("udp", 0.24), ("icmp", 0.02))
TCP_PORTS = ((443, 62), (80, 14), (5228, 6), (5223, 5), (8080, 3), (8443, 3),
             (993, 2), (587, 1), (1935, 1), (22, 0.5))
UDP_PORTS = ((443, 50), (53, 30), (3478, 8), (123, 4), (4500, 4), (5353, 2), (19302, 2))
SERVER_POOL = 20_000  # distinct destination servers; popularity is skewed
PUBLIC_FIRST_OCTETS = (
    13, 23, 31, 34, 35, 52, 54, 58, 59, 61, 104, 110, 112, 114, 115, 118,
    119, 121, 125, 142, 151, 157, 175, 180, 182, 183, 203, 210, 211, 218, 220, 223,
)
IPV6_SHARE = 0.10

# Plausible services (companies, not people), most visited first: ranks feed a Zipf law.
DOMAINS = (
    "naver.com", "youtube.com", "google.com", "daum.net", "kakao.com", "coupang.com",
    "instagram.com", "namu.wiki", "tistory.com", "netflix.com", "facebook.com", "x.com",
    "gmarket.co.kr", "11st.co.kr", "wikipedia.org", "tiktok.com", "baemin.com",
    "musinsa.com", "dcinside.com", "fmkorea.com", "ssg.com", "auction.co.kr",
    "kurly.com", "webtoons.com", "melon.com", "chzzk.naver.com", "tving.com",
    "wavve.com", "coupangplay.com", "afreecatv.com", "twitch.tv", "op.gg",
    "inven.co.kr", "ruliweb.com", "clien.net", "theqoo.net", "nexon.com",
    "netmarble.com", "ncsoft.com", "spotify.com", "apple.com", "microsoft.com",
    "amazon.com", "aliexpress.com", "temu.com", "lotteon.com", "yes24.com",
    "kyobobook.co.kr", "aladin.co.kr", "ridibooks.com", "kakaopage.com", "yna.co.kr",
    "chosun.com", "joongang.co.kr", "donga.com", "hani.co.kr", "khan.co.kr",
    "kbs.co.kr", "mbc.co.kr", "sbs.co.kr", "jtbc.co.kr", "ytn.co.kr", "mk.co.kr",
    "hankyung.com", "upbit.com", "bithumb.com", "toss.im", "kakaobank.com",
    "kbstar.com", "shinhan.com", "wooribank.com", "hanabank.com", "samsungcard.com",
    "hyundaicard.com", "gov.kr", "hometax.go.kr", "nhis.or.kr", "weather.go.kr",
    "letskorail.com", "koreanair.com", "flyasiana.com", "yanolja.com", "agoda.com",
    "booking.com", "airbnb.com", "daangn.com", "zigbang.com", "jobkorea.co.kr",
    "saramin.co.kr", "wanted.co.kr", "linkedin.com", "github.com", "notion.so",
    "zoom.us", "discord.com", "reddit.com", "pinterest.com", "samsung.com",
    "lge.co.kr", "tmap.co.kr",
)
DOMAIN_ZIPF_EXPONENT = 1.05
# (path, followed by a numeric id)
URL_PATHS = (("/", False), ("/search", False), ("/news/article/", True), ("/watch", False),
             ("/product/", True), ("/item/", True), ("/post/", True), ("/login", False),
             ("/api/v1/feed", False), ("/static/app.js", False), ("/images/", True),
             ("/cart", False), ("/live/", True), ("/category/", True))
QUERY_SHARE = 0.3
SEARCH_TERMS = ("weather", "ktx+timetable", "kimchi+recipe", "laptop", "concert+tickets",
                "exchange+rate", "running+shoes", "movie+times", "bus+route", "air+quality")
USER_AGENTS = (
    "Mozilla/5.0 (Linux; Android 14; SM-S921N) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; SM-S911N) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 KAKAOTALK 10.6.5",
    "Mozilla/5.0 (Linux; Android 13; SM-A546N) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/123.0.0.0 Mobile Safari/537.36 NAVER(inapp; search; 1010; 12.3.1)",
    "Mozilla/5.0 (Linux; Android 14; SM-F731N) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
)
USER_AGENT_WEIGHTS = (24, 16, 22, 12, 10, 8, 4, 4)

# Corruption kinds of inject_bad_rows and the raw values they write.
UNPARSEABLE_VALUES = ("12kb", "n/a", "2026-13-45 99:00")
NOT_ALLOWED_VALUES = ("unknown", "invalid", "?")
PARSED_DTYPES = ("int", "bigint", "double", "date", "timestamp", "boolean")

_HASH_RANGE = 2**52
# Hash keys staged once per subscriber and once per record; every draw hashes them.
SUBSCRIBER_KEY = "subscriber_key"
RECORD_KEY = "record_key"


# --- random draws ---------------------------------------------------------
#
# Hot-path notes: `format_string` costs microseconds a call and an expression
# reused inside a `when` branch is evaluated again each time, so values used
# more than once are staged as columns first and strings are built by concat.


def stream_id(seed: int, tag: str) -> int:
    """A signed 64-bit number naming the random stream of (seed, tag)."""
    digest = hashlib.blake2b(f"{seed}:{tag}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def random_bits(seed: int, tag: str, *keys: Column | str) -> Column:
    """64 random bits fixed by seed, tag and key columns: xxhash64 of them."""
    return F.xxhash64(F.lit(stream_id(seed, tag)), *keys)


def uniform(seed: int, tag: str, *keys: Column | str) -> Column:
    """Uniform draw in (0, 1) fixed by seed, tag and key columns, never 0 or 1."""
    hashed = random_bits(seed, tag, *keys)
    return (F.pmod(hashed, F.lit(_HASH_RANGE)) + F.lit(0.5)) / F.lit(float(_HASH_RANGE))


def normal(seed: int, tag: str, *keys: Column | str) -> Column:
    """Standard normal draw (Box-Muller over two hashed uniforms)."""
    radius = F.sqrt(F.lit(-2.0) * F.log(uniform(seed, f"{tag}:r", *keys)))
    return radius * F.cos(F.lit(2 * math.pi) * uniform(seed, f"{tag}:t", *keys))


def lognormal(median: float, sigma: float, z: Column) -> Column:
    """Lognormal value with the given median from a standard normal draw."""
    return F.exp(F.lit(math.log(median)) + F.lit(sigma) * z)


def alias_table(weights: Sequence[float]) -> tuple[list[float], list[int]]:
    """Walker's alias table (Vose's construction) of positive weights.

    Slot i keeps index i with probability prob[i], else gives alias[i]; a
    uniform slot then draws an index with exactly the given weights.
    """
    n = len(weights)
    total = float(sum(weights))
    scaled = [w * n / total for w in weights]
    prob, alias = [1.0] * n, list(range(n))
    small = [i for i, p in enumerate(scaled) if p < 1.0]
    large = [i for i, p in enumerate(scaled) if p >= 1.0]
    while small and large:
        low, high = small.pop(), large.pop()
        prob[low], alias[low] = scaled[low], high
        scaled[high] -= 1.0 - scaled[low]
        (small if scaled[high] < 1.0 else large).append(high)
    return prob, alias


def weighted_index(weights: Sequence[float], u: Column) -> Column:
    """0-based index drawn with the given weights from one uniform, in constant time.

    Alias method: the integer part of u*n picks a slot, the fraction decides
    between the slot and its alias; branch-free so `u` is computed once. (An
    inverse CDF, `size(filter(cdf, x -> x <= u))`, is equivalent but its
    lambda is interpreted, not compiled: ~30x slower on 100 weights.)
    """
    prob, alias = alias_table(weights)
    scaled = u * F.lit(float(len(weights)))
    slot = F.floor(scaled).cast("int")
    takes_alias = ((scaled - slot) >= pick(prob, slot)).cast("int")
    return slot + (pick(alias, slot) - slot) * takes_alias


def uniform_index(n: int, u: Column) -> Column:
    """0-based index in [0, n) from a uniform draw."""
    return F.floor(u * F.lit(n)).cast("int")


def pick(values: Sequence[object], index: Column) -> Column:
    """The element of a literal list at a 0-based index column."""
    return F.element_at(F.array(*[F.lit(v) for v in values]), (index + F.lit(1)).cast("int"))


def pick_weighted(pairs: Sequence[tuple[object, float]], u: Column) -> Column:
    """A value from (value, weight) pairs drawn with their weights."""
    return pick([v for v, _ in pairs], weighted_index([w for _, w in pairs], u))


def zero_pad(number: Column, width: int) -> Column:
    """Decimal text of a non-negative integer below 10**width, left-padded with zeros."""
    return F.lpad(number.cast("long").cast("string"), width, "0")


def random_digits(n_digits: int, seed: int, tag: str, *keys: Column | str) -> Column:
    """String of `n_digits` uniformly random decimal digits (at most 15)."""
    hashed = random_bits(seed, tag, *keys)
    return zero_pad(F.pmod(hashed, F.lit(10**n_digits)), n_digits)


def decimal_text(value: Column, places: int) -> Column:
    """A non-negative number as text with exactly `places` decimals ('1.500')."""
    scaled = F.floor(value * F.lit(10**places) + F.lit(0.5))
    whole = F.floor(scaled / F.lit(10**places)).cast("string")
    return F.concat(whole, F.lit("."), zero_pad(F.pmod(scaled, F.lit(10**places)), places))


def time_text(day: str | Column, second_of_day: Column) -> Column:
    """'yyyy-MM-dd HH:mm:ss' of a second (0..86399) of a day given as 'yyyy-MM-dd'."""
    day_text = F.lit(day) if isinstance(day, str) else day
    return F.concat(
        day_text,
        F.lit(" "),
        zero_pad(F.floor(second_of_day / F.lit(3600)), 2),
        F.lit(":"),
        zero_pad(F.pmod(F.floor(second_of_day / F.lit(60)), F.lit(60)), 2),
        F.lit(":"),
        zero_pad(F.pmod(second_of_day, F.lit(60)), 2),
    )


def daily_count(seed: int, tag: str, mean: float, sigma_day: float, cap: int) -> Column:
    """Heavy-tailed records per subscriber and day with the given mean.

    A lasting activity level (the same for every source and day) times a
    daily lognormal factor, stochastically rounded so the mean holds.
    """
    key = F.col(SUBSCRIBER_KEY)
    sigma2 = ACTIVITY_SIGMA**2 + sigma_day**2
    log_rate = (
        F.lit(math.log(mean) - sigma2 / 2)
        + F.lit(ACTIVITY_SIGMA) * normal(seed, "activity", key)
        + F.lit(sigma_day) * normal(seed, f"{tag}:count", key)
    )
    rounded = F.floor(F.exp(log_rate) + uniform(seed, f"{tag}:round", key))
    return F.least(rounded, F.lit(cap)).cast("int")


def event_time(day: dt.date, seed: int, tag: str, *keys: Column | str) -> Column:
    """'yyyy-MM-dd HH:mm:ss' inside `day`, the hour drawn from the diurnal profile."""
    hour = weighted_index(HOURLY_WEIGHTS, uniform(seed, f"{tag}:hour", *keys))
    second = uniform_index(3600, uniform(seed, f"{tag}:second", *keys))
    return time_text(day.isoformat(), hour * F.lit(3600) + second)


def luhn_check_digit(payload: Column, length: int) -> Column:
    """Luhn check digit of a fixed-length digit string, as a one-character string.

    Pass a column (not a long expression): the payload is read once per digit.
    """
    doubled = [(2 * d) % 9 if d != 9 else 9 for d in range(10)]
    terms = []
    for i in range(length):
        digit = F.ascii(F.substring(payload, i + 1, 1)) - F.lit(ord("0"))
        from_right = length - i  # 1 = the digit next to the check digit: doubled
        terms.append(pick(doubled, digit) if from_right % 2 else digit)
    total = sum(terms[1:], terms[0])
    return F.pmod(F.lit(10) - F.pmod(total, F.lit(10)), F.lit(10)).cast("string")


# --- subscriber-level helpers shared by the sources -------------------------


def account_number(account_id: Column) -> Column:
    """The number inside an account id ('KR00000042' -> 42)."""
    return F.substring(account_id, 3, 12).try_cast("long")


def subscriber_ip(seed: int) -> Column:
    """The subscriber's address: a unique 10.0.0.0/8 IPv4, or for some a 2001:db8::/32 IPv6."""
    key = F.col(SUBSCRIBER_KEY)
    # odd multiplier: a bijection of the 24-bit host numbers, so addresses are unique
    number = account_number(F.col("account_id"))
    host = F.pmod(number * F.lit(2_654_435) + F.lit(seed % 2**24), F.lit(2**24))
    ipv4 = F.concat_ws(
        ".",
        F.lit("10"),
        F.pmod(F.shiftright(host, 16), F.lit(256)).cast("string"),
        F.pmod(F.shiftright(host, 8), F.lit(256)).cast("string"),
        F.pmod(host, F.lit(256)).cast("string"),
    )
    interface = F.lit(1) + F.pmod(random_bits(seed, "ipv6:host", key), F.lit(65535))
    ipv6 = F.concat_ws(
        ":",
        F.lit("2001:db8"),
        F.lower(F.hex(F.lit(0x100) + F.shiftright(host, 16))),
        F.lower(F.hex(F.pmod(host, F.lit(65536)))),
        F.lit(""),
        F.lower(F.hex(interface)),
    )
    return F.when(uniform(seed, "ipv6", key) < F.lit(IPV6_SHARE), ipv6).otherwise(ipv4)


def region_number(region: Column) -> Column:
    """1-based position of a region in REGIONS (0 when unknown)."""
    return F.array_position(F.array(*[F.lit(r) for r in REGIONS]), region).cast("int")


def with_subscriber_key(df: DataFrame) -> DataFrame:
    """Add the subscriber's hash key, the input of every per-subscriber draw."""
    return df.withColumn(SUBSCRIBER_KEY, F.xxhash64(F.col("account_id")))


def with_records_per_subscriber(df: DataFrame, count: Column, keep: Sequence[str]) -> DataFrame:
    """One row per record: account_id, subscriber key and `keep`, `seq` 1..count, record key."""
    columns = ["account_id", SUBSCRIBER_KEY, *keep]
    return (
        df.select(*columns, count.alias("n_records"))
        .filter(F.col("n_records") > 0)
        .select(*columns, F.explode(F.sequence(F.lit(1), F.col("n_records"))).alias("seq"))
        .withColumn(RECORD_KEY, F.xxhash64(F.col(SUBSCRIBER_KEY), F.col("seq")))
    )


def select_landing(df: DataFrame, source: SourceSpec) -> DataFrame:
    """The canonical landing columns of `source`, in order, all strings."""
    return df.select(*[F.col(c).cast("string").alias(c) for c in source.column_names])


# --- subscribers -------------------------------------------------------------


def generate_subscribers(spark: SparkSession, n_subscribers: int, seed: int) -> DataFrame:
    """Subscribers 'KR00000001'.. with demographics, contract and forbidden columns."""
    return (
        spark.range(1, n_subscribers + 1)
        .select(F.format_string("KR%08d", F.col("id")).alias("account_id"), F.col("id"))
        .transform(with_subscriber_key)
        .transform(with_demographics, seed)
        .transform(with_identity, seed)
        .transform(with_contract, seed)
        .transform(with_payment, seed)
        .transform(select_landing, SUBSCRIBERS)
    )


def with_demographics(df: DataFrame, seed: int) -> DataFrame:
    """Add gender, birth_date (ages 16-90), region (population-weighted) and postcode."""
    key = F.col(SUBSCRIBER_KEY)
    band, region_ix = F.col("age_band"), F.col("region_ix")
    youngest = pick([lo for lo, _, _ in AGE_BANDS], band)
    span = pick([hi - lo + 1 for lo, hi, _ in AGE_BANDS], band)
    age = youngest + F.floor(uniform(seed, "age:year", key) * span).cast("int")
    # a day 1..364 before the birthday that makes `age`: the age stays exact
    birthday = F.add_months(F.lit(REFERENCE_DATE), -12 * age)
    birth_date = F.date_sub(birthday, 1 + uniform_index(364, uniform(seed, "age:day", key)))
    first_area = pick([POSTCODE_PREFIXES[r][0] for r in REGIONS], region_ix)
    n_areas = pick([hi - lo + 1 for lo, hi in (POSTCODE_PREFIXES[r] for r in REGIONS)], region_ix)
    area = first_area + F.floor(uniform(seed, "postcode:area", key) * n_areas).cast("int")
    block = uniform_index(1000, uniform(seed, "postcode:block", key))
    return df.withColumns(
        {
            "age_band": weighted_index([w for _, _, w in AGE_BANDS], uniform(seed, "age", key)),
            "region_ix": weighted_index(list(REGION_WEIGHTS.values()), uniform(seed, "region", key)),
        }
    ).withColumns(
        {
            "gender": pick_weighted(GENDERS, uniform(seed, "gender", key)),
            "birth_date": birth_date,
            "region": pick(REGIONS, region_ix),
            "postcode": F.concat(zero_pad(area, 2), zero_pad(block, 3)),
        }
    )


def with_identity(df: DataFrame, seed: int) -> DataFrame:
    """Add name (family name first), email (name + number) and msisdn (+8210 + 8 digits)."""
    key = F.col(SUBSCRIBER_KEY)
    u_given = uniform(seed, "name:given", key)

    def given_from(names: Sequence[str]) -> Column:
        return pick(names, uniform_index(len(names), u_given))

    given = (
        F.when(F.col("gender") == "female", given_from(FEMALE_NAMES))
        .when(F.col("gender") == "male", given_from(MALE_NAMES))
        .otherwise(given_from(NEUTRAL_NAMES))
    )
    family = pick_weighted(FAMILY_NAMES, uniform(seed, "name:family", key))
    # affine map with a multiplier coprime to 8*10^7: distinct lines 2000 0000-9999 9999
    line = F.lit(20_000_000) + F.pmod(
        F.col("id") * F.lit(37_249_091) + F.lit(seed % 80_000_000), F.lit(80_000_000)
    )
    email_domain = pick_weighted(EMAIL_DOMAINS, uniform(seed, "email:domain", key))
    return df.withColumns({"given": given, "family": family}).withColumns(
        {
            "name": F.concat_ws(" ", F.col("family"), F.col("given")),
            "email": F.concat(
                F.lower(F.col("given")),
                F.lit("."),
                F.lower(F.col("family")),
                F.col("id").cast("string"),
                F.lit("@"),
                email_domain,
            ),
            "msisdn": F.concat(F.lit("+8210"), line.cast("string")),
        }
    )


def with_contract(df: DataFrame, seed: int) -> DataFrame:
    """Add plan, addons (';'-joined or null), contract, monthly_charges and signup_date."""
    key = F.col(SUBSCRIBER_KEY)
    takes = [(F.col(f"addon_{name}"), name, price) for name, _, price in ADDONS]
    addon_names = F.concat_ws(";", *[F.when(t, F.lit(name)) for t, name, _ in takes])
    addon_price = sum((t.cast("double") * F.lit(price) for t, _, price in takes), F.lit(0.0))
    plan_ix = F.col("plan_ix")
    contract = F.when(pick([p for p, _, _ in PLANS], plan_ix) == F.lit("prepaid"), "month-to-month")
    discount = F.when(F.col("contract") == F.lit("month-to-month"), 1.0).otherwise(0.75)
    charges = pick([c for _, _, c in PLANS], plan_ix) * discount + addon_price
    # signups over 15 years skewed to recent ones, never before the subscriber turned 16
    days_ago = 1 + F.floor(uniform(seed, "signup", key) ** 1.4 * F.lit(15 * 365)).cast("int")
    signup = F.greatest(
        F.date_sub(F.lit(REFERENCE_DATE), days_ago), F.add_months(F.col("birth_date"), 16 * 12)
    )
    # one hash, a 9-bit field per addon: take-up resolution 1/512 is plenty
    addon_bits = random_bits(seed, "addons", key)
    flags = {
        f"addon_{name}": F.shiftright(addon_bits, 9 * i).bitwiseAND(511) < F.lit(round(p * 512))
        for i, (name, p, _) in enumerate(ADDONS)
    }
    return (
        df.withColumns(flags)
        .withColumn("plan_ix", weighted_index([w for _, w, _ in PLANS], uniform(seed, "plan", key)))
        .withColumns(
            {
                "plan": pick([p for p, _, _ in PLANS], plan_ix),
                "contract": contract.otherwise(
                    pick_weighted(CONTRACTS, uniform(seed, "contract", key))
                ),
                "addons": F.when(addon_names != F.lit(""), addon_names),
                "signup_date": signup,
            }
        )
        .withColumn("monthly_charges", decimal_text(charges, 2))
    )


def with_payment(df: DataFrame, seed: int) -> DataFrame:
    """Add payment_method, card_number (Luhn-valid, card payers only) and password_hash."""
    key = F.col(SUBSCRIBER_KEY)
    body = F.concat(
        pick(CARD_PREFIXES, uniform_index(len(CARD_PREFIXES), uniform(seed, "card:bin", key))),
        random_digits(9, seed, "card:account", key),
    )
    pays_by_card = F.col("payment_method").isin("credit_card", "debit_card")
    card = F.concat(F.col("card_body"), luhn_check_digit(F.col("card_body"), 15))
    return df.withColumns(
        {
            "payment_method": pick_weighted(PAYMENT_METHODS, uniform(seed, "payment", key)),
            "card_body": body,
            "password_hash": F.sha2(F.concat_ws(":", F.lit(str(seed)), "account_id", F.lit("pw")), 256),
        }
    ).withColumn("card_number", F.when(pays_by_card, card))


# --- devices -----------------------------------------------------------------


def generate_devices(subscribers: DataFrame, seed: int) -> DataFrame:
    """1-4 devices per subscriber (mostly 1) with IMEI, IMSI, MAC and model."""
    key = F.col(SUBSCRIBER_KEY)
    n_devices = F.lit(1) + weighted_index(DEVICES_PER_SUBSCRIBER, uniform(seed, "devices", key))
    return (
        subscribers.transform(with_subscriber_key)
        .transform(with_records_per_subscriber, n_devices, ["signup_date"])
        .transform(with_device_model, seed)
        .transform(with_device_identifiers, seed)
        .transform(select_landing, DEVICES)
    )


def with_device_model(df: DataFrame, seed: int) -> DataFrame:
    """Add brand, model, os and tac from one DEVICE_MODELS entry, and first_seen."""
    keys = (F.col(RECORD_KEY),)
    model_ix = F.col("model_ix")
    signup = F.col("signup_date").try_cast("date")
    span = F.greatest(F.datediff(F.lit(REFERENCE_DATE), signup), F.lit(1))
    later = F.floor(uniform(seed, "device:first_seen", *keys) * span).cast("int")
    weights = [m[4] for m in DEVICE_MODELS]
    return df.withColumn(
        "model_ix", weighted_index(weights, uniform(seed, "device:model", *keys))
    ).withColumns(
        {
            "brand": pick([m[0] for m in DEVICE_MODELS], model_ix),
            "model": pick([m[1] for m in DEVICE_MODELS], model_ix),
            "os": pick([m[2] for m in DEVICE_MODELS], model_ix),
            "tac": pick([m[3] for m in DEVICE_MODELS], model_ix),
            "first_seen": F.when(F.col("seq") == 1, signup).otherwise(F.date_add(signup, later)),
        }
    )


def with_device_identifiers(df: DataFrame, seed: int) -> DataFrame:
    """Add imei (TAC + 6-digit serial + Luhn digit), imsi (45005 + 10 digits) and mac."""
    keys = (F.col(RECORD_KEY),)
    mac_bits = F.pmod(random_bits(seed, "device:mac", *keys), F.lit(2**48))
    mac_hex = F.lpad(F.lower(F.hex(mac_bits)), 12, "0")
    imei_body = F.col("imei_body")
    return df.withColumn(
        "imei_body", F.concat(F.col("tac"), random_digits(6, seed, "device:serial", *keys))
    ).withColumns(
        {
            "imei": F.concat(imei_body, luhn_check_digit(imei_body, 14)),
            "imsi": F.concat(F.lit("45005"), random_digits(10, seed, "device:imsi", *keys)),
            "mac": F.regexp_replace(mac_hex, r"(..)(?!$)", "$1:"),
        }
    )


# --- call records ------------------------------------------------------------


def generate_call_records(subscribers: DataFrame, day: dt.date, seed: int) -> DataFrame:
    """A day of calls and messages: about 6 per subscriber, heavy-tailed, diurnal."""
    tag = f"calls:{day.isoformat()}"
    keep = ["msisdn", "region"]
    return (
        subscribers.transform(with_subscriber_key)
        .transform(with_records_per_subscriber, daily_count(seed, tag, 6.0, 0.6, 500), keep)
        .transform(with_call_kind, seed, tag)
        .transform(with_call_details, day, seed, tag)
        .transform(select_landing, CALL_RECORDS)
    )


def with_call_kind(df: DataFrame, seed: int, tag: str) -> DataFrame:
    """Add call_type (voice/sms/data), roaming flag and the callee number prefix."""
    keys = (F.col(RECORD_KEY),)
    callee_u = uniform(seed, f"{tag}:callee_kind", *keys)
    return df.withColumns(
        {
            "call_type": pick_weighted(CALL_TYPES, uniform(seed, f"{tag}:type", *keys)),
            "is_roaming": uniform(seed, f"{tag}:roaming", *keys) < F.lit(ROAMING_RATE),
            "callee_prefix": pick_weighted(
                (("+8210", 0.85), ("+822", 0.10), ("+8231", 0.05)), callee_u
            ),
        }
    )


def with_call_details(df: DataFrame, day: dt.date, seed: int, tag: str) -> DataFrame:
    """Add call_id, parties, start_time, duration_s, cell_id and roaming."""
    keys = (F.col(RECORD_KEY),)
    call_type = F.col("call_type")
    z = normal(seed, f"{tag}:duration", *keys)
    median = F.when(call_type == "voice", 75.0).when(call_type == "data", 600.0).otherwise(0.0)
    sigma = F.when(call_type == "voice", 1.1).otherwise(1.3)
    duration = median * F.exp(sigma * z)
    away = uniform(seed, f"{tag}:away", *keys) < F.lit(0.08)
    visited = F.lit(1) + uniform_index(len(REGIONS), uniform(seed, f"{tag}:visit", *keys))
    region = F.when(away, visited).otherwise(region_number(F.col("region")))
    cell = uniform_index(CELLS_PER_REGION, uniform(seed, f"{tag}:cell", *keys))
    call_hash = random_bits(seed, f"{tag}:id", *keys)
    return df.withColumns(
        {
            "call_id": F.lpad(F.lower(F.hex(call_hash)), 16, "0"),
            "caller_msisdn": F.col("msisdn"),
            "callee_msisdn": F.concat(
                F.col("callee_prefix"), random_digits(8, seed, f"{tag}:callee", *keys)
            ),
            "start_time": event_time(day, seed, tag, *keys),
            "duration_s": F.least(F.floor(duration), F.lit(86_400)).cast("int"),
            "cell_id": F.when(
                ~F.col("is_roaming"),
                F.concat(F.lit("C"), zero_pad(region, 2), zero_pad(cell, 3)),
            ),
            "roaming": F.col("is_roaming").cast("string"),
        }
    )


# --- network flows -----------------------------------------------------------


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


# --- web visits --------------------------------------------------------------


def generate_web_visits(subscribers: DataFrame, day: dt.date, seed: int) -> DataFrame:
    """A day of page visits: about 14 per subscriber, Zipf domains, diurnal."""
    tag = f"web:{day.isoformat()}"
    key = F.col(SUBSCRIBER_KEY)
    usual_agent = weighted_index(USER_AGENT_WEIGHTS, uniform(seed, "web:agent", key))
    return (
        subscribers.transform(with_subscriber_key)
        .withColumns({"client_ip": subscriber_ip(seed), "usual_agent": usual_agent})
        .transform(
            with_records_per_subscriber,
            daily_count(seed, tag, 14.0, 0.6, 1500),
            ["client_ip", "usual_agent"],
        )
        .transform(with_visit_draws, seed, tag)
        .transform(with_visit_details, day, seed, tag)
        .transform(select_landing, WEB_VISITS)
    )


def with_visit_draws(df: DataFrame, seed: int, tag: str) -> DataFrame:
    """Add the draws used more than once: domain, path template, item number, query kind."""
    keys = (F.col(RECORD_KEY),)
    zipf = [1.0 / rank**DOMAIN_ZIPF_EXPONENT for rank in range(1, len(DOMAINS) + 1)]
    return df.withColumns(
        {
            "domain": pick(DOMAINS, weighted_index(zipf, uniform(seed, f"{tag}:domain", *keys))),
            "path_ix": uniform_index(len(URL_PATHS), uniform(seed, f"{tag}:path", *keys)),
            "item": F.pmod(random_bits(seed, f"{tag}:item", *keys), F.lit(10**6)),
            "query_u": uniform(seed, f"{tag}:query", *keys),
        }
    )


def with_visit_details(df: DataFrame, day: dt.date, seed: int, tag: str) -> DataFrame:
    """Add url, visit_time, bytes and user_agent."""
    keys = (F.col(RECORD_KEY),)
    path_ix, item, query_u = F.col("path_ix"), F.col("item"), F.col("query_u")
    path = F.concat(
        pick([p for p, _ in URL_PATHS], path_ix),
        F.when(pick([n for _, n in URL_PATHS], path_ix), item.cast("string")).otherwise(""),
    )
    term = pick(SEARCH_TERMS, uniform_index(len(SEARCH_TERMS), uniform(seed, f"{tag}:term", *keys)))
    page = (F.pmod(item, F.lit(9)) + F.lit(2)).cast("string")
    query = (
        F.when(query_u < F.lit(QUERY_SHARE / 3), F.concat(F.lit("?q="), term))
        .when(query_u < F.lit(2 * QUERY_SHARE / 3), F.concat(F.lit("?page="), page))
        .when(query_u < F.lit(QUERY_SHARE), F.lit("?ref=home"))
        .otherwise(F.lit(""))
    )
    other_agent = weighted_index(USER_AGENT_WEIGHTS, uniform(seed, f"{tag}:agent", *keys))
    keeps_agent = uniform(seed, f"{tag}:same_agent", *keys) < F.lit(0.85)
    agent_ix = F.when(keeps_agent, F.col("usual_agent")).otherwise(other_agent)
    n_bytes = F.least(lognormal(120_000.0, 1.4, normal(seed, f"{tag}:bytes", *keys)), F.lit(5e9))
    return df.withColumns(
        {
            "url": F.concat(F.lit("https://"), F.col("domain"), path, query),
            "visit_time": event_time(day, seed, tag, *keys),
            "bytes": F.floor(n_bytes).cast("long"),
            "user_agent": pick(USER_AGENTS, agent_ix),
        }
    )


# --- malformed rows ----------------------------------------------------------


CORRUPTED = "_corrupted"  # with_bad_rows' flag: the rows it corrupted, counted by the generator


def inject_bad_rows(
    df: DataFrame, source: SourceSpec, rate: float, seed: int, day: dt.date | None
) -> DataFrame:
    """Corrupt one column in about `rate` of the rows, each failing a FieldSpec rule."""
    return with_bad_rows(df, source, rate, seed, day).drop(CORRUPTED)


def with_bad_rows(
    df: DataFrame, source: SourceSpec, rate: float, seed: int, day: dt.date | None
) -> DataFrame:
    """Corrupt one column in about `rate` of the rows, each failing a FieldSpec rule,
    and flag them in a boolean `_corrupted` column (so the count of bad rows is known).

    Kinds, drawn with equal chance among those the source has: a required
    value nulled, an unparseable number/date/time, a negative number, an
    absurd number, an event time outside `day` (daily sources) and a value
    outside `allowed`; then a column among those the kind applies to. The
    draws hash the row's values, so the result is deterministic.
    """
    columns = source.column_names
    row = random_bits(seed, f"bad:{source.name}", *[F.col(c) for c in columns])
    kinds = [kind for kind in corruption_kinds(source, day) if kind]
    weights = [1.0 / len(kinds) / len(kind) for kind in kinds for _ in kind]
    candidates = [candidate for kind in kinds for candidate in kind]
    selected = uniform(seed, "bad:select", F.col("_row")) < F.lit(rate)
    choice = weighted_index(weights, uniform(seed, "bad:kind", F.col("_row")))
    return (
        df.withColumn("_row", row)
        .withColumns(
            {
                "_corruption": F.when(selected, choice).otherwise(F.lit(-1)),
                "_bad_u": uniform(seed, "bad:value", F.col("_row")),
            }
        )
        .select(
            *[corrupt_column(c, candidates) for c in columns],
            (F.col("_corruption") >= F.lit(0)).alias(CORRUPTED),
        )
    )


def corrupt_column(name: str, candidates: Sequence[tuple[str, Column]]) -> Column:
    """Column `name`, replaced where the row's `_corruption` picks a candidate for it."""
    value = F.col(name)
    for i, (column, bad_value) in enumerate(candidates):
        if column == name:
            value = F.when(F.col("_corruption") == F.lit(i), bad_value).otherwise(value)
    return value.cast("string").alias(name)


def corruption_kinds(source: SourceSpec, day: dt.date | None) -> list[list[tuple[str, Column]]]:
    """Per corruption kind, the (column, bad value) candidates it has in `source`."""
    u = F.col("_bad_u")
    negative = F.concat(F.lit("-"), (F.lit(1) + uniform_index(999, u)).cast("string"))
    unparseable = pick(UNPARSEABLE_VALUES, uniform_index(len(UNPARSEABLE_VALUES), u))
    not_allowed = pick(NOT_ALLOWED_VALUES, uniform_index(len(NOT_ALLOWED_VALUES), u))
    fields = source.fields
    kinds = [
        [(f.name, F.lit(None).cast("string")) for f in fields if f.required],
        [(f.name, unparseable) for f in fields if f.dtype in PARSED_DTYPES],
        [(f.name, negative) for f in fields if f.min_value is not None],
        [(f.name, F.lit(absurd_value(f.max_value))) for f in fields if f.max_value is not None],
        [(f.name, not_allowed) for f in fields if f.allowed],
    ]
    if source.event_time is not None:
        kinds.append([(source.event_time, out_of_day_time(day, u))])
    return kinds


def absurd_value(max_value: float) -> str:
    """A number far above `max_value`: 999999, or 10^15 for byte counters."""
    return "999999" if max_value < 999_999 else str(10**15)


def out_of_day_time(day: dt.date | None, u: Column) -> Column:
    """A timestamp outside `day`: the day before, the day after, or in 1970."""
    others = ["1970-01-01"]
    if day is not None:
        others += [(day + dt.timedelta(days=step)).isoformat() for step in (-1, 1)]
    which = uniform_index(len(others), u)
    second = uniform_index(86_400, F.pmod(u * F.lit(7919.0), F.lit(1.0)))
    return time_text(pick(others, which), second)
