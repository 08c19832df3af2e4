"""Partner delivery: data, report page, manifest and signature, published atomically.

A delivery is `<target>/<report>/<day>/` holding data.parquet, data.csv,
report.html, manifest.json (spec, privacy parameters, ledger entry, cells
released by status, validation summary, software versions, SHA-256 of every
other file) and manifest.json.sig (an Ed25519 signature over the manifest's bytes). The
target is the partner's folder or fsspec URL; the public key is published
beside its deliveries as signing_key.pub.pem.

A delivery copies the stored release: noise is never drawn here. What it may
carry is declared once, in core.disclosure: every manifest field is
public configuration, computed from noisy values, or a release record (ids,
timestamps, checksums), and the data files carry exactly the published
columns. A delivery that would carry anything else is refused before a file
is written; exact input counts stay in the run's own record.

Atomicity. A local folder is filled in a hidden sibling and renamed into
place. Other filesystems cannot rename atomically, so the files go to a
hidden staging prefix, are copied into place, and the signature is written
last as the commit marker: a delivery without its signature is incomplete,
is never reported as delivered, fails `verify`, and is cleaned up and
rewritten by the next attempt.

Verification needs no Spark, ledger or configuration: only the delivery and
the partner's public key, whose fingerprint the partner pins out of band (the
copy beside the deliveries is only as safe as that folder). It is strict: a
file the manifest does not list, a manifest whose partner, report, period or
release is not its folder's (a genuine delivery of another day copied in), and
a demo-signed delivery (the manifest says which) all fail.
"""

from __future__ import annotations

from stages.delivery.build import FORMULA_TRIGGERS, build_delivery, sha256_bytes, software_versions
from stages.delivery.layout import (
    DATA_FILES,
    MANIFEST,
    MANIFEST_VERSION,
    PUBLIC_KEY,
    REPORT_PAGE,
    SIGNATURE,
    STAGING,
    VERSIONED_PACKAGES,
    BadSignature,
    ChecksumMismatch,
    DeliveryIncomplete,
    DeliveryInvalid,
    DemoSigned,
    ManifestInvalid,
    MisplacedDelivery,
    UnlistedFile,
    UntrustedKey,
)
from stages.delivery.publish import (
    RELEASE_SUFFIX,
    STAGING_GRACE_SECONDS,
    Delivered,
    deliver,
    delivery_folder,
    parse_delivery_folder,
    remove_staging_leftovers,
)
from stages.delivery.setup import EXTRAS, check_delivery_setup, target_root
from stages.delivery.verify import Verified, manifest_partner, verify_checksums, verify_delivery

__all__ = [
    "DATA_FILES",
    "EXTRAS",
    "FORMULA_TRIGGERS",
    "MANIFEST",
    "MANIFEST_VERSION",
    "PUBLIC_KEY",
    "RELEASE_SUFFIX",
    "REPORT_PAGE",
    "SIGNATURE",
    "STAGING",
    "STAGING_GRACE_SECONDS",
    "VERSIONED_PACKAGES",
    "BadSignature",
    "ChecksumMismatch",
    "Delivered",
    "DeliveryIncomplete",
    "DeliveryInvalid",
    "DemoSigned",
    "ManifestInvalid",
    "MisplacedDelivery",
    "UnlistedFile",
    "UntrustedKey",
    "Verified",
    "build_delivery",
    "check_delivery_setup",
    "deliver",
    "delivery_folder",
    "manifest_partner",
    "parse_delivery_folder",
    "remove_staging_leftovers",
    "sha256_bytes",
    "software_versions",
    "target_root",
    "verify_checksums",
    "verify_delivery",
]
