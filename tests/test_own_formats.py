"""Operators' own formats through `kr-reports protect --format-file`: the README's CDR example
followed to the letter, real Zeek and Argus files with an extra field, gzip inputs, and the
other layouts (JSON lines, Parquet, CSV without a header).

The leak checks pull the identifiers out of the input with plain Python and look for them in
everything the command wrote and printed.
"""

from __future__ import annotations

import gzip
import json
import random
import re
from pathlib import Path

import pandas as pd
import pytest

from core.format_file import load_format_file
from core.formats import FormatFileError
from kr_reports.cli import main
from stages.formats import UnclassifiedField, read_format

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
CONN = DATA / "zeek_sample" / "conn.log"
BINETFLOW = DATA / "netflow_ctu" / "2013-10-21_capture-1.binetflow"
IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"{DATA} not present")


def _readme_blocks() -> list[str]:
    """The code blocks of the README's section 'Your own file format', in order."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### Your own file format", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```[a-z]*\n(.*?)```", section, flags=re.S)


def _protect(capsys, out: Path, *args: str) -> tuple[int, str]:
    code = main(["protect", *args, "--out", str(out), "--quarantine", str(out.parent / f"{out.name}-q"),
                 "--demo", "--release", "r1"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _written_text(out: Path) -> str:
    parts = []
    for path in sorted(out.rglob("*")):
        if path.suffix == ".parquet":
            parts.append(pd.read_parquet(path).to_csv())
        elif path.is_file() and not path.name.startswith((".", "_")):
            parts.append(path.read_text())
    return "\n".join(parts)


def _summary(out: Path) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows_in"] == summary["rows_kept"] + summary["rows_quarantined"]
    assert sum(summary["quarantined_by_reason"].values()) == summary["rows_quarantined"]
    assert summary["validation"]["success"] is True
    return summary


# --- the README's own example -------------------------------------------------------


def _cdr_rows(n: int, seed: int = 7) -> list[list[str]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        rows.append([
            f"+49151{rng.randrange(10**7):07d}", f"+4930{rng.randrange(10**7):07d}",
            f"21/11/2026 {i % 24:02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}",
            str(rng.randrange(1, 3600)), rng.choice("VSD"), f"C{rng.randrange(10**5):05d}",
            f"26201{rng.randrange(10**10):010d}",
        ])
    return rows


def test_the_readme_cdr_example_is_protected_and_leaks_no_number(spark, tmp_path, capsys, caplog):
    sample, format_text, command = _readme_blocks()[:3]
    header, example = sample.strip().splitlines()
    assert header == "CALLING_NBR;CALLED_NBR;START_TS;DURATION;CALL_TYPE;CELL;IMSI"
    assert command.split()[:3] == ["kr-reports", "protect", "--format-file"]
    format_file = tmp_path / "my_cdr.yaml"
    format_file.write_text(format_text)
    rows = _cdr_rows(60)
    broken_time = [*rows[0][:2], "2026-11-21 14:05", *rows[0][3:]]
    unknown_type = [*rows[1][:4], "X", *rows[1][5:]]
    short = rows[2][:3]
    lines = [header, example, *[";".join(r) for r in [*rows, broken_time, unknown_type, short]]]
    cdr = tmp_path / "cdr-2026-11-21.csv"
    cdr.write_text("\n".join(lines) + "\n")

    out = tmp_path / "out"
    code, printed = _protect(capsys, out, "--format-file", str(format_file), "--input", str(cdr))
    assert code == 0, printed
    summary = _summary(out)
    assert (summary["rows_in"], summary["rows_kept"]) == (64, 61)
    assert summary["quarantined_by_reason"] == {
        "malformed:timestamp": 1, "malformed:field_count": 1, "not_allowed:call_type": 1}
    assert summary["target_source"] == "call_records" and summary["format"] == "my_cdr"
    assert summary["input_fields_not_carried"] == {"IMSI": "SIM identity (a device identifier): not part "
                                                           "of call_records"}
    numbers = {v for line in lines[1:] for v in line.split(";")[:2]} | {r[6] for r in rows}
    numbers |= {n.lstrip("+") for n in numbers}
    written, logged = _written_text(out), printed + caplog.text
    assert [n for n in numbers if n in written] == []
    assert [n for n in numbers if n in logged] == []

    # The switch's local time (Europe/Berlin, CET in November) lands as UTC.
    mapped, _, _ = read_format(spark, load_format_file(format_file), cdr)
    first = mapped.where(mapped.caller_msisdn == example.split(";")[0]).collect()
    assert [(r.start_time, r.call_type, r.duration_s, r.cell_id) for r in first] == [
        ("2026-11-21 13:05:09", "voice", "62", "C01234")]


def test_the_readme_error_example_is_what_the_loader_says(tmp_path):
    format_text = _readme_blocks()[1]
    typo = tmp_path / "my_cdr.yaml"
    typo.write_text(format_text.replace("convert: timestamp,", "convert: timestmap,"))
    with pytest.raises(FormatFileError) as raised:
        load_format_file(typo)
    readme = (ROOT / "README.md").read_text()
    shown = re.search(r"\(`my_cdr\.yaml(:\d+: [^`]*?)\(one of \.\.\.\)`\)", readme)
    assert shown is not None
    assert str(raised.value).startswith(f"{typo}{shown.group(1)}(one of ")


# --- real files with a field their format does not know -------------------------------------


def _with_extra_zeek_field(path: Path) -> Path:
    lines = []
    for i, line in enumerate(CONN.read_text().splitlines()):
        if line.startswith("#fields\t"):
            line += "\tlabel"
        elif line.startswith("#types\t"):
            line += "\tstring"
        elif not line.startswith("#"):
            line += "\t" + ("malicious" if i % 7 == 0 else "benign")
        lines.append(line)
    path.write_text("\n".join(lines) + "\n")
    return path


def _with_extra_argus_field(path: Path) -> Path:
    rows = BINETFLOW.read_text().splitlines()
    extended = [rows[0] + ",SrcPkts"]
    extended += [row + "," + str(max(1, int(row.split(",")[11]) // 2)) for row in rows[1:]]
    path.write_text("\n".join(extended) + "\n")
    return path


def _classified_copy(shipped: str, field: str, reason: str, folder: Path) -> Path:
    """What the error tells the operator to do: copy the format file, add the field as dropped."""
    text = (ROOT / "config" / "formats" / f"{shipped}.yaml").read_text()
    assert text.rstrip().splitlines()[-1].startswith("  ")  # 'dropped:' is the last section
    copy = folder / f"my_{shipped}.yaml"
    copy.write_text(text.rstrip() + f'\n  {field}: "{reason}"\n')
    return copy


@needs_data
@pytest.mark.parametrize(
    ("shipped", "field", "make", "rows_in"),
    [("zeek_conn", "label", _with_extra_zeek_field, 360),
     ("binetflow", "SrcPkts", _with_extra_argus_field, 2398)],
    ids=["zeek-label", "argus-srcpkts"],
)
def test_an_extra_field_is_refused_until_classified(spark, tmp_path, capsys, caplog, shipped, field, make,
                                                    rows_in):
    source = make(tmp_path / f"input-{shipped}")
    code, printed = _protect(capsys, tmp_path / "refused", "--format", shipped, "--input", str(source))
    assert code == 2
    [line] = printed.strip().splitlines()
    assert line.startswith(f"kr-reports protect: error: {source}: field(s) {field} not in format '{shipped}'")
    assert "copy the format file" in line and "'dropped:'" in line and "--format-file" in line
    assert not (tmp_path / "refused" / "summary.json").exists()

    copy = _classified_copy(shipped, field, "analyst annotation: not carried", tmp_path)
    out = tmp_path / "out"
    code, printed = _protect(capsys, out, "--format-file", str(copy), "--input", str(source))
    assert code == 0, printed
    summary = _summary(out)
    assert summary["rows_in"] == rows_in and summary["rows_kept"] > 0
    assert summary["input_fields_not_carried"][field] == "analyst annotation: not carried"
    addresses = {ip for ip in IPV4.findall(source.read_text()) if not ip.endswith(".0")}
    assert addresses
    written, logged = _written_text(out), printed + caplog.text
    assert [a for a in addresses if a in written] == []
    assert [a for a in addresses if a in logged] == []


# --- gzip ------------------------------------------------------------------------------------


@needs_data
def test_a_gzipped_zeek_log_maps_as_the_plain_one(spark, tmp_path):
    packed = tmp_path / "conn.log.gz"
    packed.write_bytes(gzip.compress(CONN.read_bytes()))
    plain_mapped, plain_rejected, _ = read_format(spark, "zeek_conn", CONN)
    mapped, rejected, facts = read_format(spark, "zeek_conn", packed)
    rows, plain_rows = (sorted(map(tuple, m.collect()), key=str) for m in (mapped, plain_mapped))
    assert rows == plain_rows
    assert (rejected.count(), plain_rejected.count(), mapped.count()) == (0, 0, 360)
    assert facts["input_columns"][:3] == ["ts", "uid", "id.orig_h"]


@needs_data
def test_a_gzipped_file_cut_mid_line_rejects_its_last_line(spark, tmp_path):
    text = CONN.read_text()
    cut = text[: text.index("\n", len(text) // 2) + 40]  # 40 characters into a data line
    packed = tmp_path / "conn.log.gz"
    packed.write_bytes(gzip.compress(cut.encode()))
    _, rejected, _ = read_format(spark, "zeek_conn", packed)
    [last] = rejected.collect()
    assert (last.reason, last.line_number) == ("malformed:truncated", cut.count("\n") + 1)


@needs_data
def test_a_truncated_gzip_stream_is_refused_naming_the_file(spark, tmp_path, capsys):
    whole = gzip.compress(CONN.read_bytes())
    cut = tmp_path / "conn.log.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    code, printed = _protect(capsys, tmp_path / "out", "--format", "zeek_conn", "--input", str(cut))
    assert code == 2
    assert printed.strip() == (f"kr-reports protect: error: {cut}: truncated or corrupt gzip file "
                               "(expected a whole gzip stream)")


# --- the other layouts -------------------------------------------------------------------------

WEB_FORMAT = """\
name: proxy_{kind}
target: web_visits
layout: {{kind: {kind}}}
columns:
  account_id: {{from: client}}
  client_ip: {{from: client}}
  domain: {{from: site, convert: host}}
  visit_time: {{from: ts, convert: epoch_seconds}}
  bytes: {{from: bytes}}
