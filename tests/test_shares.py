"""Shares of a parent's total: post-processing of noisy values, with their noise."""

import numpy as np
import pandas as pd
import pytest

from core.config import Aggregation, load_pipeline_config, load_report_specs
from core.noise_plan import plan_aggregation, published_columns
from core.shares import with_shares


@pytest.fixture(scope="module")
def plan(config_dir):
    spec = next(s for s in load_report_specs(config_dir) if s.name == "device_brand_region")
    return plan_aggregation(spec.aggregation, load_pipeline_config(config_dir).regions)


def _release(rows, sd=10.0):
    frame = pd.DataFrame(rows, columns=["region", "brand", "status", "devices", "owners"])
    for metric in ("devices", "owners"):
        frame[metric] = frame[metric].astype("Int64")
        frame[f"{metric}_noise_sd"] = sd
    return frame


def test_shares_add_up_to_one_per_parent_over_published_cells(plan):
    release = _release([
        ("Seoul", "Samsung", "released", 300, 200), ("Seoul", "Apple", "released", 100, 90),
        ("Seoul", "LG", "merged", None, None), ("Seoul", None, "remainder", 100, 30),
        ("Busan", "Samsung", "released", 50, 40), ("Busan", "Apple", "suppressed", None, None),
        ("Jeju", "Samsung", "released", 0, 0),
    ])
    shares = with_shares(release, plan)
    seoul = shares[shares["region"] == "Seoul"]
    assert seoul["devices_share"].tolist()[:2] == pytest.approx([0.6, 0.2])
    assert seoul["devices_share"].sum() == pytest.approx(1.0)
    assert seoul.loc[seoul["status"] == "merged", "devices_share"].isna().all()
    busan = shares[shares["region"] == "Busan"]
    assert busan["devices_share"].tolist()[0] == pytest.approx(1.0)
    assert np.isnan(busan["devices_share"].tolist()[1])
    assert shares.loc[shares["region"] == "Jeju", "devices_share"].isna().all()  # 0 of 0: no share
    shared = shares[shares["devices_share"].notna()]
    low, high = shared["devices_share_ci95_low"], shared["devices_share_ci95_high"]
    assert ((low <= shared["devices_share"]) & (shared["devices_share"] <= high)).all()
    assert ((low >= 0) & (high <= 1)).all()
    assert shares.loc[shares["devices_share"].isna(), "devices_share_noise_sd"].isna().all()


def test_the_claimed_noise_of_a_share_matches_simulation(plan):
    rng = np.random.default_rng(7)
    true = np.array([400.0, 250.0, 120.0, 60.0, 20.0])
    sd = 25.0
    draws = true + rng.normal(0, sd, size=(20_000, true.size))
    empirical = (draws[:, 0] / draws.sum(axis=1)).std()
    release = _release([("Seoul", b, "released", int(v), int(v)) for b, v in
                        zip(["Samsung", "Apple", "LG", "Google", "Xiaomi"], true, strict=True)], sd=sd)
    claimed = with_shares(release, plan)["devices_share_noise_sd"].iloc[0]
    assert claimed == pytest.approx(empirical, rel=0.05)


def test_the_stored_columns_follow_the_declared_order(plan):
    release = _release([("Seoul", "Samsung", "released", 3, 2)])
    shares = with_shares(release, plan)
    added = [c for c in published_columns(plan) if c.endswith(("_share", "_share_noise_sd"))]
    assert added == ["devices_share", "devices_share_noise_sd", "owners_share", "owners_share_noise_sd"]
    assert list(shares.columns[-8:]) == published_columns(plan)[-8:]


@pytest.mark.parametrize(
    ("change", "message"),
    [({"share_across": "colour"}, "share_across 'colour' is not a group key"),
     ({"kind": "quantiles", "column": "x", "lower": 0, "upper": 1, "quantiles": [0.5],
       "share_across": "brand"}, "share_across needs one of")],
)
def test_a_share_must_be_across_a_group_key_of_an_additive_metric(plan, change, message):
    data = plan.aggregation.model_dump()
    data["metrics"][0].update(change)
    with pytest.raises(ValueError, match=message):
        Aggregation.model_validate(data)


def test_explain_says_what_a_share_is(capsys, config_dir):
    from kr_reports.cli import main

    assert main(["explain", "device_brand_region", "--config-dir", str(config_dir), "--no-spark"]) == 0
    assert "devices_share: each cell's share of its parent's published total across brand" in (
        capsys.readouterr().out)
