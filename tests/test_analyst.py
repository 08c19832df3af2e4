import datetime as dt

from transforms.analyst import analyst_records


def test_one_row_per_subscriber_with_quasi_identifiers_and_usage_band(spark):
    subscribers = spark.createDataFrame(
        [("p1", "Seoul", "30-39", "5g_slim", "a;b;c;d"), ("p2", "Busan", "40-49", "prepaid", None),
         ("p3", None, "20-29", "lte_basic", "music")],
        "subscriber string, region string, age_band string, plan string, addons string",
    )
    devices = spark.createDataFrame(
        [("p1", "Apple", dt.date(2020, 1, 1)), ("p1", "Samsung", dt.date(2024, 1, 1)),
         ("p2", "LG", dt.date(2021, 1, 1))],
        "subscriber string, brand string, first_seen date",
    )
    flows = spark.createDataFrame(
        [("p1", 60_000_000), ("p1", 50_000_000), ("p2", 5_000), ("ghost", 1)],
        "subscriber string, bytes bigint",
    )
    rows = {r["plan"]: r.asDict() for r in analyst_records(subscribers, devices, flows).collect()}
    assert len(rows) == 3 and "subscriber" not in rows["5g_slim"]
    assert rows["5g_slim"] == {"region": "Seoul", "age_band": "30-39", "plan": "5g_slim", "addons": "3+",
                               "device_brand": "Samsung", "usage_band": "100 MB-1 GB"}
    assert (rows["prepaid"]["addons"], rows["prepaid"]["usage_band"]) == ("0", "under 10 MB")
    assert rows["lte_basic"]["region"] == "unknown" and rows["lte_basic"]["device_brand"] == "none"
