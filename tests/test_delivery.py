"""Partner delivery: signing keys, atomic publication on local and fsspec targets, verify, report page."""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import os
import re
import shutil
import stat
import subprocess
import sys
import uuid
from html.parser import HTMLParser
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from disclosure_checks import strict_json
from fsspec.implementations.memory import MemoryFileSystem
from releasing import open_releaser
from s3_endpoint import ConnectionLost, connection_lost_after
from specs import report_spec

import stages.delivery as delivery_module
from core import noise_plan, report_page
from core.config import ConfigError, Partner, ReportSpec, load_pipeline_config
from core.disclosure import DisclosureError
from core.release_record import MetricRecord, ReleaseRecord
from core.signing import (
    SigningKeyError,
    demo_key_path,
    fingerprint,
    load_public_key,
    resolve_signing_key,
)
from core.store import StoredRelease
from kr_reports.cli import main
from stages.catalog import Catalog
from stages.delivery import (
    PUBLIC_KEY,
    SIGNATURE,
    BadSignature,
    ChecksumMismatch,
    Delivered,
    DeliveryIncomplete,
    DemoSigned,
    ManifestInvalid,
    build_delivery,
    check_delivery_setup,
    deliver,
    verify_checksums,
    verify_delivery,
)

ROOT = Path(__file__).resolve().parents[1]
KEY_ENV = "KR_TEST_SIGNING_KEY"
REGIONS = ("Seoul", "Busan", "Daegu")
DAY = "2026-11-01"
PERIOD = dt.date.fromisoformat(DAY)


# ---- a small release, built by hand -------------------------------------------------------


def _spec(name: str = "traffic_region_hour", group_by: list | None = None, **extra) -> ReportSpec:
    fields = {
        "name": name,
        "source": "network_flows",
        "partner": "metro-planning",
        "purpose": "aggregate_reports",
        "policy_clause": "aggregate reports",
        "group_by": group_by or [{"column": "region", "values": "regions"},
                                 {"column": "hour", "values": "hours"}],
        "contribution": {"max_groups_per_subscriber": 4, "max_rows_per_group": 5},
        "metrics": [
            {"name": "distinct_subscribers", "kind": "count_distinct_subscribers", "epsilon": 0.5},
            {"name": "total_bytes", "kind": "sum", "column": "bytes", "lower": 0, "upper": 1000,
             "epsilon": 0.3},
            {"name": "flow_bytes", "kind": "quantiles", "column": "bytes", "lower": 0, "upper": 1000,
             "quantiles": [0.5, 0.9], "epsilon": 0.2},
        ],
        "min_subscribers": 5,
        "sparse_cells": "roll_up",
        "roll_up": "hour",
        **extra,
    }
    return report_spec(fields)


def _release_frame(spec: ReportSpec, keys: pd.DataFrame, seed: int = 3) -> pd.DataFrame:
    """A release-shaped frame: noisy-looking values with intervals, some cells merged into remainders."""
    rng = np.random.default_rng(seed)
    aggregation = spec.aggregation
    plan = noise_plan.plan_aggregation(aggregation, REGIONS)
    frame = keys.reset_index(drop=True).copy()
    frame["status"], frame["cells_merged"] = "released", 1
    for metric in plan.metrics:
        for output in metric.outputs:
            value = rng.integers(0, 500, len(frame)).astype(float)
            frame[output], frame[f"{output}_noise_sd"] = value, 9.0
            frame[f"{output}_ci95_low"], frame[f"{output}_ci95_high"] = value - 18, value + 18
        if metric.kind == "quantiles":
            flag = noise_plan.insufficient_column(metric.name)
            frame[flag] = pd.array([False] * len(frame), dtype="boolean")
    if aggregation.roll_up:
        merged = frame.index % 7 == 3
        frame.loc[merged, "status"] = "merged"
        value_columns = [c for c in noise_plan.release_columns(plan)
                         if c not in (*aggregation.group_columns, "status", "cells_merged")]
        frame.loc[merged, value_columns] = np.nan
        parents = [k for k in aggregation.group_columns if k != aggregation.roll_up]
        remainder = frame[merged].groupby(parents, as_index=False).size()
        remainder = remainder.drop(columns="size").assign(status="remainder", cells_merged=2)
        for column in value_columns:
            remainder[column] = 40.0
        for metric in plan.metrics:  # remainders have no quantiles: noisy trees do not add up
            if metric.kind == "quantiles":
                for output in metric.outputs:
                    columns = [output, f"{output}_noise_sd", f"{output}_ci95_low", f"{output}_ci95_high"]
                    remainder[columns] = np.nan
                remainder[noise_plan.insufficient_column(metric.name)] = True
        frame = pd.concat([frame, remainder], ignore_index=True)
    return frame[noise_plan.release_columns(plan)]


def _region_hour_keys(regions=REGIONS) -> pd.DataFrame:
    return pd.DataFrame([(r, h) for r in regions for h in range(24)], columns=["region", "hour"])


def _release_record(spec: ReportSpec, frame: pd.DataFrame) -> ReleaseRecord:
    """A hand-made record for rendering pages; deliveries use records the front door made."""
    plan = noise_plan.plan_aggregation(spec.aggregation, REGIONS)
    return ReleaseRecord(
        release_id=f"{spec.name}/{DAY}", number=1, ledger_id="test-ledger", ledger_entry_id=7,
        aggregation_hash=spec.aggregation.fingerprint(), report=spec.name, source=spec.aggregation.source,
        partner=spec.delivery.partner, period=DAY, accounting=spec.aggregation.accounting,
        epsilon=plan.epsilon, delta=plan.delta, rho=plan.rho, cells=len(frame),
        cells_by_status={k: int(v) for k, v in frame["status"].value_counts().items()},
        metrics=tuple(MetricRecord(m.name, m.kind, m.metric.column, tuple(m.outputs), m.epsilon, m.delta,
                                   m.rho, parts=()) for m in plan.metrics),
        partition_selection=None, created_at="2026-11-02T00:00:00+00:00",
    )


# ---- a release made through the front door ------------------------------------------------

FLOWS_SCHEMA = "subscriber string, region string, hour int, bytes bigint"
BUSY_HOURS = (8, 9, 18)


