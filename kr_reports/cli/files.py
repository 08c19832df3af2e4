"""Commands on one file, outside the daily run: protect, kanon, scan."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

from core.names import UnsafeName, check_identifier, path_under


def _cmd_kanon(args: argparse.Namespace) -> int:
    from stages.catalog import Catalog
    from stages.kanon_file import Requirements, kanon_file

    mapping = dict(item.split("=", 1) for item in args.hierarchy or [])
    req = Requirements(
        k=args.k, l=args.l, l_kind=args.l_kind, c=args.c, t=args.t, t_distance=args.t_distance,
        sensitive=args.sensitive, suppression_limit=args.suppression_limit,
    )
    if args.quarantine:
        quarantine = _empty_or_new(Path(args.quarantine), "--quarantine")
    else:
        stem = check_identifier(Path(args.input).stem, "input name (names the quarantine; pass --quarantine)")
        quarantine = path_under(Catalog.from_env(args.data_dir, None).data_dir / "quarantine" / "kanon", stem)
    report = kanon_file(
        Path(args.input), Path(args.out), [c.strip() for c in args.qi.split(",") if c.strip()],
        Path(args.hierarchies), req, sep=args.sep, metric=args.metric, algorithm=args.algorithm,
        unit=args.unit, hierarchy_files=mapping, quarantine=quarantine,
    )
    print(json.dumps(report, indent=2, sort_keys=True, default=str))
    return 0


def _cmd_protect(args: argparse.Namespace) -> int:
    from core.config import load_pipeline_config
    from core.policy import load_policy
    from stages.catalog import Catalog
    from stages.protect_file import protect_file

    config_dir = Path(args.config_dir)
    policy = load_policy(config_dir)
    pipeline = load_pipeline_config(config_dir)
    purpose = _configured_purpose(args.purpose, pipeline.purposes, config_dir)
    given = args.release is not None
    release = check_identifier(
        args.release if given else f"{Path(args.input).name}-{dt.date.today().isoformat()}",
        "release id" if given else "release id (from the input's name; pass --release)")
    if args.quarantine:
        quarantine = _empty_or_new(Path(args.quarantine), "--quarantine")
    else:
        data_dir = Catalog.from_env(args.data_dir, None).data_dir
        quarantine = path_under(data_dir / "quarantine" / "protect", release)
    fmt = _chosen_format(args)
    options = _format_options(args, fmt)
    summary = protect_file(
        fmt, Path(args.input), Path(args.out), quarantine, policy,
        purpose=purpose, release=release, demo=args.demo, day=args.day,
        plausible_time=pipeline.plausible_time, **options,
    )
    print(json.dumps(summary, indent=2, sort_keys=True))
    return 0


def _cmd_formats(args: argparse.Namespace) -> int:
    from stages.formats import shipped_formats

    for fmt in shipped_formats():
        options = ", ".join(fmt.option_names) or "-"
        print(f"{fmt.name:<16} {fmt.target or 'any source':<14} {fmt.layout.kind:<13} options: {options:<12} "
              f"{fmt.description} [{fmt.origin}]")
    return 0


def _configured_purpose(purpose: str, purposes: tuple[str, ...], config_dir: Path) -> str:
    from core.config import ConfigError

    if purpose not in purposes:
        raise ConfigError(f"--purpose {purpose!r} is not a configured purpose "
                          f"({config_dir / 'pipeline.yaml'}: {', '.join(purposes)})")
    return purpose


def _empty_or_new(folder: Path, option: str) -> Path:
    """A folder the command may fill (and replace): a new or empty one, never one holding data."""
    if folder.exists() and not (folder.is_dir() and not any(folder.iterdir())):
        raise UnsafeName(f"{option} {folder}: exists and is not empty; name a new or empty folder "
                         "(its contents would be replaced)")
    return folder


PROTECT_OPTIONS = {"site_domain": "--site-domain", "timezone": "--timezone", "source": "--source",
                   "file_format": "--file-format"}


def _chosen_format(args: argparse.Namespace):
    """The format of --format-file (an operator's own), else the shipped one --format names."""
    from core.format_file import load_format_file
    from stages.formats import shipped_format

    return load_format_file(Path(args.format_file)) if args.format_file else shipped_format(args.format)


def _format_options(args: argparse.Namespace, fmt) -> dict[str, str]:
    """The format options given, each one the format takes; --format canonical needs --source."""
    from stages.formats import FormatError, format_options

    given = {name: getattr(args, name) for name in PROTECT_OPTIONS if getattr(args, name) is not None}
    for item in args.option:
        name, equals, value = item.partition("=")
        if not equals or not name:
            raise FormatError(f"--option {item!r}: expected NAME=VALUE (an option of the format file)")
        given[name] = value
    allowed = format_options(fmt)
    chosen = f"--format-file {args.format_file}" if args.format_file else f"--format {fmt.name}"
    for name in given:
        if name not in allowed:
            takes = ", ".join(PROTECT_OPTIONS.get(o, f"--option {o}=...") for o in allowed)
            raise FormatError(f"{args.input}: {PROTECT_OPTIONS.get(name, f'option {name}')} does not "
                              f"apply to {chosen} (it takes {takes or 'none of the format options'})")
    if fmt.name == "canonical" and "source" not in given:
        raise FormatError(f"{args.input}: --format canonical needs --source (which source the files hold)")
    return given


def _cmd_scan(args: argparse.Namespace) -> int:
    from stages.scan import format_report, scan_path
    from stages.spark import get_spark

    report = scan_path(get_spark("kr-reports-scan"), Path(args.path))
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(format_report(report))
    return 0 if report.clean else 1


def add_commands(commands: argparse._SubParsersAction) -> None:
    prot = commands.add_parser(
        "protect", help="map a real file to its canonical source and protect it",
        description="Read a real file (Zeek conn/dns/http log, Argus binetflow CSV, web server "
        "combined log, IBM telco customer CSV, canonical Parquet/CSV/JSON lines, or any file your own "
        "format file describes), quarantine "
        "what cannot be used, apply the privacy policy, validate, and write the protected "
        "dataset and summary.json to OUT. Pseudonyms are keyed per purpose and release.",
    )
    chosen = prot.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--format", help="a shipped format: config/formats/<FORMAT>.yaml, or canonical "
                        "(`kr-reports formats` lists them)")
    chosen.add_argument("--format-file", help="your own format file (YAML; README: 'Your own file format')")
    prot.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                      help="an option your format file declares (repeatable)")
    prot.add_argument("--input", required=True, help="input file or folder")
    prot.add_argument("--out", required=True, help="output folder")
    prot.add_argument("--purpose", default="aggregate_reports",
                      help="purpose of this release: one of the purposes in pipeline.yaml")
    prot.add_argument("--release", help="release id: letters, digits, '.', '_', '-' "
                                        "(default: <input name>-<today>)")
    prot.add_argument("--day", type=dt.date.fromisoformat,
                      help="quarantine events outside this day (YYYY-MM-DD)")
    prot.add_argument("--site-domain", help="combined_log: the site the log belongs to")
    prot.add_argument("--timezone", help="binetflow: time zone of StartTime (default UTC)")
    prot.add_argument("--source", choices=("subscribers", "devices", "call_records",
                                           "network_flows", "web_visits"),
                      help="canonical: which source the files hold")
    prot.add_argument("--file-format", choices=("parquet", "csv", "json"),
                      help="canonical: the files' format when their names do not tell it")
    prot.add_argument("--quarantine",
                      help="quarantine folder, new or empty "
                           "(default: $KR_DATA_DIR/quarantine/protect/<release>)")
    prot.add_argument("--data-dir", help="data folder (default: $KR_DATA_DIR or ./data)")
    prot.add_argument("--config-dir", default="config", help="folder with policy.yaml and pipeline.yaml")
    prot.add_argument("--demo", action="store_true",
                      help="allow a random per-run pseudonymization key (test data only)")
    prot.set_defaults(handler=_cmd_protect)

    fmts = commands.add_parser(
        "formats", help="list the shipped input formats (for protect --format)",
        description="The formats shipped in config/formats/: name, target source, layout, options and "
        "description. Copy one to start your own (protect --format-file).",
    )
    fmts.set_defaults(handler=_cmd_formats)

    kan = commands.add_parser(
        "kanon", help="make a record-level table k-anonymous (l-diverse, t-close)",
        description="Anonymize a delimited table over its quasi-identifiers with generalization "
        "hierarchies (ARX's CSV format, matched as <dataset>_hierarchy_<column>.csv), by optimal "
        "full-domain generalization with a suppression limit or by Mondrian. The output is "
        "verified independently before it is written; OUT gets anonymized/ and report.json "
        "(transformation, suppressed rows, information loss, risk, verification).",
    )
    kan.add_argument("--input", required=True, help="delimited file with a header")
    kan.add_argument("--sep", default=";", help="field separator (default ';')")
    kan.add_argument("--qi", required=True, help="quasi-identifiers, comma-separated")
    kan.add_argument("--hierarchies", required=True, help="folder with the hierarchy files")
    kan.add_argument("--hierarchy", action="append", metavar="COL=FILE",
                     help="explicit hierarchy file for a column (repeatable)")
    kan.add_argument("--k", type=int, required=True)
    kan.add_argument("--l", type=float, help="l-diversity of --sensitive")
    kan.add_argument("--l-kind", choices=("distinct", "entropy", "recursive"), default="distinct")
    kan.add_argument("--c", type=float, help="c of recursive (c, l)-diversity")
    kan.add_argument("--t", type=float, help="t-closeness of --sensitive")
    kan.add_argument("--t-distance", choices=("equal", "ordered"), default="equal")
    kan.add_argument("--sensitive", help="sensitive attribute column")
    kan.add_argument("--suppression-limit", type=float, default=0.0,
                     help="largest fraction of records that may be suppressed (default 0)")
    kan.add_argument("--metric", choices=("loss", "entropy", "discernibility", "aecs", "ncp"),
                     default="loss", help="information loss to minimize (optimal search)")
    kan.add_argument("--algorithm", choices=("optimal", "mondrian"), default="optimal")
    kan.add_argument("--unit", help="privacy-unit column (e.g. subscriber): k counts its distinct values")
    kan.add_argument("--out", required=True, help="output folder (must not exist)")
    kan.add_argument("--quarantine",
                     help="where unusable rows go, new or empty "
                          "(default: $KR_DATA_DIR/quarantine/kanon/<input name>)")
    kan.add_argument("--data-dir", help="data folder (default: $KR_DATA_DIR or ./data)")
    kan.set_defaults(handler=_cmd_kanon)

    scan = commands.add_parser(
        "scan", help="look for identifier-shaped values in data files",
        description="Scan a file, or every supported file under a folder (Parquet, CSV with a "
        "header, JSON lines, HTML text and attributes; Spark output folders too), for "
        "identifier-shaped values: e-mail "
        "addresses, phone numbers, IPv4/IPv6 and MAC addresses, IMEI, IMSI, ICCID and payment "
        "card numbers (the last three with a valid Luhn check digit). The same detectors guard "
        "the protected and release suites. The report names file, column, detector and the "
        "number of rows; it never shows a value.",
        epilog="exit status: 0 nothing found, 1 identifier-shaped values found, "
        "2 the path is missing, unsupported or unreadable",
    )
    scan.add_argument("path", metavar="PATH", help="file or folder to scan")
    scan.add_argument("--json", action="store_true", help="print the report as JSON")
    scan.set_defaults(handler=_cmd_scan)
