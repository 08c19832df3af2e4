"""Format files (config/formats/*.yaml and an operator's own): what they must say, and one-line errors.

No Spark: the loader is core. Every bad file's error must be one line that
names the format file, the line and the field, and say what was expected.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.format_file import load_format_file
from core.formats import CONVERSIONS, FormatFileError
from core.schemas import SOURCES
from transforms.formats.conversions import CONVERTERS

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "config" / "formats"

GOOD = """\
name: my_cdr
target: call_records
description: CDR export
layout: {kind: csv, delimiter: ";", header: true}
columns:
  account_id: {from: CALLING_NBR}
  callee_msisdn: {from: CALLED_NBR}
  start_time: {from: START_TS, convert: timestamp, pattern: "dd/MM/yyyy HH:mm:ss"}
  call_type: {from: TYPE, convert: lookup, map: {V: voice, no: sms}}
dropped:
  IMSI: "SIM identity: not carried"
"""


def _write(tmp_path: Path, text: str, name: str = "my_cdr.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _error(path: Path) -> str:
    with pytest.raises(FormatFileError) as raised:
        load_format_file(path)
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_the_shipped_formats_load_and_classify_every_field():
    names = sorted(p.stem for p in SHIPPED.glob("*.yaml"))
    assert names == ["binetflow", "combined_log", "telco_customers", "zeek_conn", "zeek_dns", "zeek_http"]
    for name in names:
        fmt = load_format_file(SHIPPED / f"{name}.yaml")
        assert fmt.name == name and fmt.target in SOURCES
        assert not set(fmt.carried) & set(fmt.dropped)
        assert fmt.origin == str(SHIPPED / f"{name}.yaml")


def test_every_named_conversion_is_implemented_once_in_spark():
    assert set(CONVERTERS) == set(CONVERSIONS)


def test_a_good_file_reads_into_a_frozen_model(tmp_path):
    fmt = load_format_file(_write(tmp_path, GOOD))
    layout = fmt.layout
    assert (fmt.name, fmt.target, layout.delimiter, layout.header) == ("my_cdr", "call_records", ";", True)
    assert [r.column for r in fmt.columns] == ["account_id", "callee_msisdn", "start_time", "call_type"]
    lookup = fmt.columns[-1]
    assert lookup.mapping("map") == {"V": "voice", "no": "sms"}  # 'no' stays the word, not false
    assert fmt.dropped == {"IMSI": "SIM identity: not carried"}
    assert fmt.unclassified(["CALLING_NBR", "IMSI", "label"]) == ["label"]
    assert fmt.canonical_without_source == ["call_id", "caller_msisdn", "duration_s", "cell_id", "roaming"]
    with pytest.raises(AttributeError):
        fmt.name = "other"  # frozen


@pytest.mark.parametrize(
    ("old", "new", "line", "expected"),
    [
        ("convert: timestamp,", "convert: timestmap,", 8,
         "column 'start_time' (from field START_TS): unknown conversion 'timestmap' (one of text, lower"),
        ("  callee_msisdn:", "  callee_number:", 7,
         "unknown canonical column 'callee_number' of call_records"),
        ("  IMSI:", "  CALLED_NBR:", 11, "field 'CALLED_NBR': both mapped (to callee_msisdn) and dropped"),
        ('pattern: "dd/MM/yyyy HH:mm:ss"}', 'pattern: "dd/MM/yyyy HH:mm:ss"', 9,
         "not valid YAML"),
        ('IMSI: "SIM identity: not carried"', "IMSI:", 11, "field 'IMSI': dropped without a reason"),
        ("{from: TYPE, convert: lookup,", "{from: TYPE, convert: lookup, pattern: x,", 9,
         "unknown key 'pattern' in column 'call_type' (from field TYPE) (conversion lookup)"),
        ("target: call_records", "target: calls", 2, "target 'calls' is not a canonical source"),
        ("  account_id: {from: CALLING_NBR}\n", "", 5, "the privacy unit 'account_id' of call_records"),
        ('delimiter: ";"', 'delimiter: ";;"', 4, "delimiter must be one character"),
        ('"dd/MM/yyyy HH:mm:ss"}', '"dd/MM/yyyy HH:mm:ss", timezone: Mars/Olympus}', 8,
         "unknown time zone 'Mars/Olympus'"),
        ('"dd/MM/yyyy HH:mm:ss"}', '"dd/MM/yyyy HH:mm:ss", timezone: $tz}', 8,
         "timezone refers to option 'tz', which 'options' does not declare"),
        ("  IMSI:", "  CALLING_NBR: x\n  IMSI:", 11, "field 'CALLING_NBR': both mapped (to account_id)"),
    ],
    ids=["unknown-conversion", "unknown-column", "mapped-and-dropped", "yaml-syntax", "no-reason",
         "unknown-parameter", "unknown-target", "no-privacy-unit", "delimiter", "bad-zone", "no-option",
         "mapped-and-dropped-again"],
)
def test_a_bad_format_file_is_one_line_naming_file_line_and_field(tmp_path, old, new, line, expected):
    assert old in GOOD
    path = _write(tmp_path, GOOD.replace(old, new, 1))
    message = _error(path)
    assert message.startswith(f"{path}:{line}: "), message
    assert expected in message, message


def test_a_field_given_twice_and_a_missing_file_are_errors(tmp_path):
    twice = _write(tmp_path, GOOD + "  IMSI: again\n")
    assert re.match(re.escape(str(twice)) + r":12: 'IMSI' is given twice in dropped", _error(twice))
    assert _error(tmp_path / "nope.yaml") == f"{tmp_path / 'nope.yaml'}: format file not found"
    empty = _write(tmp_path, "", "empty.yaml")
    assert _error(empty) == f"{empty}: empty format file"


def test_options_are_checked_when_given(tmp_path):
    fmt = load_format_file(SHIPPED / "binetflow.yaml")
    assert fmt.resolve_options({}) == {"timezone": "UTC"}
    assert fmt.resolve_options({"timezone": "Europe/Prague"}) == {"timezone": "Europe/Prague"}
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        fmt.resolve_options({"timezone": "Mars/Olympus"})
    with pytest.raises(ValueError, match=r"takes no option\(s\) site_domain \(allowed: timezone\)"):
        fmt.resolve_options({"site_domain": "x"})
    site = load_format_file(SHIPPED / "combined_log.yaml")
    assert site.resolve_options({"site_domain": " Example.COM "}) == {"site_domain": "example.com"}
    with pytest.raises(ValueError, match="site_domain must be a non-empty host name"):
        site.resolve_options({"site_domain": " "})


def test_layouts_without_a_header_need_their_fields(tmp_path):
    headerless = GOOD.replace("header: true}", "header: false}")
    message = _error(_write(tmp_path, headerless))
    assert "needs 'fields'" in message
    fields = GOOD.replace("header: true}",
                          "header: false, fields: [CALLING_NBR, CALLED_NBR, START_TS, TYPE]}")
    assert load_format_file(_write(tmp_path, fields)).layout.fields == (
        "CALLING_NBR", "CALLED_NBR", "START_TS", "TYPE")