def _flow_rows(subscribers: int = 240, seed: int = 5) -> list[tuple]:
    """Protected-looking flows: most in a few busy hours (cells released), the rest sparse (merged)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(subscribers):
        region = REGIONS[i % len(REGIONS)]
        for _ in range(3):
            hour = int(rng.choice(BUSY_HOURS)) if rng.random() < 0.8 else int(rng.integers(0, 24))
            rows.append((f"sub{i:04d}", region, hour, int(rng.integers(0, 1200))))
    return rows


@pytest.fixture(scope="module")
def flows_df(spark):
    return spark.createDataFrame(_flow_rows(), FLOWS_SCHEMA)


def _front_door(folder: Path):
    return open_releaser(folder, REGIONS, random_state=np.random.RandomState(0))


@pytest.fixture(scope="module")
def stored_release(tmp_path_factory, flows_df):
    """A release made by the Releaser and stored, as the release stage leaves it (read only: shared)."""
    spec = _spec()
    made = _front_door(tmp_path_factory.mktemp("store")).release(flows_df, spec.aggregation, PERIOD,
                                                                 spec.delivery)
    return spec, made.stored, made.table


@pytest.fixture
def signing_env(monkeypatch):
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    monkeypatch.setenv(KEY_ENV, pem.decode())
    return key


def _partner(target: str | None = None, reference: str = f"env:{KEY_ENV}") -> Partner:
    return Partner(id="metro-planning", allowed_purposes=("aggregate_reports",), delivery_target=target,
                   signing_key=reference)


def _catalog(tmp_path) -> Catalog:
    return Catalog(data_dir=tmp_path / "data", out_dir=tmp_path / "out")


def _deliver(tmp_path, stored, partner, demo=False) -> Delivered:
    spec, release, _ = stored
    validation = {"suite": "release", "success": True, "evaluated": 12, "failed": 0}
    return deliver(_catalog(tmp_path), spec, release, validation, partner, demo)


def _public_key_file(tmp_path, key: Ed25519PrivateKey) -> Path:
    path = tmp_path / "partner-copy.pub.pem"
    path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo))
    return path


# ---- local deliveries ---------------------------------------------------------------------


def test_a_local_delivery_is_signed_and_verifies_with_the_published_public_key(
        tmp_path, stored_release, signing_env):
    result = _deliver(tmp_path, stored_release, _partner())
    delivery = Path(result.path)
    assert result.created
    assert delivery == tmp_path / "out/deliveries/metro-planning/traffic_region_hour" / DAY
    published = delivery.parents[1] / PUBLIC_KEY
    public = load_public_key(published.read_bytes(), str(published))
    assert fingerprint(public) == fingerprint(signing_env.public_key())
    verified = verify_delivery(delivery, public)
    assert set(verified.files) == {"data.parquet", "data.csv", "report.html"} and verified.unlisted == ()
    manifest = json.loads((delivery / "manifest.json").read_text())
    assert manifest["signing"]["public_key_fingerprint"] == fingerprint(public)
    record = stored_release[1].record
    assert manifest["ledger_entry_id"] == record.ledger_entry_id
    assert manifest["privacy"]["min_subscribers"] == 5
    assert manifest["release_id"] == record.release_id == f"traffic_region_hour/{DAY}"
    assert manifest["cells_by_status"] == record.cells_by_status
    assert manifest["rows_released"] == len(stored_release[2]) == sum(record.cells_by_status.values())
    assert {"cryptography", "fsspec", "pyspark"} <= set(manifest["software"])
    # a copy of the stored release, not new noise
    pd.testing.assert_frame_equal(pd.read_parquet(delivery / "data.parquet"), stored_release[2])
    assert not [p for p in delivery.parent.iterdir() if p.name.startswith(".")]


def test_a_signed_delivery_is_kept_as_it_is(tmp_path, stored_release, signing_env):
    first = _deliver(tmp_path, stored_release, _partner())
    manifest = (Path(first.path) / "manifest.json").read_bytes()
    again = _deliver(tmp_path, stored_release, _partner())
    assert not again.created
    assert (Path(first.path) / "manifest.json").read_bytes() == manifest


def test_a_deliberate_new_release_is_delivered_beside_the_first(tmp_path, flows_df, signing_env):
    spec = _spec()
    door = _front_door(tmp_path / "store")
    made = door.release(flows_df, spec.aggregation, PERIOD, spec.delivery)
    first = _deliver(tmp_path, (spec, made.stored, made.table), _partner())
    manifest = (Path(first.path) / "manifest.json").read_bytes()
    renoised = door.release(flows_df, spec.aggregation, PERIOD, spec.delivery, new_release=True)
    assert renoised.record.number == 2 and not renoised.reused
    second = _deliver(tmp_path, (spec, renoised.stored, renoised.table), _partner())
    assert second.created and Path(second.path) == Path(first.path).with_name(f"{DAY}.release-2")
    verify_delivery(Path(second.path), signing_env.public_key())
    second_manifest = json.loads((Path(second.path) / "manifest.json").read_text())
    assert second_manifest["release_id"] == f"{spec.name}/{DAY}#2"
    assert second_manifest["ledger_entry_id"] == renoised.record.ledger_entry_id
    assert renoised.record.ledger_entry_id != made.record.ledger_entry_id  # charged again
    pd.testing.assert_frame_equal(pd.read_parquet(Path(second.path) / "data.parquet"), renoised.table)
    assert (Path(first.path) / "manifest.json").read_bytes() == manifest  # the first stays as sent


def test_an_unsigned_local_delivery_is_replaced_whole(tmp_path, stored_release, signing_env):
    old = tmp_path / "out/deliveries/metro-planning/traffic_region_hour" / DAY
    old.mkdir(parents=True)
    (old / "data.csv").write_text("from before deliveries were signed\n")
    result = _deliver(tmp_path, stored_release, _partner())
    assert result.created
    verify_delivery(old, signing_env.public_key())
    assert "from before" not in (old / "data.csv").read_text()


def _damage_data(delivery: Path) -> None:
    with (delivery / "data.csv").open("a") as handle:
        handle.write("Seoul,0,released,1,999\n")


def _alter_manifest(delivery: Path) -> None:
    manifest = json.loads((delivery / "manifest.json").read_text())
    manifest["privacy"]["epsilon"] = 0.01
    (delivery / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _truncate_manifest(delivery: Path) -> None:
    text = (delivery / "manifest.json").read_text()
    (delivery / "manifest.json").write_text(text[: len(text) // 2])


DAMAGE = {
    "tampered data": (_damage_data, r"data\.csv: SHA-256 does not match"),
    "missing file": (lambda d: (d / "report.html").unlink(), r"report\.html: listed in manifest\.json but"),
    "altered manifest": (_alter_manifest, "signature does not match manifest.json"),
    "truncated manifest": (_truncate_manifest, "signature does not match manifest.json"),
    "missing signature": (lambda d: (d / SIGNATURE).unlink(), "not signed"),
    "garbled signature": (lambda d: (d / SIGNATURE).write_text("{not json"), "not a valid signature"),
    "missing delivery": (lambda d: shutil.rmtree(d), "no delivery here"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_verify_fails_with_a_clear_message_on_any_damage(
        tmp_path, stored_release, signing_env, capsys, damage):
    delivery = Path(_deliver(tmp_path, stored_release, _partner()).path)
    public = _public_key_file(tmp_path, signing_env)
    assert main(["verify", str(delivery), "--public-key", str(public)]) == 0
    assert "signature valid" in capsys.readouterr().out
    harm, message = DAMAGE[damage]
    harm(delivery)
    assert main(["verify", str(delivery), "--public-key", str(public)]) == 1
    captured = capsys.readouterr()
    assert "FAILED" in captured.err and captured.out == ""
    assert re.search(message, captured.err), captured.err


def test_verify_rejects_a_wrong_key_and_names_both_fingerprints(
        tmp_path, stored_release, signing_env, capsys):
    delivery = _deliver(tmp_path, stored_release, _partner()).path
    stranger = Ed25519PrivateKey.generate()
    code = main(["verify", delivery, "--public-key", str(_public_key_file(tmp_path, stranger))])
    err = capsys.readouterr().err
    assert code == 1
    assert fingerprint(stranger.public_key()) in err and fingerprint(signing_env.public_key()) in err
    assert "wrong key" in err


def test_a_manifest_resigned_with_another_key_fails_verification(tmp_path, stored_release, signing_env):
    """An attacker who swaps data and re-signs with their own key is caught by the partner's key."""
    from core.signing import SigningKey, sign_document

    delivery = Path(_deliver(tmp_path, stored_release, _partner()).path)
    _alter_manifest(delivery)
    forger = SigningKey("metro-planning", "attacker", demo=False, private=Ed25519PrivateKey.generate())
    (delivery / SIGNATURE).write_bytes(sign_document(forger, (delivery / "manifest.json").read_bytes()))
    with pytest.raises(BadSignature, match="not by the given public key"):
        verify_delivery(delivery, signing_env.public_key())