dropped:
  user: "proxy user name (an identifier): never carried"
"""
WEB_ROWS = [
    {"client": "10.1.2.3", "site": "Example.COM:443", "ts": 1700000000, "bytes": 120, "user": "ann"},
    {"client": "10.1.2.4", "site": "kr.example", "ts": 1700000100.5, "user": "bob"},
    {"client": "10.1.2.5", "site": "kr.example", "ts": "yesterday", "bytes": 3},
]
WEB_MAPPED = {
    ("10.1.2.3", "10.1.2.3", "example.com", None, "2023-11-14 22:13:20", "120", None),
    ("10.1.2.4", "10.1.2.4", "kr.example", None, "2023-11-14 22:15:00", None, None),
}


def test_json_lines_are_mapped_by_key_and_broken_lines_rejected(spark, tmp_path):
    fmt_file = tmp_path / "proxy.yaml"
    fmt_file.write_text(WEB_FORMAT.format(kind="json_lines"))
    lines = [json.dumps(r) for r in WEB_ROWS] + ['{"client": "10.1.2.6", "site": ']
    (tmp_path / "proxy.jsonl").write_text("\n".join(lines) + "\n")
    mapped, rejected, facts = read_format(spark, load_format_file(fmt_file), tmp_path / "proxy.jsonl")
    assert set(map(tuple, mapped.collect())) == WEB_MAPPED
    assert sorted((r.line_number, r.reason) for r in rejected.collect()) == [
        (3, "malformed:timestamp"), (4, "malformed:record")]
    assert facts["dropped"] == {"user": "proxy user name (an identifier): never carried"}
    (tmp_path / "extra.jsonl").write_text(json.dumps({**WEB_ROWS[0], "mac": "aa:bb"}) + "\n")
    refused = r"extra\.jsonl: field\(s\) mac not in format 'proxy_json_lines'"
    with pytest.raises(UnclassifiedField, match=refused):
        read_format(spark, load_format_file(fmt_file), tmp_path / "extra.jsonl")


def test_parquet_columns_are_the_fields(spark, tmp_path):
    fmt_file = tmp_path / "proxy.yaml"
    fmt_file.write_text(WEB_FORMAT.format(kind="parquet"))
    frame = pd.DataFrame([{**r, "ts": str(r["ts"])} for r in WEB_ROWS])
    frame["bytes"] = frame["bytes"].astype("Int64")  # a count column, nullable (not pandas' float)
    (tmp_path / "visits").mkdir()
    frame.to_parquet(tmp_path / "visits" / "part-0.parquet")
    mapped, rejected, facts = read_format(spark, load_format_file(fmt_file), tmp_path / "visits")
    assert set(map(tuple, mapped.collect())) - WEB_MAPPED == set()
    assert len(mapped.collect()) == 2 and [r.reason for r in rejected.collect()] == ["malformed:timestamp"]
    assert set(facts["input_columns"]) == {"client", "site", "ts", "bytes", "user"}


def test_a_csv_without_a_header_takes_its_fields_from_the_layout(spark, tmp_path):
    fmt_file = tmp_path / "flows.yaml"
    fmt_file.write_text("""\
name: router_flows
target: network_flows
layout: {kind: tsv, header: false, fields: [when, src, dst, proto, octets]}
columns:
  account_id: {from: src}
  src_ip: {from: src}
  dst_ip: {from: dst}
  protocol: {from: proto, convert: lower}
  bytes: {from: octets}
  start_time: {from: when, convert: timestamp, pattern: "yyyy-MM-dd'T'HH:mm:ssXXX"}
""")
    (tmp_path / "flows.tsv").write_text("2026-11-21T10:00:00+02:00\t10.0.0.1\t10.0.0.2\tTCP\t99\n"
                                        "2026-11-21T10:00:01+02:00\t10.0.0.1\t10.0.0.2\n")
    mapped, rejected, _ = read_format(spark, load_format_file(fmt_file), tmp_path / "flows.tsv")
    assert [(r.src_ip, r.protocol, r.bytes, r.start_time) for r in mapped.collect()] == [
        ("10.0.0.1", "tcp", "99", "2026-11-21 08:00:00")]
    assert [(r.line_number, r.reason) for r in rejected.collect()] == [(2, "malformed:field_count")]
