"""Where a zone or a file lives: a local folder (a `Path`) or a URL on shared storage.

A URL (file://, hdfs://, s3a://, abfss://, ...) becomes a universal_pathlib `UPath`,
which answers the `Path` calls the stages make (`/`, exists, read_text, iterdir, glob,
open) through fsspec. Spark reads and writes the same place through Hadoop's
filesystems: `url_of` gives the whole URL Hadoop expects.

What differs is atomicity. A local folder is filled in a hidden sibling and renamed
into place. An object store has no rename: there, the file that makes a write visible
(a release's record, a dataset's `_SUCCESS`, a delivery's signature) is written last,
and every reader ignores a folder without it. `write_once` does either.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from upath import UPath

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(value: str | os.PathLike) -> bool:
    """A location written as a URL (`scheme://...`), not a local path."""
    return isinstance(value, str) and bool(_SCHEME.match(value))


def on_shared_storage(path) -> bool:
    """A location reached through fsspec by URL (file:// included), not an OS path."""
    return isinstance(path, UPath) and not isinstance(path, Path)


def location(value: str | os.PathLike) -> Path | UPath:
    """A URL's `UPath`, or a local `Path` as given."""
    if on_shared_storage(value):
        return value
    if is_url(value):
        return UPath(value)
    return Path(value)


def url_of(path: Path | UPath) -> str:
    """The full text of a location: what Spark (Hadoop) reads and writes it by, and what fsspec opens.

    UPath's own text drops the parts fsspec keeps as options: an HDFS name node's
    host and port, an Azure account. They are put back here.
    """
    if not on_shared_storage(path):
        return str(path)
    options = path.storage_options
    if path.protocol in ("hdfs", "viewfs") and options.get("host"):
        port = f":{options['port']}" if options.get("port") else ""
        return f"{path.protocol}://{options['host']}{port}/{path.path.lstrip('/')}"
    if path.protocol in ("abfs", "abfss") and options.get("account_name"):
        container, _, rest = path.path.partition("/")
        return f"{path.protocol}://{container}@{options['account_name']}.dfs.core.windows.net/{rest}"
    return str(path)


def write_once(final: Path | UPath, fill: Callable[[Path | UPath], None], marker: str) -> bool:
    """Write the folder `final` once, so that a reader sees all of it or nothing.

    `fill(folder)` writes the folder's files, `marker` (the file readers look for)
    last. Locally it fills a hidden sibling and renames it into place. On shared
    storage it fills `final` itself, clearing first what an interrupted writer left
    there (no marker, so no reader took it). Returns False, writing nothing, when
    `final` is already written.
    """
    if not on_shared_storage(final):
        return _rename_into_place(final, fill)
    if (final / marker).exists():
        return False
    if final.exists():
        final.fs.rm(final.path, recursive=True)
    final.mkdir(parents=True, exist_ok=True)  # a mounted file:// needs the folder; an object store not
    try:
        fill(final)
    except BaseException:
        with suppress(Exception):  # best effort: without its marker, nothing here is read
            final.fs.rm(final.path, recursive=True)
        raise
    return True


def _rename_into_place(final: Path, fill: Callable[[Path], None]) -> bool:
    if final.exists():
        return False
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        fill(staging)
        os.replace(staging, final)  # atomic within one file system
    except BaseException:
        with suppress(FileNotFoundError):
            shutil.rmtree(staging)
        raise
    return True