def _verify(delivery, public: Path, *options: str) -> int:
    return main(["verify", str(delivery), "--public-key", str(public), *options])


def test_an_unlisted_file_fails_unless_the_partner_names_it(tmp_path, stored_release, signing_env, capsys):
    delivery = Path(_deliver(tmp_path, stored_release, _partner()).path)
    public = _public_key_file(tmp_path, signing_env)
    (delivery / "notes.txt").write_text("added later")
    assert _verify(delivery, public) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert "FAILED" in captured.err and "notes.txt: not listed in manifest.json" in captured.err
    assert _verify(delivery, public, "--allow-extra", "notes.txt") == 0
    captured = capsys.readouterr()
    assert "warning: notes.txt is not listed" in captured.err and "signature valid" in captured.out
    (delivery / ".hidden").write_text("")  # naming one extra does not let another through
    assert _verify(delivery, public, "--allow-extra", "notes.txt") == 1
    assert ".hidden: not listed" in capsys.readouterr().err
    assert _verify(delivery, public, "--allow-extra", "notes.txt", "--allow-extra", ".hidden") == 0


def test_a_genuine_delivery_of_another_day_copied_into_a_days_folder_fails(
        tmp_path, stored_release, signing_env, capsys):
    delivery = Path(_deliver(tmp_path, stored_release, _partner()).path)
    public = _public_key_file(tmp_path, signing_env)
    next_day = delivery.with_name((PERIOD + dt.timedelta(days=1)).isoformat())
    shutil.copytree(delivery, next_day)
    assert _verify(next_day, public) == 1
    err = capsys.readouterr().err
    assert f"period '{DAY}', not '{next_day.name}'" in err and "another report, day or partner" in err
    second_release = delivery.with_name(f"{DAY}.release-2")  # the first release passed off as the second
    shutil.copytree(delivery, second_release)
    assert _verify(second_release, public) == 1
    assert f"period '{DAY}', not '{DAY}.release-2'" in capsys.readouterr().err
    other_report = delivery.parents[1] / "web_category_age_band" / DAY
    shutil.copytree(delivery, other_report)
    assert _verify(other_report, public) == 1
    assert "report 'traffic_region_hour', not 'web_category_age_band'" in capsys.readouterr().err
    other_partner = tmp_path / "out/deliveries/adreach/traffic_region_hour" / DAY
    shutil.copytree(delivery, other_partner)
    assert _verify(other_partner, public) == 1
    assert "partner 'metro-planning', not 'adreach'" in capsys.readouterr().err
    assert _verify(delivery, public) == 0


def test_a_target_not_named_by_the_partner_verifies_with_partner(
        tmp_path, stored_release, signing_env, capsys):
    target = tmp_path / "shared" / "metro-exports"
    delivery = Path(_deliver(tmp_path, stored_release, _partner(str(target))).path)
    public = _public_key_file(tmp_path, signing_env)
    assert _verify(delivery, public) == 1
    assert "give --partner" in capsys.readouterr().err
    assert _verify(delivery, public, "--partner", "metro-planning") == 0
    assert _verify(delivery, public, "--partner", "adreach") == 1


