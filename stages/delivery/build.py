"""Building a delivery (pure): the manifest, the data files and the report page, as bytes."""

from __future__ import annotations

import hashlib
import io
import platform
from importlib import metadata

import pandas as pd

from core import disclosure, report_page
from core.config import ReportSpec
from core.release_record import ReleaseRecord
from core.signing import (
    SigningKey,
    sign_document,
)
from core.store import json_text
from stages.delivery.layout import (
    DATA_FILES,
    MANIFEST,
    MANIFEST_VERSION,
    PUBLIC_KEY,
    REPORT_PAGE,
    SIGNATURE,
    VERSIONED_PACKAGES,
)


def software_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def sha256_bytes(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def _manifest(spec: ReportSpec, release: ReleaseRecord, validation: dict, files: dict[str, bytes],
              key: SigningKey, delivered_at: str) -> dict:
    aggregation, recorded = spec.aggregation, release.to_dict()
    return {
        "manifest_version": MANIFEST_VERSION,
        "report": spec.name,
        "partner": spec.delivery.partner,
        "purpose": spec.delivery.purpose,
        "policy_clause": spec.delivery.policy_clause,
        "period": release.period,
        "release_id": release.release_id,
        "release_number": release.number,
        "ledger_entry_id": release.ledger_entry_id,
        "privacy": {
            "guarantee": recorded["guarantee"],
            "unit": aggregation.privacy_unit,
            "accounting": release.accounting,
            "epsilon": release.epsilon,
            "delta": release.delta,
            "rho": release.rho,
            "contribution_bounds": aggregation.contribution.model_dump(),
            "min_subscribers": aggregation.min_subscribers,
            "sparse_cells": aggregation.sparse_cells if aggregation.min_subscribers is not None else None,
            "partition_selection": recorded["partition_selection"],
            "metrics": recorded["metrics"],
        },
        "spec": spec.model_dump(mode="json"),
        "rows_released": release.cells,
        "cells_by_status": recorded["cells_by_status"],
        "validation": {name: validation.get(name) for name in ("suite", "success", "evaluated", "failed")},
        "software": software_versions(),
        "delivered_at": delivered_at,
        "signing": {
            "algorithm": "Ed25519",
            "public_key_fingerprint": key.fingerprint,
            "demo_key": key.demo,
            "public_key_file": f"../../{PUBLIC_KEY}",
            "signature_file": SIGNATURE,
        },
        "files": {name: sha256_bytes(payload) for name, payload in files.items()},
    }


def build_delivery(spec: ReportSpec, release: ReleaseRecord, data: pd.DataFrame, validation: dict,
                   key: SigningKey, delivered_at: str) -> dict[str, bytes]:
    """Every file of a delivery, by name; the signature covers the manifest's exact bytes.

    Raises disclosure.DisclosureError, before anything is written, when the data
    would carry a column, or the manifest a field, that core.disclosure does
    not allow. The manifest has no NaN or infinity: JSON has none (they are null).
    """
    disclosure.check_data_columns(data.columns, spec.aggregation)
    parquet, csv = DATA_FILES
    files = {
        parquet: _parquet_bytes(data),
        csv: _csv_bytes(data),
        REPORT_PAGE: report_page.render_report(data, report_page.page_info(spec, release)).encode(),
    }
    manifest = _manifest(spec, release, validation, files, key, delivered_at)
    disclosure.check_manifest(manifest)
    manifest_bytes = (json_text(manifest, sort_keys=True) + "\n").encode()
    return {**files, MANIFEST: manifest_bytes, SIGNATURE: sign_document(key, manifest_bytes)}


# A spreadsheet runs a cell starting with one of these as a formula (OWASP, CSV injection).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def _neutralised(value: object) -> object:
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def _csv_bytes(data: pd.DataFrame) -> bytes:
    """data.csv, where a text cell a spreadsheet would run as a formula gets a leading "'".

    Only text cells: numeric columns are written as numbers, and a negative
    noisy count ("-3") is a number to a spreadsheet, not a formula; quoting it
    would turn the partner's numbers into text. data.parquet keeps every value as is.
    Lines end CRLF (RFC 4180), so a cell holding a CR is quoted, not a row break.
    """
    text_columns = [c for c in data.columns if not pd.api.types.is_numeric_dtype(data[c])]
    safe = data.assign(**{c: data[c].map(_neutralised) for c in text_columns})
    return safe.to_csv(index=False, lineterminator="\r\n").encode()


def _parquet_bytes(data: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    data.to_parquet(buffer, index=False)
    return buffer.getvalue()
