"""Real operator formats mapped onto the canonical landing text schemas.

Operators do not export the canonical files; they have Zeek logs, Argus flow
CSV, web server logs, CDR and CRM exports. A format is data: a file under
config/formats/ (read into `core.formats.FileFormat` by `core.format_file`)
says the layout and, for each canonical column, the conversion of which
input fields computes it. This package does the Spark half, once for all
formats:

- `records`: line numbers, the mapped/rejected split, shared pieces;
- `layouts`: lines -> records of named fields (zeek, csv, combined_log, json_lines, parquet);
- `conversions`: the named conversions (`core.formats.CONVERSIONS`);
- `mapping`: records -> canonical text, as the format says;
- `canonical`: the project's own landing files.

Everything is native Spark (regular expressions, higher-order functions,
small broadcast joins of per-file headers): no Python UDFs, no RDDs, nothing
collected.
"""

from transforms.formats.canonical import (
    join_quoted_lines,
    map_canonical,
    map_canonical_csv,
    map_canonical_json,
)
from transforms.formats.layouts import COMBINED_LOG_FIELDS, COMBINED_LOG_PATTERN, ZEEK_EMPTY, ZEEK_UNSET
from transforms.formats.mapping import map_lines, map_records
from transforms.formats.records import (
    LANDING_TIMESTAMP_FORMAT,
    REJECTED_COLUMNS,
    REJECTED_SCHEMA,
    FormatResult,
    number_lines,
)

__all__ = [
    "COMBINED_LOG_FIELDS", "COMBINED_LOG_PATTERN", "LANDING_TIMESTAMP_FORMAT", "REJECTED_COLUMNS",
    "REJECTED_SCHEMA", "ZEEK_EMPTY", "ZEEK_UNSET", "FormatResult", "join_quoted_lines", "map_canonical",
    "map_canonical_csv", "map_canonical_json", "map_lines", "map_records", "number_lines",
]
