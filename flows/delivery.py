"""Partner delivery: data files and a manifest, renamed into place in one step."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import platform
from importlib import metadata
from pathlib import Path

import pandas as pd

from flows.catalog import Catalog, write_atomically
from kr_reports.config import ReportSpec

DATA_FILES = ("data.parquet", "data.csv")
VERSIONED_PACKAGES = ("kr-reports", "pyspark", "great-expectations", "diffprivlib", "prefect")


class ChecksumMismatch(RuntimeError):
    """A delivered file does not match its manifest."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def software_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _manifest(spec: ReportSpec, release: dict, inputs: dict, validation: dict, folder: Path) -> dict:
    return {
        "report": spec.name,
        "partner": spec.partner,
        "purpose": spec.purpose,
        "policy_clause": spec.policy_clause,
        "period": release["period"],
        "release_id": release["release_id"],
        "ledger_entry_id": release["ledger_entry_id"],
        "privacy": {
            "unit": spec.privacy_unit,
            "epsilon": release["epsilon"],
            "delta": release["delta"],
            "contribution_bounds": spec.contribution.model_dump(),
            "metrics": release["metrics"],
        },
        "spec": spec.model_dump(mode="json"),
        "inputs": inputs,
        "rows_released": release["cells"],
        "validation": {
            "suite": validation.get("suite"),
            "success": validation.get("success"),
            "evaluated": validation.get("evaluated"),
        },
        "software": software_versions(),
        "delivered_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "files": {name: sha256_of(folder / name) for name in DATA_FILES},
    }


def deliver(
    catalog: Catalog, spec: ReportSpec, release: dict, inputs: dict, validation: dict
) -> dict:
    """Copy a stored release to the partner's folder; an existing delivery is kept as it is."""
    day = dt.date.fromisoformat(release["period"])
    final = catalog.delivery(spec.partner, spec.name, day)
    data = pd.read_parquet(Path(release["path"]) / "release.parquet")

    def fill(folder: Path) -> None:
        data.to_parquet(folder / "data.parquet", index=False)
        data.to_csv(folder / "data.csv", index=False)
        manifest = _manifest(spec, release, inputs, validation, folder)
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))

    created = write_atomically(final, fill)
    return {"path": str(final), "created": created}


def verify_checksums(delivery: Path) -> None:
    """Raise ChecksumMismatch naming the file whose SHA-256 is not the manifest's."""
    manifest = json.loads((delivery / "manifest.json").read_text())
    for name, expected in manifest["files"].items():
        path = delivery / name
        if not path.is_file():
            raise ChecksumMismatch(f"{path}: listed in manifest.json but missing")
        if sha256_of(path) != expected:
            raise ChecksumMismatch(f"{path}: SHA-256 does not match manifest.json")
