"""Loaders of the reference tables the generalizers join with (IO lives here, not in transforms).

They are small public lookup tables, not subscriber data, so they are read on
the driver with pandas and handed to Spark with an explicit schema:
- TAC -> device brand and model: the Osmocom TAC database layout; the shipped
  `core/reference/tac_models.csv` covers the synthetic generator's TACs;
- OUI -> MAC vendor: the IEEE MA-L registry CSV (Debian's `ieee-data`);
- domain -> category: the shipped `core/reference/domain_categories.csv`.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StringType, StructField, StructType

import core

TAC_SCHEMA = StructType(
    [
        StructField("tac", StringType(), nullable=False),
        StructField("brand", StringType(), nullable=False),
        StructField("model", StringType(), nullable=True),
    ]
)
OUI_SCHEMA = StructType(
    [
        StructField("oui", StringType(), nullable=False),
        StructField("vendor", StringType(), nullable=False),
    ]
)
DOMAIN_CATEGORY_SCHEMA = StructType(
    [
        StructField("domain", StringType(), nullable=False),
        StructField("category", StringType(), nullable=False),
    ]
)

DEFAULT_OUI_PATH = Path("/usr/share/ieee-data/oui.csv")
TAC_DIGITS = 8
OUI_REGISTRY = "MA-L"


def shipped_reference(name: str) -> Path:
    """The path of a reference CSV shipped in the core package (core/reference/)."""
    # __path__ rather than importlib.resources: it also works when an editable
    # install maps core as a namespace package.
    for base in core.__path__:
        candidate = Path(base) / "reference" / name
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"core/reference/{name} is not installed with the package")


def _read_bytes(path: str | Path) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reference table not found: {path}")
    return path.read_bytes()


def _to_spark(spark: SparkSession, frame: pd.DataFrame, schema: StructType) -> DataFrame:
    rows = [
        tuple(None if value == "" else value for value in row)
        for row in frame.itertuples(index=False, name=None)
    ]
    return spark.createDataFrame(rows, schema)


def parse_tac_csv(data: bytes) -> pd.DataFrame:
    """(tac, brand, model) rows of a CSV in the Osmocom TAC database layout.

    The layout: an optional licence banner on line 1, then a header
    `tac,name,name,...` whose two `name` columns are the brand and the model;
    CRLF or LF line endings, values sometimes with a leading space. TACs that
    lost their leading zeros (spreadsheet damage, e.g. Apple's 01xxxxxx written
    as 1130000) are padded back to 8 digits; rows without a numeric TAC of at
    most 8 digits or without a brand are skipped. Every other row is kept, in
    file order, duplicates included (the generalizer resolves them).
    """
    text = data.decode("utf-8-sig")
    first_line = text.split("\n", 1)[0].strip().lower()
    has_banner = not first_line.startswith("tac,")
    frame = pd.read_csv(
        io.StringIO(text),
        skiprows=1 if has_banner else 0,
        header=0,
        usecols=[0, 1, 2],
        dtype=str,
        keep_default_na=False,
    )
    frame.columns = ["tac", "brand", "model"]
    frame = frame.apply(lambda column: column.str.strip())
    valid = frame["tac"].str.fullmatch(rf"[0-9]{{1,{TAC_DIGITS}}}") & (frame["brand"] != "")
    frame = frame[valid].copy()
    frame["tac"] = frame["tac"].str.zfill(TAC_DIGITS)
    return frame.reset_index(drop=True)


def load_tac_table(spark: SparkSession, path: str | Path | None = None) -> DataFrame:
    """The TAC table (tac, brand, model) from an Osmocom-layout CSV.

    `path` defaults to the shipped `core/reference/tac_models.csv` (the
    synthetic generator's TACs, so the demo needs no outside data); point it
    at the Osmocom TAC database (CC BY-SA 3.0) for real devices.
    """
    data = _read_bytes(path or shipped_reference("tac_models.csv"))
    return _to_spark(spark, parse_tac_csv(data), TAC_SCHEMA)


def parse_oui_csv(data: bytes) -> pd.DataFrame:
    """(oui, vendor) rows of the IEEE MA-L registry CSV.

    Columns Registry, Assignment, Organization Name, Organization Address;
    quoted fields (addresses mostly) may span lines, so this is a CSV parse,
    never a line split. Keeps MA-L rows with a 6-hex-digit assignment, one row
    per record in file order (the registry lists a few assignments twice).
    """
    frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, encoding="utf-8")
    missing = {"Registry", "Assignment", "Organization Name"} - set(frame.columns)
    if missing:
        raise ValueError(f"not an IEEE registry CSV: no column(s) {sorted(missing)}")
    oui = frame["Assignment"].str.strip().str.upper()
    vendor = frame["Organization Name"].str.strip()
    valid = (
        (frame["Registry"].str.strip() == OUI_REGISTRY)
        & oui.str.fullmatch("[0-9A-F]{6}")
        & (vendor != "")
    )
    return pd.DataFrame({"oui": oui[valid], "vendor": vendor[valid]}).reset_index(drop=True)


def load_oui_table(spark: SparkSession, path: str | Path | None = None) -> DataFrame:
    """The OUI table (oui, vendor) from the IEEE MA-L CSV.

    `path` defaults to /usr/share/ieee-data/oui.csv, which Debian's and
    Ubuntu's `ieee-data` package installs; FileNotFoundError when it is absent.
    """
    if path is None:
        if not DEFAULT_OUI_PATH.is_file():
            raise FileNotFoundError(
                f"IEEE OUI registry not found at {DEFAULT_OUI_PATH}: install it with "
                "`apt-get install ieee-data`, or pass the path of an oui.csv"
            )
        path = DEFAULT_OUI_PATH
    return _to_spark(spark, parse_oui_csv(_read_bytes(path)), OUI_SCHEMA)


def parse_domain_categories(data: bytes) -> pd.DataFrame:
    """(domain, category) rows of a `domain,category` CSV; domains lowercased.

    Raises ValueError on a missing column, an empty cell or a domain listed
    twice: a curated table with a conflict is a mistake to fix, not to guess.
    """
    frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    if list(frame.columns) != ["domain", "category"]:
        raise ValueError(f"expected header domain,category, got {','.join(frame.columns)}")
    frame = pd.DataFrame(
        {
            "domain": frame["domain"].str.strip().str.lower(),
            "category": frame["category"].str.strip(),
        }
    )
    if ((frame["domain"] == "") | (frame["category"] == "")).any():
        raise ValueError("domain categories: every row needs a domain and a category")
    duplicated = sorted(set(frame.loc[frame["domain"].duplicated(), "domain"]))
    if duplicated:
        raise ValueError(f"domain categories: listed more than once: {', '.join(duplicated)}")
    return frame


def load_domain_categories(spark: SparkSession, path: str | Path | None = None) -> DataFrame:
    """The domain category table (domain, category); defaults to the shipped CSV."""
    data = _read_bytes(path or shipped_reference("domain_categories.csv"))
    return _to_spark(spark, parse_domain_categories(data), DOMAIN_CATEGORY_SCHEMA)
