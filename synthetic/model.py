"""The world the synthetic data describes: regions, plans, devices, names, traffic shapes.

Plain constants, no Spark: every distribution the generators draw from (weights, ranges,
pools) is stated here once, so a test or a reference table can read the same numbers.
"""

from __future__ import annotations

import datetime as dt

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

