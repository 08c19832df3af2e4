"""Synthetic web visits: a day of page visits per subscriber, Zipf domains, a usual browser."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from core.schemas import WEB_VISITS
from synthetic.draws import (
    RECORD_KEY,
    SUBSCRIBER_KEY,
    daily_count,
    event_time,
    lognormal,
    normal,
    pick,
    random_bits,
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
    select_landing,
    subscriber_ip,
    with_records_per_subscriber,
    with_subscriber_key,
)


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

