"""What a delivery folder holds (its files, its manifest's version) and the errors of reading one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.errors import KrReportsError

if TYPE_CHECKING:
    pass

DATA_FILES = ("data.parquet", "data.csv")
REPORT_PAGE = "report.html"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.json.sig"
PUBLIC_KEY = "signing_key.pub.pem"
STAGING = ".staging"
MANIFEST_VERSION = 2  # 2: the manifest says which release it is and whether a demo key signed it
VERSIONED_PACKAGES = (
    "kr-reports", "pyspark", "great-expectations", "diffprivlib", "prefect", "cryptography", "fsspec",
)


class DeliveryInvalid(KrReportsError, RuntimeError):
    """A delivery does not verify: incomplete, altered, or signed by another key."""


class DeliveryIncomplete(DeliveryInvalid):
    """A delivery, its manifest or its signature is missing."""


class ManifestInvalid(DeliveryInvalid):
    """manifest.json cannot be read as a manifest."""


class ChecksumMismatch(DeliveryInvalid):
    """A delivered file does not match its manifest."""


class BadSignature(DeliveryInvalid):
    """The signature does not verify with the given public key."""


class UntrustedKey(DeliveryInvalid):
    """The public key given is not the one whose fingerprint the partner pinned."""


class DemoSigned(DeliveryInvalid):
    """A demo key signed the delivery (or its manifest does not say one did not)."""


class MisplacedDelivery(DeliveryInvalid):
    """The manifest's partner, report, period or release is not that of the folder it is in."""


class UnlistedFile(DeliveryInvalid):
    """A file in the delivery is not listed in its manifest (so nothing vouches for it)."""
