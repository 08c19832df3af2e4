"""Generalization transforms and their reference tables.

Column functions are checked on tables of realistic and broken inputs in one
Spark job per table; the loaders on the real public files in ../shared/data
(skipped when that folder is absent).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from core.config import load_pipeline_config
from stages import reference
from stages.reference import (
    load_domain_categories,
    load_oui_table,
    load_tac_table,
    parse_domain_categories,
    parse_tac_csv,
    shipped_reference,
)
from synthetic import generate_devices, generate_subscribers
from synthetic.model import DEVICE_MODELS, DOMAINS, USER_AGENTS
from transforms.generalize import (
    COUNTRY_CALLING_CODES,
    MULTI_LABEL_PUBLIC_SUFFIXES,
    POSTCODE_ZONES,
    UNCATEGORIZED,
    generalize_phone_to_prefix,
    generalize_postcode_to_region,
    generalize_timestamp,
    generalize_url_to_domain,
    generalize_user_agent,
    imei_tac,
    mac_oui,
    url_host,
    with_device_model,
    with_domain_category,
    with_mac_vendor,
)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TACDB = SHARED_DATA / "tacdb" / "tacdb.csv"
OUI_CSV = SHARED_DATA / "oui" / "oui.csv"
OUI_RECORDS = 32_530  # ../shared/data/README.md
TACDB_RECORDS = 25_175


def needs_shared(path: Path) -> None:
    if not path.is_file():
        pytest.skip(f"shared test data not found: {path}")


def assert_maps(spark, fn, cases, in_type="string", out_type="string"):
    """fn(input column) gives exactly `expected` for every (input, expected) case."""
    frame = spark.createDataFrame(cases, f"value {in_type}, expected {out_type}")
    actual = frame.select("value", fn(F.col("value")).alias("expected"))
    assertDataFrameEqual(actual, frame)


# --- time --------------------------------------------------------------------

T = dt.datetime


@pytest.mark.parametrize(
    ("unit", "cases"),
    [
        (
            "hour",
            [
                (T(2026, 11, 3, 14, 37, 12), T(2026, 11, 3, 14)),
                (T(2026, 11, 3, 23, 59, 59, 999_999), T(2026, 11, 3, 23)),
                (T(2026, 11, 3, 0, 0), T(2026, 11, 3, 0)),
                (None, None),
            ],
        ),
        (
            "day",
            [
                (T(2026, 11, 3, 14, 37, 12), T(2026, 11, 3)),
                (T(2026, 11, 3, 23, 59, 59, 999_999), T(2026, 11, 3)),
                (T(2026, 12, 31, 0, 0, 1), T(2026, 12, 31)),
                (None, None),
            ],
        ),
    ],
)
def test_generalize_timestamp_truncates_to_the_unit(spark, unit, cases):
    assert_maps(spark, lambda c: generalize_timestamp(c, unit), cases, "timestamp", "timestamp")


@pytest.mark.parametrize("unit", ["minute", "week", "HOUR", ""])
def test_generalize_timestamp_rejects_other_units(unit):
    with pytest.raises(ValueError, match="unit must be one of"):
        generalize_timestamp(F.col("t"), unit)


# --- phone numbers -----------------------------------------------------------

PHONE_CASES = [
    ("+821012345678", "+82 10"),  # the generator's msisdn format
    ("+82 10-1234-5678", "+82 10"),
    ("0082 10 1234 5678", "+82 10"),
    ("010-1234-5678", "+82 10"),  # national: trunk 0, default country 82
    ("010.1234.5678", "+82 10"),
    (" 01012345678 ", "+82 10"),
    ("(02) 123-4567", "+82 21"),  # Seoul: fixed digit count, not an area-code parser
    ("031-123-4567", "+82 31"),
    ("tel:+82-2-3456-7890", "+82 23"),
    ("+44 (0)20 7946 0958", "+44 20"),  # "(0)" trunk notation dropped
    ("+1 415 555 0123", "+1 41"),  # NANP: one-digit code
    ("+7 495 123-45-67", "+7 49"),
    ("+353 1 234 5678", "+353 12"),  # three-digit code by longest match
    ("+86 138 0013 8000", "+86 13"),
    ("+81 90-1234-5678", "+81 90"),
    ("n/a", None),
    ("12kb", None),
    ("unknown", None),
    ("", None),
    ("   ", None),
    (None, None),
    ("+", None),
    ("+82", None),  # no national number
    ("+82 10", None),  # too short for E.164
    ("+999 123 4567", None),  # no such country code
    ("+0 82 10 1234 5678", None),
    ("1012345678", None),  # neither "+", "00" nor trunk 0
    ("+82 10 1234 5678 ext 9", None),
    ("+82 10 1234 5678 90123", None),  # 16 digits: longer than E.164 allows
    ("0", None),
    ("00", None),
    ("+82-10-ABCD-5678", None),
]


def test_generalize_phone_to_prefix(spark):
    assert_maps(spark, generalize_phone_to_prefix, PHONE_CASES)


def test_phone_national_numbers_use_the_default_country_and_prefix_length(spark):
    cases = [("020 7946 0958", "+44 207"), ("+82 10-1234-5678", "+82 101"), ("07700 900123", "+44 770")]
    assert_maps(spark, lambda c: generalize_phone_to_prefix(c, "44", prefix_digits=3), cases)


@pytest.mark.parametrize(("code", "digits"), [("999", 2), ("+82", 2), ("82", 0), ("82", 5)])
def test_phone_rejects_bad_parameters(code, digits):
    with pytest.raises(ValueError):
        generalize_phone_to_prefix(F.col("p"), code, prefix_digits=digits)


def test_country_calling_codes_are_itu_shaped_and_prefix_free():
    codes = COUNTRY_CALLING_CODES
    assert len(set(codes)) == len(codes)
    assert all(c.isdigit() and 1 <= len(c) <= 3 and c[0] != "0" for c in codes)
    assert not [(a, b) for a in codes for b in codes if a != b and b.startswith(a)]
    assert {"1", "7", "20", "27", "44", "82", "86", "81", "850", "886", "998"} <= set(codes)
    assert not {"0", "28", "83", "89", "99", "210", "259", "671", "969"} & set(codes)


# --- user agents -------------------------------------------------------------

UA_CASES = [
    # the generator's eight agents, in order
    *zip(
        USER_AGENTS,
        [
            ("Samsung Internet", "Android"),
            ("Chrome", "Android"),
            ("Safari", "iOS"),
            ("KakaoTalk", "iOS"),
            ("Naver App", "Android"),
            ("Samsung Internet", "Android"),
            ("Safari", "iOS"),
            ("Chrome", "Windows"),
        ],
        strict=True,
    ),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51", ("Edge", "Windows")),
    ("Mozilla/5.0 (Linux; Android 14; SM-S921N) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/124.0.0.0 Mobile Safari/537.36 EdgA/124.0.2478.64", ("Edge", "Android")),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/124.0.0.0 Safari/537.36 OPR/109.0.0.0", ("Opera", "Windows")),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/122.0.0.0 Whale/3.25.232.19 Safari/537.36", ("Whale", "Windows")),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.4 Safari/605.1.15", ("Safari", "Mac OS X")),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14.4; rv:125.0) Gecko/20100101 Firefox/125.0",
     ("Firefox", "Mac OS X")),
    ("Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0", ("Firefox", "Linux")),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1", ("Chrome", "iOS")),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "FxiOS/125.0 Mobile/15E148 Safari/605.1.15", ("Firefox", "iOS")),
    ("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/124.0.0.0 Safari/537.36", ("Chrome", "Chrome OS")),
    ("Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko",
     ("Internet Explorer", "Windows")),
    ("Mozilla/5.0 (Linux; Android 9; CUBOT X19) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/120.0.0.0 Mobile Safari/537.36", ("Chrome", "Android")),  # "CUBOT" is a brand, not a bot
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", ("Bot", "Other")),
    ("Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/124.0.6367.118 Mobile Safari/537.36 (compatible; Googlebot/2.1; "
     "+http://www.google.com/bot.html)", ("Bot", "Other")),
    ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", ("Bot", "Other")),
    ("Mozilla/5.0 (compatible; Yeti/1.1; +https://naver.me/spd)", ("Bot", "Other")),
    ("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", ("Bot", "Other")),
    ("curl/8.4.0", ("Tool", "Other")),
    ("Wget/1.21.4", ("Tool", "Other")),
    ("python-requests/2.31.0", ("Tool", "Other")),
    ("okhttp/4.12.0", ("Tool", "Other")),
    ("Go-http-client/2.0", ("Tool", "Other")),
    ("garbage", ("Other", "Other")),
    ("-", ("Other", "Other")),
    ("", None),
    ("   ", None),
    (None, None),
]


def test_generalize_user_agent(spark):
    frame = spark.createDataFrame(
        [(ua, *(families or (None, None))) for ua, families in UA_CASES],
        "ua string, browser string, os string",
    )
    families = generalize_user_agent(F.col("ua"))
    actual = frame.select(
        "ua", families.browser_family.alias("browser"), families.os_family.alias("os")
    )
    assertDataFrameEqual(actual, frame)
    null_structs = frame.select(families.isNull().alias("n")).filter("n").count()
    assert null_structs == 3  # blank and null agents give a null struct, not a struct of nulls


# --- URLs and domains -------------------------------------------------------

URL_CASES = [
    ("https://user:pw@www.News.Example.co.kr:8443/a/b?c=1#frag", "example.co.kr"),
    ("www.Example.co.kr/path?x=1", "example.co.kr"),
    ("https://www.naver.com/", "naver.com"),
    ("https://chzzk.naver.com/live/12345", "naver.com"),
    ("https://gmarket.co.kr/item/123?ref=home", "gmarket.co.kr"),
    ("https://hometax.go.kr/", "hometax.go.kr"),
    ("https://www.gov.kr/portal", "gov.kr"),  # gov.kr is a registered domain, go.kr the suffix
    ("http://m.bbc.co.uk/news", "bbc.co.uk"),
    ("ftp://files.example.ac.uk/pub", "example.ac.uk"),
    ("a.b.c.d.example.co.jp", "example.co.jp"),
    ("//cdn.example.org/app.js", "example.org"),
    ("EXAMPLE.COM", "example.com"),
    ("example.com.", "example.com"),
    ("example.com:8080", "example.com"),
    ("op.gg", "op.gg"),
    ("namu.wiki/w/foo", "namu.wiki"),
    ("x.com", "x.com"),
    ("www.xn--3e0b707e.xn--3e0b707e", "xn--3e0b707e.xn--3e0b707e"),  # punycode: 한국.한국
    ("co.kr", None),  # a public suffix alone
    ("http://192.168.0.1/admin", None),
    ("203.0.113.7:443", None),
    ("[2001:db8::1]:443", None),
    ("http://[::1]/", None),
    ("localhost:8080", None),
    ("https://-bad-.com/", None),
    ("example.123", None),
    ("javascript:alert(1)", None),
    ("garbage here", None),
    ("n/a", None),
    ("", None),
    (None, None),
]


def test_generalize_url_to_domain(spark):
    assert_maps(spark, generalize_url_to_domain, URL_CASES)


def test_url_host_keeps_the_subdomain_but_not_www(spark):
    cases = [
        ("https://www.news.naver.com/x", "news.naver.com"),
        ("https://www.naver.com", "naver.com"),
        ("chzzk.naver.com", "chzzk.naver.com"),
        ("co.kr", "co.kr"),
        ("http://10.0.0.1/", None),
        (None, None),
    ]
    assert_maps(spark, url_host, cases)


def test_public_suffix_subset_is_multi_label_and_lowercase():
    assert len(set(MULTI_LABEL_PUBLIC_SUFFIXES)) == len(MULTI_LABEL_PUBLIC_SUFFIXES)
    assert all(s == s.lower() and s.count(".") >= 1 for s in MULTI_LABEL_PUBLIC_SUFFIXES)
    assert {"co.kr", "go.kr", "or.kr", "co.uk", "com.au", "co.jp", "com.cn", "co.za"} <= set(
        MULTI_LABEL_PUBLIC_SUFFIXES
    )


def test_with_domain_category_prefers_the_host_then_the_registered_domain(spark):
    categories = spark.createDataFrame(
        [
            ("naver.com", "search"),
            ("chzzk.naver.com", "video"),
            ("Coupang.com", "shopping"),
            ("example.co.kr", "news"),
            ("example.co.kr", "blogs"),  # listed twice: the first alphabetically wins
        ],
        "domain string, category string",
    )
    visits = spark.createDataFrame(
        [
            (1, "naver.com"),
            (2, "https://chzzk.naver.com/live/1"),
            (3, "https://m.naver.com/"),
            (4, "www.coupang.com"),
            (5, "news.example.co.kr"),
            (6, "unknown.example"),
            (7, "192.168.0.1"),
            (8, None),
        ],
        "id int, domain string",
    )
    expected = spark.createDataFrame(
        [
            (1, "naver.com", "search"),
            (2, "https://chzzk.naver.com/live/1", "video"),
            (3, "https://m.naver.com/", "search"),
            (4, "www.coupang.com", "shopping"),
            (5, "news.example.co.kr", "blogs"),
            (6, "unknown.example", UNCATEGORIZED),
            (7, "192.168.0.1", UNCATEGORIZED),
            (8, None, UNCATEGORIZED),
        ],
        "id int, domain string, domain_category string",
    )
    actual = with_domain_category(visits, "domain", categories)
    assert actual.columns == ["id", "domain", "domain_category"]
    assertDataFrameEqual(actual, expected)


def test_shipped_domain_categories_cover_every_generator_domain(spark):
    categories = load_domain_categories(spark)
    domains = spark.createDataFrame([(d,) for d in DOMAINS], "domain string")
    categorized = with_domain_category(domains, "domain", categories, out_col="category")
    uncategorized = categorized.filter(F.col("category") == UNCATEGORIZED).collect()
    assert uncategorized == []
    assert categorized.count() == len(DOMAINS)
    by_domain = dict(categorized.collect())
    assert by_domain["naver.com"] == "search"
    assert by_domain["chzzk.naver.com"] == "video"  # a host entry beats its registered domain
    assert by_domain["hometax.go.kr"] == "government"


def test_shipped_domain_categories_are_normalized_hosts(spark):
    table = parse_domain_categories(shipped_reference("domain_categories.csv").read_bytes())
    frame = spark.createDataFrame(table[["domain"]])
    hosts = frame.select("domain", url_host(F.col("domain")).alias("host")).collect()
    assert [r.domain for r in hosts if r.host != r.domain] == []
    assert table["category"].str.fullmatch("[a-z_]+").all()


def test_domain_category_loader_refuses_duplicates(tmp_path):
    path = tmp_path / "categories.csv"
    path.write_text("domain,category\nnaver.com,search\nNaver.com,news\n")
    with pytest.raises(ValueError, match=r"naver\.com"):
        parse_domain_categories(path.read_bytes())
    with pytest.raises(ValueError, match="header"):
        parse_domain_categories(b"host,category\nnaver.com,search\n")


# --- postcodes ---------------------------------------------------------------

POSTCODE_CASES = [
    ("06164", "Seoul"),
    ("01000", "Seoul"),
    (" 03187 ", "Seoul"),
    ("13494", "Gyeonggi"),
    ("20999", "Gyeonggi"),
    ("21999", "Incheon"),
    ("25000", "Gangwon"),
    ("28644", "North Chungcheong"),
    ("30100", "Sejong"),
    ("31000", "South Chungcheong"),
    ("35233", "Daejeon"),
    ("37000", "North Gyeongsang"),
    ("41911", "Daegu"),
    ("44700", "Ulsan"),
    ("48058", "Busan"),
    ("51000", "South Gyeongsang"),
    ("54999", "North Jeolla"),
    ("58000", "South Jeolla"),
    ("60000", "South Jeolla"),
    ("61475", "Gwangju"),
    ("63309", "Jeju"),
    ("00123", None),  # zone 00 is unassigned
    ("64000", None),
    ("99999", None),
    ("135-080", None),  # a pre-2015 six-digit code
    ("135080", None),
    ("1234", None),
    ("abcde", None),
    ("", None),
    (None, None),
]


def test_generalize_postcode_to_region(spark):
    assert_maps(spark, generalize_postcode_to_region, POSTCODE_CASES)


def test_postcodes_map_only_to_configured_regions(spark, config_dir):
    regions = load_pipeline_config(config_dir).regions
    assert tuple(POSTCODE_ZONES) == regions
    every_zone = spark.createDataFrame([(f"{zone:02d}000",) for zone in range(100)], "postcode string")
    mapped = {
        r.region
        for r in every_zone.select(generalize_postcode_to_region(F.col("postcode")).alias("region")).collect()
    }
    assert mapped - {None} == set(regions)


def test_generated_postcodes_map_back_to_their_region(spark):
    subscribers = spark.createDataFrame(generate_subscribers(300, seed=7))
    mismatched = subscribers.filter(
        ~generalize_postcode_to_region(F.col("postcode")).eqNullSafe(F.col("region"))
    )
    assert mismatched.select("postcode", "region").collect() == []


# --- devices: IMEI -> TAC -> model ----------------------------------------------


def test_imei_tac(spark):
    cases = [
        ("351628740123453", "35162874"),  # 15 digits
        ("35162874012345", "35162874"),  # 14: no check digit
        ("3516287401234501", "35162874"),  # 16: IMEISV
        ("35-162874-012345-3", "35162874"),
        ("35 162874 012345 3", "35162874"),
        ("3516287401234", None),
        ("35162874012345012", None),
        ("35162874O12345", None),
        ("", None),
        (None, None),
    ]
    assert_maps(spark, imei_tac, cases)


def test_with_device_model_joins_on_the_tac(spark):
    tac_table = spark.createDataFrame(
        [
            ("35162874", "Samsung", "Galaxy S24"),
            ("35391077", "Apple", "iPhone 15 Pro"),
            ("33205600", "Sagem", "M314-B0"),
            ("33205600", "Sagem", "DMC 830"),  # listed twice: smallest (brand, model) wins
        ],
        "tac string, brand string, model string",
    )
    devices = spark.createDataFrame(
        [
            ("KR1", "351628740123453"),
            ("KR2", "35-391077-000001-6"),
            ("KR3", "332056000000000"),
            ("KR4", "999999990000000"),
            ("KR5", "12kb"),
            ("KR6", None),
        ],
        "account_id string, imei string",
    )
    expected = spark.createDataFrame(
        [
            ("KR1", "351628740123453", "Samsung", "Galaxy S24"),
            ("KR2", "35-391077-000001-6", "Apple", "iPhone 15 Pro"),
            ("KR3", "332056000000000", "Sagem", "DMC 830"),
            ("KR4", "999999990000000", None, None),
            ("KR5", "12kb", None, None),
            ("KR6", None, None, None),
        ],
        "account_id string, imei string, device_brand string, device_model string",
    )
    actual = with_device_model(devices, "imei", tac_table)
    assert actual.columns == expected.columns
    assertDataFrameEqual(actual, expected)


def test_shipped_tac_table_covers_the_generator_in_the_tacdb_layout(spark):
    raw = shipped_reference("tac_models.csv").read_bytes()
    lines = raw.split(b"\r\n")
    assert not lines[0].startswith(b"tac,")  # a banner line, as in the Osmocom file
    assert lines[1] == b"tac,name,name,contributor,comment,gsmarena,gsmarena,aka"
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF throughout
    loaded = {r.tac: (r.brand, r.model) for r in load_tac_table(spark).collect()}
    assert loaded == {tac: (brand, model) for brand, model, _, tac, _ in DEVICE_MODELS}


def test_generated_devices_map_to_their_own_brand_and_model(spark):
    devices = spark.createDataFrame(generate_devices(generate_subscribers(100, seed=3), seed=3))
    mapped = with_device_model(devices, "imei", load_tac_table(spark))
    wrong = mapped.filter(
        (F.col("device_brand") != F.col("brand")) | (F.col("device_model") != F.col("model"))
        | F.col("device_brand").isNull()
    )
    assert mapped.count() == devices.count()
    assert wrong.select("imei", "brand", "device_brand").collect() == []


def test_tac_parser_accepts_a_file_without_banner():
    table = parse_tac_csv(b"tac,name,name\n1130000, Apple, iPhone 4\nabc,X,Y\n35162874,Samsung,\n")
    assert table.to_dict("records") == [
        {"tac": "01130000", "brand": "Apple", "model": "iPhone 4"},
        {"tac": "35162874", "brand": "Samsung", "model": ""},
    ]


def test_tacdb_loader_on_the_osmocom_file(spark):
    needs_shared(TACDB)
    raw = TACDB.read_bytes()
    assert raw.startswith(b"Osmocom TAC database") and b"\r\n" in raw  # the banner and CRLF quirks
    table = load_tac_table(spark, TACDB)
    assert table.count() == TACDB_RECORDS
    rows = {r.tac: (r.brand, r.model) for r in table.collect()}
    assert rows["35675904"] == ("Oppo", "N1")  # first record, right after banner and header
    assert rows["35440005"] == ("ASUS", "ME370TG")  # last record
    assert rows["35735007"] == ("Samsung", "SM-G930F")  # written " Samsung, SM-G930F"
    assert rows["01130000"] == ("Apple", "iPhone 4")  # written 1130000: leading zero restored
    assert rows["00106600"] == ("Cisco", "WRTU54G")
    values = [v for pair in rows.values() for v in pair if v is not None]
    assert not [v for v in values if v != v.strip() or "\r" in v]
    assert all(len(tac) == 8 and tac.isdigit() for tac in rows)


def test_tacdb_join_maps_imeis_to_models(spark):
    needs_shared(TACDB)
    devices = spark.createDataFrame(
        [("356759040000001",), ("35-735007-123456-0",), ("011300001234567",), ("011948001234567",),
         ("123456780000000",)],
        "imei string",
    )
    mapped = with_device_model(devices, "imei", load_tac_table(spark, TACDB))
    expected = spark.createDataFrame(
        [
            ("356759040000001", "Oppo", "N1"),
            ("35-735007-123456-0", "Samsung", "SM-G930F"),
            ("011300001234567", "Apple", "iPhone 4"),
            # 01194800 is listed as iPhone 3GS and (written 1194800) iPhone 4: the smaller wins
            ("011948001234567", "Apple", "iPhone 3GS"),
            ("123456780000000", None, None),
        ],
        "imei string, device_brand string, device_model string",
    )
    assertDataFrameEqual(mapped, expected)


# --- devices: MAC -> OUI -> vendor --------------------------------------------


def test_mac_oui(spark):
    cases = [
        ("00:00:0c:12:34:56", "00000C"),
        ("00-1A-11-AB-CD-EF", "001A11"),
        ("3c5a.37ab.cdef", "3C5A37"),  # Cisco dotted
        ("F4F5D8ABCDEF", "F4F5D8"),  # bare
        (" 00:17:F2:00:00:01 ", "0017F2"),
        ("02:00:0c:12:34:56", None),  # locally administered (U/L bit)
        ("da:a1:19:12:34:56", None),  # a randomized private Wi-Fi address
        ("0e:1f:2a:3b:4c:5d", None),
        ("00:00:0c:12:34", None),  # five octets
        ("00:00-0c:12:34:56", None),  # mixed separators
        ("zz:00:0c:12:34:56", None),
        ("00000c1234567", None),
        ("", None),
        (None, None),
    ]
    assert_maps(spark, mac_oui, cases)


def test_with_mac_vendor_joins_on_the_oui(spark):
    oui_table = spark.createDataFrame(
        [("00000C", "Cisco Systems, Inc"), ("3c5a37", "Samsung Electronics Co.,Ltd"),
         ("080030", "NETWORK RESEARCH CORPORATION"), ("080030", "CERN")],
        "oui string, vendor string",
    )
    devices = spark.createDataFrame(
        [("d1", "00:00:0C:12:34:56"), ("d2", "3c-5a-37-00-00-01"), ("d3", "08:00:30:00:00:01"),
         ("d4", "00:11:22:33:44:55"), ("d5", "02:00:0c:12:34:56"), ("d6", "n/a"), ("d7", None)],
        "device string, mac string",
    )
    expected = spark.createDataFrame(
        [("d1", "00:00:0C:12:34:56", "Cisco Systems, Inc"),
         ("d2", "3c-5a-37-00-00-01", "Samsung Electronics Co.,Ltd"),
         ("d3", "08:00:30:00:00:01", "CERN"),  # listed thrice: the first alphabetically wins
         ("d4", "00:11:22:33:44:55", None), ("d5", "02:00:0c:12:34:56", None),
         ("d6", "n/a", None), ("d7", None, None)],
        "device string, mac string, mac_vendor string",
    )
    assertDataFrameEqual(with_mac_vendor(devices, "mac", oui_table), expected)


def test_oui_loader_on_the_ieee_file(spark):
    needs_shared(OUI_CSV)
    table = load_oui_table(spark, OUI_CSV)
    assert table.count() == OUI_RECORDS  # one row per record although addresses span lines
    rows = table.collect()
    vendors: dict[str, set[str]] = {}
    for r in rows:
        vendors.setdefault(r.oui, set()).add(r.vendor)
    assert len(vendors) == OUI_RECORDS - 3  # 080030 is listed three times, 0001C8 twice
    assert vendors["00000C"] == {"Cisco Systems, Inc"}
    assert vendors["0017F2"] == {"Apple, Inc."}
    assert vendors["3C5A37"] == {"Samsung Electronics Co.,Ltd"}
    assert vendors["3CB07E"] == {"Arounds Intelligent Equipment Co., Ltd."}  # 5-line address
    assert vendors["5CA06C"] == {"Realme Chongqing Mobile Telecommunications Corp.,Ltd."}  # next record
    assert not [r for r in rows if r.vendor != r.vendor.strip() or "\n" in r.vendor]


def test_oui_join_on_the_ieee_file(spark):
    needs_shared(OUI_CSV)
    devices = spark.createDataFrame(
        [("00:00:0c:01:02:03",), ("3C-5A-37-AA-BB-CC",), ("0017.f200.0001",), ("ac:de:48:00:11:22",),
         ("02:60:8c:01:02:03",)],
        "mac string",
    )
    expected = spark.createDataFrame(
        [("00:00:0c:01:02:03", "Cisco Systems, Inc"), ("3C-5A-37-AA-BB-CC", "Samsung Electronics Co.,Ltd"),
         ("0017.f200.0001", "Apple, Inc."), ("ac:de:48:00:11:22", "Private"),
         ("02:60:8c:01:02:03", None)],  # 3Com's legacy 02608C has the U/L bit set
        "mac string, mac_vendor string",
    )
    assertDataFrameEqual(with_mac_vendor(devices, "mac", load_oui_table(spark, OUI_CSV)), expected)


def test_oui_loader_without_ieee_data_says_how_to_install_it(spark, tmp_path, monkeypatch):
    missing = tmp_path / "ieee-data" / "oui.csv"
    monkeypatch.setattr(reference, "DEFAULT_OUI_PATH", missing)
    with pytest.raises(FileNotFoundError, match="apt-get install ieee-data") as error:
        load_oui_table(spark)
    assert str(missing) in str(error.value)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_oui_table(spark, tmp_path / "nowhere.csv")