def test_a_pinned_fingerprint_catches_a_replaced_key_and_resigned_delivery(
        tmp_path, stored_release, signing_env, capsys, monkeypatch):
    """Who can write the partner's folder can replace signing_key.pub.pem and re-sign: the pin stops it."""
    from core.signing import SigningKey, sign_document

    delivery = Path(_deliver(tmp_path, stored_release, _partner()).path)
    genuine = fingerprint(signing_env.public_key())
    config = _config_with_test_keys(tmp_path)
    assert main(["key-fingerprint", "metro-planning", "--config-dir", str(config)]) == 0
    handed_out = capsys.readouterr().out.strip()
    assert handed_out == genuine
    published = delivery.parents[1] / PUBLIC_KEY
    assert _verify(delivery, published, "--fingerprint", handed_out) == 0
    assert f"pinned Ed25519 key {genuine}" in capsys.readouterr().out
    assert _verify(delivery, published, "--fingerprint", handed_out.removeprefix("sha256:").upper()) == 0
    capsys.readouterr()

    attacker = Ed25519PrivateKey.generate()
    _alter_manifest(delivery)
    manifest = json.loads((delivery / "manifest.json").read_text())
    manifest["signing"]["public_key_fingerprint"] = fingerprint(attacker.public_key())
    (delivery / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    forged = SigningKey("metro-planning", "attacker", demo=False, private=attacker)
    (delivery / SIGNATURE).write_bytes(sign_document(forged, (delivery / "manifest.json").read_bytes()))
    published.write_bytes(_public_key_file(tmp_path, attacker).read_bytes())
    assert _verify(delivery, published) == 0  # the key beside the deliveries vouches for anything
    capsys.readouterr()
    assert _verify(delivery, published, "--fingerprint", handed_out) == 1
    err = capsys.readouterr().err
    assert f"is {fingerprint(attacker.public_key())}, not the pinned {genuine}" in err
    assert err.count("\n") == 1
    with pytest.raises(SystemExit) as usage:
        _verify(delivery, published, "--fingerprint", "sha256:abc")
    assert usage.value.code == 2
    assert "64 hex digits" in capsys.readouterr().err


def test_a_demo_signed_delivery_fails_unless_allowed(tmp_path, stored_release, monkeypatch, capsys):
    monkeypatch.delenv(KEY_ENV, raising=False)
    result = _deliver(tmp_path, stored_release, _partner(), demo=True)
    delivery = Path(result.path)
    assert result.demo_key
    manifest = json.loads((delivery / "manifest.json").read_text())
    assert manifest["signing"]["demo_key"] is True and manifest["manifest_version"] == 2
    published = delivery.parents[1] / PUBLIC_KEY
    assert _verify(delivery, published) == 1
    err = capsys.readouterr().err
    assert "signed with a DEMO key" in err and "--allow-demo" in err and err.count("\n") == 1
    assert _verify(delivery, published, "--allow-demo") == 0
    captured = capsys.readouterr()
    assert "signature valid" in captured.out and "DEMO key signed this delivery" in captured.err
    config = _config_with_test_keys(tmp_path)
    options = ["--config-dir", str(config), "--data-dir", str(tmp_path / "data")]
    assert main(["key-fingerprint", "metro-planning", *options]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == manifest["signing"]["public_key_fingerprint"]
    assert "DEMO key" in captured.err


def test_a_manifest_that_does_not_say_its_key_is_not_a_demo_key_fails(tmp_path, stored_release, signing_env,
                                                                     capsys):
    from core.signing import SigningKey, sign_document

    delivery = Path(_deliver(tmp_path, stored_release, _partner()).path)
    manifest = json.loads((delivery / "manifest.json").read_text())
    del manifest["signing"]["demo_key"]  # as version 1 manifests were written
    manifest["manifest_version"] = 1
    (delivery / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    key = SigningKey("metro-planning", "test", demo=False, private=signing_env)
    (delivery / SIGNATURE).write_bytes(sign_document(key, (delivery / "manifest.json").read_bytes()))
    public = _public_key_file(tmp_path, signing_env)
    assert _verify(delivery, public) == 1
    assert "does not say whether a demo key signed it" in capsys.readouterr().err
    assert _verify(delivery, public, "--allow-demo") == 0


def test_verify_without_a_usable_public_key_exits_2(tmp_path, stored_release, signing_env, capsys):
    delivery = _deliver(tmp_path, stored_release, _partner()).path
    assert main(["verify", delivery, "--public-key", str(tmp_path / "absent.pem")]) == 2
    assert "public key file not found" in capsys.readouterr().err
    not_a_key = tmp_path / "junk.pem"
    not_a_key.write_text("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    assert main(["verify", delivery, "--public-key", str(not_a_key)]) == 2
    assert "not an Ed25519 public key" in capsys.readouterr().err


# ---- only private or public values leave (core.disclosure) --------------------------


def test_a_manifest_field_outside_the_allowlist_stops_the_delivery(
        tmp_path, stored_release, signing_env, monkeypatch):
    real = delivery_module.build._manifest

    def with_inputs(*args, **kwargs):
        return {**real(*args, **kwargs), "inputs": {"network_flows": {"rows_in": 5665}}}

    monkeypatch.setattr(delivery_module.build, "_manifest", with_inputs)
    with pytest.raises(DisclosureError, match=r"inputs\.network_flows\.rows_in"):
        _deliver(tmp_path, stored_release, _partner())
    assert not (tmp_path / "out/deliveries/metro-planning/traffic_region_hour").exists()


def test_a_release_with_an_unpublished_column_is_not_delivered(tmp_path, stored_release, signing_env):
    spec, stored, frame = stored_release
    store = tmp_path / "tampered"
    store.mkdir()
    frame.assign(rows_in=5665).to_parquet(store / "release.parquet", index=False)
    with pytest.raises(DisclosureError, match="not published: rows_in"):
        _deliver(tmp_path, (spec, StoredRelease(stored.record, store), frame), _partner())
    assert not (tmp_path / "out/deliveries/metro-planning/traffic_region_hour").exists()


def _zcdp_spec() -> ReportSpec:
    return _spec(accounting="zcdp", delta=1e-6, metrics=[
        {"name": "distinct_subscribers", "kind": "count_distinct_subscribers", "rho": 0.05},
        {"name": "total_bytes", "kind": "sum", "column": "bytes", "lower": 0, "upper": 1000, "precision": -2,
         "rho": 0.1},
    ])


def test_a_zcdp_release_is_delivered_with_no_nan_in_its_manifest(tmp_path, flows_df, signing_env):
    spec = _zcdp_spec()
    made = _front_door(tmp_path / "store").release(flows_df, spec.aggregation, PERIOD, spec.delivery)
    delivery = Path(_deliver(tmp_path, (spec, made.stored, made.table), _partner()).path)
    verify_delivery(delivery, signing_env.public_key())
    text = (delivery / "manifest.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    manifest = strict_json(text)
    assert manifest["privacy"]["accounting"] == "zcdp"
    assert math.isfinite(manifest["privacy"]["epsilon"]) and manifest["privacy"]["rho"] == pytest.approx(0.15)
    metrics = manifest["privacy"]["metrics"]
    assert [(m["epsilon"], m["delta"], m["rho"]) for m in metrics] == [(None, None, 0.05), (None, None, 0.1)]
    page = " ".join(_parsed((delivery / "report.html").read_text()).text)
    assert "rho 0.05" in page and "rho 0.1" in page and "zcdp accounting" in page


def test_a_record_with_nan_epsilons_is_delivered_with_nulls(tmp_path):
    """A record stored before the releaser wrote None for a zCDP metric's epsilon holds NaN."""
    spec = _zcdp_spec()
    frame = _release_frame(spec, _region_hour_keys())
    record = _release_record(spec, frame)
    assert math.isnan(record.metrics[0].epsilon)
    key = resolve_signing_key("metro-planning", f"env:{KEY_ENV}", tmp_path, demo=True)
    validation = {"suite": "release", "success": True, "evaluated": 12, "failed": 0}
    files = build_delivery(spec, record, frame, validation, key, "2026-11-02T00:00:00+00:00")
    manifest = strict_json(files["manifest.json"].decode())
    assert manifest["privacy"]["metrics"][0]["epsilon"] is None


FORMULA_KEYS = ("=1+2", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx", "Seoul")


def test_data_csv_neutralises_text_cells_a_spreadsheet_would_run(tmp_path):
    """A key starting = + - @ TAB or CR gets a leading quote; numbers stay numbers, Parquet as is."""
    spec = _spec()
    frame = _release_frame(spec, _region_hour_keys(FORMULA_KEYS))
    frame.loc[0, "total_bytes"] = -5.0  # noise makes negative sums: a number, not a formula
    key = resolve_signing_key("metro-planning", f"env:{KEY_ENV}", tmp_path, demo=True)
    validation = {"suite": "release", "success": True, "evaluated": 12, "failed": 0}
    files = build_delivery(spec, _release_record(spec, frame), frame, validation, key,
                           "2026-11-02T00:00:00+00:00")
    text = files["data.csv"].decode()
    cells = pd.read_csv(io.StringIO(text), dtype={"region": str})
    neutralised = {k if k == "Seoul" else "'" + k for k in FORMULA_KEYS}
    assert set(cells["region"]) == neutralised
    assert cells["total_bytes"].iloc[0] == -5.0
    assert ",-5.0," in text and "'-5" not in text  # the number is not quoted or prefixed
    assert set(pd.read_parquet(io.BytesIO(files["data.parquet"]))["region"]) == set(FORMULA_KEYS)
    assert delivery_module.sha256_bytes(files["data.csv"]) in json.loads(files["manifest.json"])[
        "files"].values()


def test_verify_checksums_reports_a_truncated_manifest_clearly(tmp_path, stored_release, signing_env):
    delivery = Path(_deliver(tmp_path, stored_release, _partner()).path)
    verify_checksums(delivery)
    _damage_data(delivery)
    with pytest.raises(ChecksumMismatch, match=r"data\.csv"):
        verify_checksums(delivery)
    _truncate_manifest(delivery)
    with pytest.raises(ManifestInvalid, match="not valid JSON"):
        verify_checksums(delivery)


def test_a_manifest_may_not_point_outside_its_delivery(tmp_path):
    delivery = tmp_path / "d"
    delivery.mkdir()
    (delivery / "manifest.json").write_text(json.dumps({"files": {"../../etc/passwd": "00"}}))
    with pytest.raises(ManifestInvalid, match="outside the delivery"):
        verify_checksums(delivery)


def test_verify_with_a_public_key_needs_no_spark_ledger_or_config(tmp_path, stored_release, signing_env):
    delivery = _deliver(tmp_path, stored_release, _partner()).path
    public = _public_key_file(tmp_path, signing_env)
    script = (
        "import sys\n"
        "sys.modules['pyspark'] = None  # any import of Spark now fails\n"
        "from kr_reports.cli import main\n"
        f"code = main(['verify', {delivery!r}, '--public-key', {str(public)!r}])\n"
        "assert 'stages.catalog' not in sys.modules and 'core.ledger' not in sys.modules\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "KR_DATA_DIR": str(tmp_path / "nowhere")})
    assert done.returncode == 0, done.stderr
    assert "signature valid" in done.stdout


def _config_with_test_keys(tmp_path) -> Path:
    """The shipped pipeline.yaml with every partner's key read from KEY_ENV."""
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    pipeline = yaml.safe_load((ROOT / "config" / "pipeline.yaml").read_text())
    for partner in pipeline["partners"]:
        partner["signing_key"] = f"env:{KEY_ENV}"
    (config / "pipeline.yaml").write_text(yaml.safe_dump(pipeline))
    return config


def test_the_operator_can_verify_with_the_configured_key(tmp_path, stored_release, signing_env, capsys):
    delivery = _deliver(tmp_path, stored_release, _partner()).path
    config = _config_with_test_keys(tmp_path)
    assert main(["verify", delivery, "--config-dir", str(config), "--data-dir", str(tmp_path / "data")]) == 0
    assert fingerprint(signing_env.public_key()) in capsys.readouterr().out


# ---- fsspec targets: staging, copy, signature last -----------------------------------------


@pytest.fixture
def memory_target():
    root = f"memory://kr-test-{uuid.uuid4().hex}/metro-planning"
    yield root
    fs, path = fsspec.core.url_to_fs(root)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def _remote_files(root: str) -> list[str]:
    fs, path = fsspec.core.url_to_fs(root)
    return sorted(p[len(path) + 1:] for p in fs.find(path, withdirs=False)) if fs.exists(path) else []


def test_a_memory_target_delivery_verifies_by_url(
        tmp_path, stored_release, signing_env, memory_target, capsys):
    result = _deliver(tmp_path, stored_release, _partner(memory_target))
    assert result.created and result.path.startswith("memory://")
    files = _remote_files(memory_target)
    assert PUBLIC_KEY in files
    assert f"traffic_region_hour/{DAY}/{SIGNATURE}" in files
    assert not [f for f in files if f.startswith(".staging")]
    fs, path = fsspec.core.url_to_fs(memory_target)
    public = tmp_path / "shared.pub.pem"
    public.write_bytes(fs.cat_file(f"{path}/{PUBLIC_KEY}"))
    assert main(["verify", result.path, "--public-key", str(public)]) == 0
    assert "3 files match" in capsys.readouterr().out
    assert not _deliver(tmp_path, stored_release, _partner(memory_target)).created


def test_a_failed_remote_delivery_leaves_nothing_visible_and_a_retry_succeeds(
        tmp_path, stored_release, signing_env, memory_target, monkeypatch):
    real_copy, copies = MemoryFileSystem.cp_file, []

    def copy_then_fail(self, path1, path2, **kwargs):
        copies.append(path2)
        if len(copies) == 3:  # two files already in place, then the store fails
            raise OSError("injected: connection reset")
        return real_copy(self, path1, path2, **kwargs)

    monkeypatch.setattr(MemoryFileSystem, "cp_file", copy_then_fail)
    with pytest.raises(OSError, match="injected"):
        _deliver(tmp_path, stored_release, _partner(memory_target))
    assert _remote_files(memory_target) == [PUBLIC_KEY]  # no data, no manifest, no staging
    delivery = f"{memory_target}/traffic_region_hour/{DAY}"
    with pytest.raises(DeliveryIncomplete):
        verify_delivery(delivery, signing_env.public_key())

    monkeypatch.setattr(MemoryFileSystem, "cp_file", real_copy)
    retry = _deliver(tmp_path, stored_release, _partner(memory_target))
    assert retry.created
    verify_delivery(delivery, signing_env.public_key())
    fs, path = fsspec.core.url_to_fs(delivery)
    delivered = pd.read_parquet(fs.open(f"{path}/data.parquet", "rb"))
    pd.testing.assert_frame_equal(delivered, stored_release[2])  # the stored release: no new noise


# Objects a delivery writes to S3: the public key, five staged files, five copies into place
# (the signature's last). Cut after none, the key, all staged, and all but the signature.
@pytest.mark.parametrize("writes_allowed", [0, 1, 6, 10])
def test_an_s3_delivery_cut_at_any_point_is_never_complete_looking_and_a_retry_succeeds(
        tmp_path, stored_release, signing_env, s3_endpoint, writes_allowed):
    target = s3_endpoint.bucket() + "/metro-planning"
    delivery = f"{target}/traffic_region_hour/{DAY}"
    with connection_lost_after(writes_allowed), pytest.raises(ConnectionLost):
        _deliver(tmp_path, stored_release, _partner(target))
    with pytest.raises(DeliveryIncomplete):
        verify_delivery(delivery, signing_env.public_key())
    retry = _deliver(tmp_path, stored_release, _partner(target))
    assert retry.created and retry.path == delivery
    verify_delivery(delivery, signing_env.public_key())
    fs, path = fsspec.core.url_to_fs(delivery)
    pd.testing.assert_frame_equal(pd.read_parquet(fs.open(f"{path}/data.parquet", "rb")), stored_release[2])
    assert not [f for f in fs.find(target) if "/.staging/" in f]


def test_leftovers_of_a_crashed_remote_delivery_count_as_not_delivered_and_are_replaced(
        tmp_path, stored_release, signing_env, memory_target, capsys):
    fs, root = fsspec.core.url_to_fs(memory_target)
    final = f"{root}/traffic_region_hour/{DAY}"
    fs.pipe_file(f"{final}/data.csv", b"half a file")
    fs.pipe_file(f"{final}/manifest.json", b'{"files": {}}')
    fs.pipe_file(f"{root}/.staging/traffic_region_hour/{DAY}/dead/data.csv", b"stale")
    url = fs.unstrip_protocol(final)
    public = _public_key_file(tmp_path, signing_env)
    assert main(["verify", url, "--public-key", str(public)]) == 1
    assert "not signed" in capsys.readouterr().err

    assert _deliver(tmp_path, stored_release, _partner(memory_target)).created
    assert main(["verify", url, "--public-key", str(public)]) == 0
    assert fs.cat_file(f"{final}/data.csv") != b"half a file"
    assert not [f for f in _remote_files(memory_target) if f.startswith(".staging")]


def test_an_unusable_target_protocol_stops_the_run_before_data_is_read(tmp_path, signing_env):
    with pytest.raises(ConfigError, match="partner 'metro-planning': delivery target protocol 'nosuchfs'"):
        check_delivery_setup(_catalog(tmp_path), [_partner("nosuchfs://bucket/x")], demo=False)


def test_an_s3_target_without_s3fs_says_which_extra_brings_it(tmp_path, signing_env, monkeypatch):
    # s3fs is an extra: hide it (and fsspec's cached class) so the hint is checked wherever it is installed.
    monkeypatch.setitem(sys.modules, "s3fs", None)
    monkeypatch.delitem(sys.modules["fsspec.registry"]._registry, "s3", raising=False)
    with pytest.raises(ConfigError, match=r"protocol 's3'.*pip install 'kr-reports\[s3\]'"):
        check_delivery_setup(_catalog(tmp_path), [_partner("s3://bucket/x")], demo=False)


# ---- signing keys -------------------------------------------------------------------------


def test_demo_mode_makes_one_persistent_owner_only_demo_key(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv(KEY_ENV, raising=False)
    catalog = _catalog(tmp_path)
    notes = check_delivery_setup(catalog, [_partner()], demo=True)
    path = demo_key_path(tmp_path / "data" / "keys", "metro-planning")
    assert len(notes) == 1 and "DEMO key" in notes[0] and str(path) in notes[0]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = resolve_signing_key("metro-planning", f"env:{KEY_ENV}", path.parent, demo=True)
    again = resolve_signing_key("metro-planning", f"env:{KEY_ENV}", path.parent, demo=True)
    assert first.demo and first.fingerprint == again.fingerprint
    assert "PRIVATE KEY" not in caplog.text and "BEGIN" not in repr(first)


def test_outside_demo_mode_a_missing_key_names_partner_and_reference(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    expected = f"partner 'metro-planning': signing key 'env:{KEY_ENV}' is not set"
    with pytest.raises(SigningKeyError, match=expected):
        check_delivery_setup(_catalog(tmp_path), [_partner()], demo=False)
    with pytest.raises(SigningKeyError, match="names no file"):
        check_delivery_setup(_catalog(tmp_path), [_partner(reference="file:no/such/key.pem")], demo=False)
    assert not (tmp_path / "data").exists()  # nothing made, nothing read


def test_the_run_stops_on_a_missing_signing_key_before_reading_data(
        tmp_path, config_dir, prefect_harness, monkeypatch):
    from core.keys import KEY_ENV as PSEUDONYM_KEY_ENV
    from flows.daily import daily_partner_reports

    monkeypatch.setenv(PSEUDONYM_KEY_ENV, "da1e6bed5d4ff7824db17c4b4a7928ff8fea7fa7af3992cc036c52526eaa61da")
    for partner in load_pipeline_config(config_dir).partners:
        monkeypatch.delenv(partner.signing_key.removeprefix("env:"), raising=False)
    with pytest.raises(SigningKeyError, match=r"partner '[a-z-]+': signing key 'env:KR_SIGNING_KEY_"):
        daily_partner_reports(data_dir=str(tmp_path / "no-data"), out_dir=str(tmp_path / "out"),
                              config_dir=str(config_dir), demo=False)
    assert not (tmp_path / "no-data").exists()


def test_keys_resolve_from_a_file_or_hex_in_the_environment(tmp_path, monkeypatch):
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    (tmp_path / "k.pem").write_bytes(pem)
    from_file = resolve_signing_key("p", f"file:{tmp_path / 'k.pem'}", tmp_path, demo=False)
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                            serialization.NoEncryption())
    monkeypatch.setenv(KEY_ENV, raw.hex())
    from_env = resolve_signing_key("p", f"env:{KEY_ENV}", tmp_path, demo=False)
    assert from_file.fingerprint == from_env.fingerprint == fingerprint(key.public_key())
    assert not from_file.demo and not from_env.demo


def test_a_bad_key_is_an_error_that_never_shows_the_key(tmp_path, monkeypatch):
    secret = "-----BEGIN PRIVATE KEY-----\nTOPSECRETMATERIAL0123456789\n-----END PRIVATE KEY-----\n"
    monkeypatch.setenv(KEY_ENV, secret)
    with pytest.raises(SigningKeyError) as garbled:
        resolve_signing_key("metro-planning", f"env:{KEY_ENV}", tmp_path, demo=True)  # demo does not mask it
    assert "TOPSECRET" not in str(garbled.value)
    assert "not an unencrypted Ed25519 private key" in str(garbled.value)
    rsa_pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (tmp_path / "rsa.pem").write_bytes(rsa_pem)
    with pytest.raises(SigningKeyError, match="not an unencrypted Ed25519"):
        resolve_signing_key("metro-planning", f"file:{tmp_path / 'rsa.pem'}", tmp_path, demo=False)


@pytest.mark.parametrize("reference", ["vault:secret/metro", "KR_SIGNING_KEY", "env:", "env:not a name",
                                       "-----BEGIN PRIVATE KEY-----\nTOPSECRETMATERIAL\n"])
def test_an_unknown_key_reference_is_a_config_error(tmp_path, reference):
    pipeline = yaml.safe_load((ROOT / "config" / "pipeline.yaml").read_text())
    pipeline["partners"][0]["signing_key"] = reference
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(pipeline))
    with pytest.raises(ConfigError, match=r"partners\.0.*'env:VARIABLE'") as error:
        load_pipeline_config(tmp_path)
    assert "TOPSECRET" not in str(error.value)


def test_the_shipped_partners_name_their_keys_and_default_targets(config_dir):
    partners = load_pipeline_config(config_dir).partners
    assert all(p.signing_key.startswith("env:KR_SIGNING_KEY_") for p in partners)
    assert all(p.delivery_target is None for p in partners)


# ---- the report page ----------------------------------------------------------------------


class _Page(HTMLParser):
    """Tags, attributes, text, and which <svg> sits in which metric section."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.text: list[str] = []
        self.svgs_by_metric: dict[str, int] = {}
        self.panels_by_svg: list[int] = []
        self._section: str | None = None
        self._depth = 0

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += attrs
        ident = dict(attrs).get("id") or ""
        if tag == "section" and ident.startswith("metric-"):
            self._section = ident.removeprefix("metric-")
            self.svgs_by_metric[self._section] = 0
        if tag == "svg" and self._section:
            self.svgs_by_metric[self._section] += 1
            self.panels_by_svg.append(0)
            self._depth = 0
        if tag == "g" and self._section and self.panels_by_svg:
            self._depth += 1
            if self._depth == 1:
                self.panels_by_svg[-1] += 1

    def handle_endtag(self, tag):
        if tag == "g" and self._section:
            self._depth -= 1
        if tag == "section":
            self._section = None

    def handle_data(self, data):
        self.text.append(data)


def _parsed(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    page.close()
    return page


def _render(spec: ReportSpec, frame: pd.DataFrame) -> str:
    record = _release_record(spec, frame)
    return report_page.render_report(frame, report_page.page_info(spec, record))


def test_the_report_page_draws_each_metric_and_needs_no_network():
    spec = _spec()
    html = _render(spec, _release_frame(spec, _region_hour_keys()))
    page = _parsed(html)
    assert page.svgs_by_metric["distinct_subscribers"] == 1 and page.svgs_by_metric["total_bytes"] == 1
    assert page.svgs_by_metric["flow_bytes"] == 2  # median and 90th percentile
    assert not {"script", "link", "img", "iframe", "object", "embed"} & set(page.tags)
    urls = [v for k, v in page.attributes if k in ("src", "href") or (v and "//" in v)]
    assert urls == []
    assert "default-src 'none'" in html
    text = " ".join(page.text)
    assert "95% interval" in text and "fewer than 5 subscribers" in text and "epsilon 1" in text


def test_a_400_cell_report_is_drawn_as_one_panel_per_region():
    regions = tuple(f"Region {i}" for i in range(17))
    spec = _spec()
    frame = _release_frame(spec, _region_hour_keys(regions))
    assert (frame["status"] != "remainder").sum() == 408
    page = _parsed(_render(spec, frame))
    assert page.panels_by_svg[0] == 17
    text = " ".join(page.text)
    assert all(region in text for region in regions)
    assert "One panel per region, hour along the x axis" in text and "not drawn" not in text


def test_a_large_private_key_is_capped_and_says_what_is_left_out():
    spec = _spec(group_by=[{"column": "domain", "private": True}],
                 partition_selection={"epsilon": 0.1, "delta": 1e-6}, min_subscribers=None,
                 sparse_cells="suppress", roll_up=None)
    frame = _release_frame(spec, pd.DataFrame({"domain": [f"site{i}.example" for i in range(400)]}))
    html = _render(spec, frame)
    points = html.count('<circle class="val"') // 4  # four outputs
    assert points == report_page.MAX_POINTS
    left_out = 400 - report_page.MAX_POINTS
    assert f"The {left_out:,} domain values with the smallest totals are not drawn" in html
    assert "come from the data and appear only when enough subscribers share them" in html


def test_three_group_keys_draw_panels_per_pair():
    spec = _spec(group_by=[{"column": "region", "values": "regions"},
                           {"column": "age_band", "values": ["10-19", "20-29"]},
                           {"column": "plan", "values": ["basic", "premium"]}], roll_up="plan")
    cells = [(r, a, p) for r in REGIONS for a in ("10-19", "20-29") for p in ("basic", "premium")]
    keys = pd.DataFrame(cells, columns=["region", "age_band", "plan"])
    frame = _release_frame(spec, keys)
    page = _parsed(_render(spec, frame))
    remainder_bands = frame.loc[frame["status"] == "remainder", "age_band"].nunique()
    assert remainder_bands == 1
    assert page.panels_by_svg[0] == 2 * 2 + remainder_bands  # age band x plan, and a band's 'other' plan
    assert "age_band 20-29, plan other" in " ".join(page.text)


def test_withheld_cells_and_remainders_are_drawn_apart():
    spec = _spec()
    frame = _release_frame(spec, _region_hour_keys())
    html = _render(spec, frame)
    charts = html[html.index('<section class="metric"'):]  # after the legend
    merged, remainders = (frame["status"] == "merged").sum(), (frame["status"] == "remainder").sum()
    assert merged > 0 and remainders > 0
    assert charts.count('<g class="rem">') == remainders * 2  # counts and sums; remainders have no quantiles
    assert charts.count('class="held"') == merged * 4 + remainders * 2
    assert "hour other" in html


def test_a_release_without_cells_still_renders_its_notes():
    spec = _spec(group_by=[{"column": "domain", "private": True}],
                 partition_selection={"epsilon": 0.1, "delta": 1e-6}, min_subscribers=None,
                 sparse_cells="suppress", roll_up=None)
    frame = _release_frame(spec, pd.DataFrame({"domain": pd.Series([], dtype="string")}))
    page = _parsed(_render(spec, frame))
    text = " ".join(page.text)
    assert "This release has no cells to draw." in text and "How to read this report" in text
    assert "Empty cells are reported too" not in text  # no public keys: nothing is reported empty


def test_every_text_in_the_page_is_escaped():
    hostile = '<script>alert("x")</script>'
    # a report's name, partner and purpose are plain names (config); the data's key values are free text
    spec = _spec(group_by=[{"column": "domain", "private": True}],
                 partition_selection={"epsilon": 0.1, "delta": 1e-6}, min_subscribers=None,
                 sparse_cells="suppress", roll_up=None)
    keys = [hostile, "a&b", "<b>&amp;</b>"]
    html = _render(spec, _release_frame(spec, pd.DataFrame({"domain": keys})))
    page = _parsed(html)
    assert "script" not in page.tags and "b" not in page.tags
    text = "".join(page.text)
    assert all(key in text for key in keys)


def test_nice_ticks_cover_the_range_in_round_steps():
    low, high, ticks = report_page.nice_ticks(-3.2, 97.0)
    assert (low, high) == (-3.2, 100.0) and ticks == [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
    assert report_page.nice_ticks(-250.0, 520.0)[2][:2] == [-200.0, 0.0]  # a real dip keeps its ticks
    assert report_page.nice_ticks(0.0, 0.0)[:2] == (0.0, 1.0)  # an all-zero chart still has a scale
    assert len(report_page.nice_ticks(0.0, 123456.0)[2]) <= 7


# ---- the daily run's deliveries -----------------------------------------------------------


def test_the_daily_run_delivers_signed_verifiable_reports(daily_run):
    data, out = daily_run["data"], daily_run["out"]
    for report in daily_run["summary"]["reports"]:
        delivery = Path(report["delivery"])
        public_file = out / "deliveries" / report["partner"] / PUBLIC_KEY
        public = load_public_key(public_file.read_bytes(), str(public_file))
        with pytest.raises(DemoSigned, match="signed with a DEMO key"):
            verify_delivery(delivery, public)
        verified = verify_delivery(delivery, public, allow_demo=True)
        assert verified.demo_key
        assert "report.html" in verified.files
        demo_key = demo_key_path(data / "keys", report["partner"])
        assert stat.S_IMODE(demo_key.stat().st_mode) == 0o600
        page = _parsed((delivery / "report.html").read_text())
        manifest = json.loads((delivery / "manifest.json").read_text())
        drawn = {name for name, svgs in page.svgs_by_metric.items() if svgs >= 1}
        if manifest["rows_released"] > 0:
            assert drawn == {m["name"] for m in manifest["privacy"]["metrics"]}
    assert not list(out.rglob("*.ed25519.pem"))  # private keys stay in the data folder


def test_no_pseudonym_reaches_a_delivery(daily_run):
    protected = daily_run["data"] / "protected"
    pseudonyms: set[str] = set()
    for folder in protected.glob("*/date=*"):
        table = pd.read_parquet(folder)
        if "subscriber" in table.columns:
            pseudonyms.update(table["subscriber"].dropna().astype(str))
    assert len(pseudonyms) > 100
    for report in daily_run["summary"]["reports"]:
        delivery = Path(report["delivery"])
        names = ("report.html", "manifest.json", "data.csv")
        blob = "\n".join((delivery / name).read_text() for name in names)
        assert [p for p in pseudonyms if p in blob] == []
