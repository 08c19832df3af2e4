"""Zones and small files on shared storage: URLs through Hadoop and fsspec, each written once, marker last.

The daily flow runs with its zones given as a file:// URL (what every executor of a
cluster would read) and its deliveries on an S3 endpoint served on loopback by moto's
server, through s3fs. The release store is put on that endpoint too, and its writes are
cut at every step: a reader never takes what an interrupted writer left.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
import pytest
from releasing import ample_config
from s3_endpoint import ConnectionLost, connection_lost_after
from specs import traffic_aggregation
from upath import UPath

from core.config import Delivery
from core.ledger import Ledger
from core.location import location, url_of, write_once
from core.schemas import SOURCES
from core.signing import load_public_key
from core.sources import SourceLanding
from core.store import RECORD_FILE, TABLE_FILE, ReleaseStore, json_text
from stages.catalog import DATASET_MARKER, Catalog, MissingInput, NotLocal, read_parquet, write_parquet
from stages.delivery import verify_delivery
from stages.delivery.layout import PUBLIC_KEY, STAGING
from stages.formats import read_format
from stages.releaser import Releaser

DAY = dt.date(2026, 11, 1)
DELIVERY = Delivery(partner="metro-planning", purpose="aggregate_reports", policy_clause="clause")
SCHEMA = "subscriber string, region string, hour int, bytes bigint"
ARGUS = Path(__file__).resolve().parents[2] / "shared/data/netflow_ctu/2013-10-21_capture-1.binetflow"


@pytest.fixture(scope="module")
def flows(spark):
    rows = [(f"s{i}", "North" if i % 2 else "South", i % 2, 10 * (i % 7)) for i in range(60)]
    return spark.createDataFrame(rows, SCHEMA)


# ---- locations -----------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "expected"), [
    ("hdfs://namenode:8020/kr/zones", "hdfs://namenode:8020/kr/zones/raw"),
    ("abfss://zones@kraccount.dfs.core.windows.net/kr", "abfss://zones@kraccount.dfs.core.windows.net/kr/raw"),
    ("s3a://kr-bucket/zones", "s3a://kr-bucket/zones/raw"),
    ("file:///mnt/shared/zones", "file:///mnt/shared/zones/raw"),
])
def test_a_zone_url_keeps_its_host_and_scheme_for_spark(url, expected):
    # UPath keeps a name node's host and an Azure account as fsspec options, not in its text.
    assert url_of(location(url) / "raw") == expected


def test_a_local_folder_stays_a_path():
    assert location("data/x") == Path("data/x") and url_of(Path("/a/b")) == "/a/b"


def test_zones_url_moves_every_zone_and_leaves_the_driver_state_local(tmp_path):
    zones = (tmp_path / "shared").as_uri()
    catalog = Catalog.from_env(tmp_path / "data", tmp_path / "out", zones)
    spec = SOURCES["network_flows"]
    for path in (catalog.landing_root, catalog.raw(spec, DAY), catalog.protected(spec, DAY),
                 catalog.quarantine(spec, DAY), catalog.analyst(DAY), catalog.release_store.root):
        assert url_of(path).startswith(zones + "/"), path
    assert catalog.signing_keys == tmp_path / "data" / "keys"
    assert catalog.data_docs(DAY, "r").is_relative_to(tmp_path / "data")


def test_a_data_folder_given_as_a_url_is_refused_naming_where_the_zones_go(tmp_path):
    with pytest.raises(NotLocal, match="KR_ZONES_URL"):
        Catalog.from_env("s3a://bucket/data", tmp_path / "out")


# ---- Spark datasets: complete only with their _SUCCESS ---------------------------------------


def test_a_dataset_without_its_success_marker_is_not_read(spark, tmp_path):
    path = location((tmp_path / "raw").as_uri())
    write_parquet(spark.range(5), path)
    assert read_parquet(spark, path).count() == 5
    (path / DATASET_MARKER).unlink()  # what a writer that died before its commit leaves
    with pytest.raises(MissingInput, match=r"incomplete dataset .*interrupted"):
        read_parquet(spark, path)


def test_a_source_pattern_may_be_a_url_and_its_glob_skips_hidden_files(spark, tmp_path):
    day_folder = tmp_path / "exports" / "2013-10-21"
    day_folder.mkdir(parents=True)
    (day_folder / "capture-1.binetflow").write_bytes(ARGUS.read_bytes())
    (day_folder / ".capture-2.binetflow.part").write_text("an upload in progress")
    landing = SourceLanding(path=(tmp_path / "exports").as_uri() + "/{day}/*.binetflow", format="binetflow")
    catalog = Catalog.from_env(tmp_path / "data", tmp_path / "out")
    (found,) = catalog.source_input(SOURCES["network_flows"], dt.date(2013, 10, 21), landing)
    assert isinstance(found, UPath) and url_of(found) == (day_folder / "capture-1.binetflow").as_uri()
    mapped, _, _ = read_format(spark, "binetflow", found)
    local, _, _ = read_format(spark, "binetflow", day_folder / "capture-1.binetflow")
    assert mapped.count() == local.count() > 0


# ---- the release store on S3 -------------------------------------------------------------------


def _releaser(tmp_path: Path, store_url: str, seed: int = 0) -> Releaser:
    return Releaser(Ledger(tmp_path / "ledger.sqlite"), ReleaseStore(store_url), ample_config(),
                    random_state=np.random.RandomState(seed))


def test_a_release_store_on_s3_is_charged_written_once_and_served_again(s3_endpoint, tmp_path, flows):
    store_url = s3_endpoint.bucket() + "/releases"
    first = _releaser(tmp_path, store_url).release(flows, traffic_aggregation(), DAY, DELIVERY)
    again = _releaser(tmp_path, store_url, seed=1).release(flows, traffic_aggregation(), DAY, DELIVERY)
    assert not first.reused and again.reused and again.table.equals(first.table)
    store = ReleaseStore(store_url)
    assert store.numbers("traffic", DAY.isoformat()) == [1]
    assert store.ledger_id() == Ledger(tmp_path / "ledger.sqlite").id
    (charge,) = Ledger(tmp_path / "ledger.sqlite").charges()
    assert charge.state == "stored" and first.record.ledger_entry_id == charge.id
    files = fsspec.filesystem("s3").find(store_url)
    assert sorted(f.rsplit("/", 1)[-1] for f in files) == sorted([RECORD_FILE, TABLE_FILE, "store.json"])


def _what_a_reader_takes(store_url: str) -> list[pd.DataFrame]:
    store = ReleaseStore(store_url)
    return [store.read("traffic", DAY.isoformat(), n).table()
            for n in store.numbers("traffic", DAY.isoformat())]


@pytest.mark.parametrize("writes_allowed", [0, 1, 2])  # store.json, release.parquet, release.json
def test_an_interrupted_release_on_s3_leaves_nothing_a_reader_takes(s3_endpoint, tmp_path, flows,
                                                                     writes_allowed):
    store_url = s3_endpoint.bucket() + "/releases"
    with connection_lost_after(writes_allowed), pytest.raises(ConnectionLost):
        _releaser(tmp_path, store_url).release(flows, traffic_aggregation(), DAY, DELIVERY)
    assert _what_a_reader_takes(store_url) == []
    retried = _releaser(tmp_path, store_url).release(flows, traffic_aggregation(), DAY, DELIVERY)
    (charge,) = Ledger(tmp_path / "ledger.sqlite").charges()  # the retry took up the first charge
    assert charge.state == "stored" and retried.record.ledger_entry_id == charge.id
    (table,) = _what_a_reader_takes(store_url)
    assert table.equals(retried.table)


def test_the_interruption_check_catches_a_store_that_writes_its_record_first(s3_endpoint):
    """Negative control: the same cut, on a write that puts the marker first, leaves a record a
    reader takes with no table behind it."""
    store_url = s3_endpoint.bucket() + "/releases"
    final = UPath(store_url) / "traffic" / DAY.isoformat() / "1"

    def record_first(folder):
        (folder / RECORD_FILE).write_text(json_text({"release_id": "x"}))
        with (folder / TABLE_FILE).open("wb") as out:
            pd.DataFrame({"a": [1]}).to_parquet(out)

    with connection_lost_after(1), pytest.raises(ConnectionLost):
        write_once(final, record_first, marker=RECORD_FILE)
    assert (final / RECORD_FILE).exists() and not (final / TABLE_FILE).exists()


# ---- the daily flow: zones as file:// URLs, deliveries on S3 ------------------------------------


@pytest.fixture(scope="module")
def url_run(tmp_path_factory, spark, prefect_harness, config_dir, s3_endpoint):
    from flows.daily import daily_partner_reports
    from stages.generate import write_landing

    root = tmp_path_factory.mktemp("url-zones")
    shared = root / "shared"  # stands for the mount every executor reads
    write_landing(shared / "landing", n_subscribers=200, days=1, seed=5, bad_row_rate=0.03)
    out = s3_endpoint.bucket() + "/deliveries"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("KR_ZONES_URL", shared.as_uri())
        summary = daily_partner_reports(data_dir=str(root / "data"), out_dir=out, config_dir=str(config_dir),
                                        demo=True)
        again = daily_partner_reports(data_dir=str(root / "data"), out_dir=out, config_dir=str(config_dir),
                                      demo=True)
    return {"root": root, "shared": shared, "out": out, "summary": summary, "again": again}


def test_the_daily_flow_runs_on_zones_given_as_urls(url_run):
    summary, shared = url_run["summary"], url_run["shared"]
    assert summary["reports"] and not summary["failed_reports"] and not summary["refused_reports"]
    assert all(r["charged_this_run"] for r in summary["reports"])
    for source in summary["sources"]:
        assert source["rows_in"] == source["rows_kept"] + source["rows_quarantined"]
        assert source["raw_path"].startswith(shared.as_uri() + "/raw/")
        assert (Path(source["raw_path"].removeprefix("file://")) / DATASET_MARKER).is_file()
    records = (shared / "releases").glob(f"*/*/*/{RECORD_FILE}")
    releases = sorted(p.relative_to(shared).parts[1] for p in records)
    assert releases == sorted(r["report"] for r in summary["reports"])
    assert (shared / "analyst").is_dir() and (shared / "protected").is_dir()


def test_the_data_folder_keeps_only_the_drivers_own_state(url_run):
    kept = {p.name for p in (url_run["root"] / "data").iterdir()}
    assert not kept & {"landing", "raw", "quarantine", "protected", "analyst", "releases"}
    assert "ledger.sqlite" in kept


def test_deliveries_on_s3_are_signed_last_and_verify(url_run):
    fs = fsspec.filesystem("s3")
    for report in url_run["summary"]["reports"]:
        delivery = report["delivery"]
        assert delivery.startswith("s3://"), delivery
        partner_root = delivery.rsplit("/", 2)[0]
        key = load_public_key(fs.cat_file(f"{partner_root}/{PUBLIC_KEY}"), PUBLIC_KEY)
        verify_delivery(delivery, key, allow_demo=True)
    assert not [f for f in fs.find(url_run["out"]) if f"/{STAGING}/" in f]


def test_a_second_run_on_url_zones_serves_the_store_without_a_new_charge(url_run):
    first, again = url_run["summary"], url_run["again"]
    assert [r["report"] for r in again["reports"]] == [r["report"] for r in first["reports"]]
    assert all(r["reused"] for r in again["reports"]) and again["charged_this_run"] == []
    assert [r["release_id"] for r in again["reports"]] == [r["release_id"] for r in first["reports"]]

