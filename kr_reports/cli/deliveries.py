"""Commands for partners' deliveries: verify, key-fingerprint."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _cmd_verify(args: argparse.Namespace) -> int:
    """Exit 0 when the delivery verifies, 1 when it fails (any check), 2 when no key is usable."""
    from core.signing import SigningKeyError
    from stages.delivery import DeliveryInvalid, verify_delivery

    try:
        result = verify_delivery(args.delivery, _verification_key(args), pinned=args.fingerprint,
                                 partner=args.partner, allow_extra=args.allow_extra,
                                 allow_demo=args.allow_demo)
    except SigningKeyError as exc:
        print(f"kr-reports verify: error: {exc}", file=sys.stderr)
        return 2
    except DeliveryInvalid as exc:
        print(f"kr-reports verify: FAILED: {exc}", file=sys.stderr)
        return 1
    for name in result.unlisted:
        print(f"kr-reports verify: warning: {name} is not listed in manifest.json (allowed, not verified)",
              file=sys.stderr)
    if result.demo_key:
        print("kr-reports verify: warning: a DEMO key signed this delivery (allowed by --allow-demo)",
              file=sys.stderr)
    pinned = "pinned " if args.fingerprint else ""
    print(f"OK {result.location}: {result.report} {result.period} for {result.partner}; signature "
          f"valid ({pinned}Ed25519 key {result.fingerprint}); {len(result.files)} files match manifest.json: "
          f"{', '.join(result.files)}")
    return 0


def _fingerprint(text: str) -> str:
    """argparse type of --fingerprint: `sha256:HEX` or HEX, normalized."""
    from core.signing import parse_fingerprint

    try:
        return parse_fingerprint(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _cmd_key_fingerprint(args: argparse.Namespace) -> int:
    """Print the fingerprint of the key that signs a partner's deliveries, to give the partner out of band."""
    from core.config import load_pipeline_config
    from core.signing import operator_key
    from stages.catalog import Catalog

    partner = load_pipeline_config(Path(args.config_dir)).partner(args.partner)
    key = operator_key(partner.id, partner.signing_key, Catalog.from_env(args.data_dir, None).signing_keys)
    if key.demo:
        print(f"kr-reports key-fingerprint: warning: partner '{partner.id}' has no configured key; this is "
              f"its DEMO key {key.origin} (synthetic data only: never give it to a partner)", file=sys.stderr)
    print(key.fingerprint)
    return 0


def _verification_key(args: argparse.Namespace):
    """--public-key FILE (all a partner needs), else the partner's key as the configuration names it."""
    from core.signing import SigningKeyError, load_public_key

    if args.public_key:
        import fsspec

        try:
            with fsspec.open(args.public_key, "rb") as handle:
                return load_public_key(handle.read(), args.public_key)
        except (FileNotFoundError, IsADirectoryError):
            raise SigningKeyError(f"{args.public_key}: public key file not found") from None

    from core.config import load_pipeline_config
    from core.signing import operator_public_key
    from stages.catalog import Catalog
    from stages.delivery import manifest_partner

    partner = load_pipeline_config(Path(args.config_dir)).partner(manifest_partner(args.delivery))
    key_dir = Catalog.from_env(args.data_dir, None).signing_keys
    return operator_public_key(partner.id, partner.signing_key, key_dir)


def add_commands(commands: argparse._SubParsersAction) -> None:
    ver = commands.add_parser(
        "verify", help="check a delivery's signature and checksums",
        description="Verify a partner delivery (a folder or an fsspec URL such as s3://bucket/prefix/"
        "<report>/<day>): the Ed25519 signature over manifest.json, then the SHA-256 of every file "
        "it lists. With --public-key only the delivery and the key are needed (no Spark, ledger or "
        "configuration); without it the key comes from the partner's signing_key in pipeline.yaml "
        "(or its demo key). Pin the key with --fingerprint: the key file beside the deliveries is only as "
        "safe as that folder. A file manifest.json does not list, a manifest whose partner, report or "
        "period is not its folder's, and a demo-signed delivery all fail.",
        epilog="exit status: 0 verified, 1 the delivery is incomplete, altered, misplaced, holds an "
        "unlisted file, is demo-signed or signed by another key than the given or pinned one, "
        "2 no usable public key",
    )
    ver.add_argument("delivery", metavar="DELIVERY", help="delivery folder or fsspec URL")
    ver.add_argument("--public-key", metavar="FILE",
                     help="the partner's copy of signing_key.pub.pem (PEM), shared out of band")
    ver.add_argument("--config-dir", default="config",
                     help="folder with pipeline.yaml (used without --public-key)")
    ver.add_argument("--data-dir", help="data folder holding demo keys (default: $KR_DATA_DIR or ./data)")
    ver.add_argument("--fingerprint", type=_fingerprint, metavar="SHA256",
                     help="the key's fingerprint as the operator gave it to you out of band "
                          "(`kr-reports key-fingerprint`); any other key fails")
    ver.add_argument("--partner", metavar="ID",
                     help="your partner id, when your deliveries are not under a folder named by it")
    ver.add_argument("--allow-extra", action="append", default=[], metavar="NAME",
                     help="accept this file although manifest.json does not list it (unverified; repeatable)")
    ver.add_argument("--allow-demo", action="store_true",
                     help="accept a delivery signed by a demo key (synthetic data only)")
    ver.set_defaults(handler=_cmd_verify)

    fpr = commands.add_parser(
        "key-fingerprint", help="print the fingerprint of the key that signs a partner's deliveries",
        description="Print the SHA-256 fingerprint of the public key that signs a partner's deliveries "
        "(its configured signing_key, else its demo key), to give the partner out of band: the partner "
        "pins it with `kr-reports verify --fingerprint`, so a key replaced beside the deliveries fails.",
    )
    fpr.add_argument("partner", metavar="PARTNER", help="partner id (pipeline.yaml)")
    fpr.add_argument("--config-dir", default="config", help="folder with pipeline.yaml")
    fpr.add_argument("--data-dir", help="data folder holding demo keys (default: $KR_DATA_DIR or ./data)")
    fpr.set_defaults(handler=_cmd_key_fingerprint)
