"""Synthetic web visits: a day of page visits per subscriber, Zipf domains, a usual browser."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.schemas import WEB_VISITS
from synthetic.draws import (
    daily_count,
    lognormal,
    normal,
    random_below,
    uniform,
    uniform_index,
    weighted_index,
)
from synthetic.model import (
    DOMAIN_ZIPF_EXPONENT,
    DOMAINS,
    QUERY_SHARE,
    SEARCH_TERMS,
    URL_PATHS,
    USER_AGENT_WEIGHTS,
    USER_AGENTS,
)
from synthetic.records import (
    Records,
    account_numbers,
    event_time,
    landing_table,
    records_per_subscriber,
    subscriber_ip,
    subscriber_keys,
)
from synthetic.text import lookup, plain_number

_ZIPF_WEIGHTS = [1.0 / rank**DOMAIN_ZIPF_EXPONENT for rank in range(1, len(DOMAINS) + 1)]
# the query part of a url: '?q=<term>' for each term, '?page=2'..'?page=10', '?ref=home', none
_QUERIES = ([f"?q={term}" for term in SEARCH_TERMS] + [f"?page={page}" for page in range(2, 11)]
            + ["?ref=home", ""])
_FIRST_PAGE_QUERY, _REF_QUERY, _NO_QUERY = len(SEARCH_TERMS), len(_QUERIES) - 2, len(_QUERIES) - 1


def generate_web_visits(subscribers: pa.Table, day: dt.date, seed: int) -> pa.Table:
    """A day of page visits: about 14 per subscriber, Zipf domains, diurnal."""
    tag = f"web:{day.isoformat()}"
    keys = subscriber_keys(subscribers)
    records = records_per_subscriber(keys, daily_count(seed, tag, keys, 14.0, 0.6, 1500))
    client_ip, _ = subscriber_ip(seed, account_numbers(subscribers), keys)
    usual_agent = weighted_index(USER_AGENT_WEIGHTS, uniform(seed, "web:agent", keys))
    other_agent = weighted_index(USER_AGENT_WEIGHTS, uniform(seed, f"{tag}:agent", records.keys))
    keeps_agent = uniform(seed, f"{tag}:same_agent", records.keys) < 0.85
    n_bytes = np.minimum(lognormal(120_000.0, 1.4, normal(seed, f"{tag}:bytes", records.keys)), 5e9)
    domain = lookup(DOMAINS, weighted_index(_ZIPF_WEIGHTS, uniform(seed, f"{tag}:domain", records.keys)))
    columns = {
        "account_id": subscribers.column("account_id").take(records.parent),
        "client_ip": client_ip.take(records.parent),
        "domain": domain,
        "url": urls(seed, tag, records, domain),
        "visit_time": event_time(day, seed, tag, records.keys),
        "bytes": plain_number(np.floor(n_bytes).astype(np.int64)),
        "user_agent": lookup(USER_AGENTS, np.where(keeps_agent, usual_agent[records.parent], other_agent)),
    }
    return landing_table(WEB_VISITS, columns)


def urls(seed: int, tag: str, records: Records, domain: pa.Array) -> pa.Array:
    """'https://' + domain + a path (some with an item number) + for some a query."""
    keys = records.keys
    path = uniform_index(len(URL_PATHS), uniform(seed, f"{tag}:path", keys))
    item = random_below(10**6, seed, f"{tag}:item", keys)
    has_item = np.array([numbered for _, numbered in URL_PATHS])[path]
    item_text = pc.if_else(pa.array(has_item), plain_number(item), "")
    query_u = uniform(seed, f"{tag}:query", keys)
    term = uniform_index(len(SEARCH_TERMS), uniform(seed, f"{tag}:term", keys))
    query = np.select(
        [query_u < QUERY_SHARE / 3, query_u < 2 * QUERY_SHARE / 3, query_u < QUERY_SHARE],
        [term, _FIRST_PAGE_QUERY + item % 9, _REF_QUERY],
        _NO_QUERY,
    )
    return pc.binary_join_element_wise(
        "https://", domain, lookup([p for p, _ in URL_PATHS], path), item_text, lookup(_QUERIES, query), "")
