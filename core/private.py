"""Private folders and files: what this user's processes write, nobody else reads or replaces.

Raw and quarantine zones hold full records, Spark's scratch holds shuffles and
spills of them and the jar of code that runs beside the pseudonymization key.
Three rules keep them to the user who runs the pipeline:

- the process umask is 077 (files 0600, folders 0700) from the moment the CLI
  starts or a Spark session is built; the JVM inherits it at launch, and
  Hadoop's own umask (`fs.permissions.umask-mode`, which Spark's file writes
  apply instead of the process's) is set to the same in stages.spark;
- a folder trusted with code or raw rows (Spark's scratch, its jvm/ folder)
  is created 0700, and one that already exists is used only when it is a real
  folder (not a link) owned by this user with no group or other access;
- what partners receive keeps the modes the operator's own umask gave it
  before (`shared_mode`): a pickup account may need to read it.
"""

from __future__ import annotations

import os
import stat
from contextlib import suppress
from pathlib import Path

from core.errors import KrReportsError

PRIVATE_UMASK = 0o077
_inherited_umask: int | None = None


class PrivateFolderError(KrReportsError, RuntimeError):
    """A folder that must be private to this user is not."""


def use_private_umask() -> None:
    """Files 0600 and folders 0700 for everything this process (and a JVM it starts) creates."""
    global _inherited_umask
    previous = os.umask(PRIVATE_UMASK)
    if _inherited_umask is None:
        _inherited_umask = previous


def shared_mode(mode: int) -> int:
    """`mode` (0o666 for a file, 0o777 for a folder) under the umask the process started with."""
    inherited = _inherited_umask if _inherited_umask is not None else _current_umask()
    return mode & ~inherited


def _current_umask() -> int:
    current = os.umask(PRIVATE_UMASK)
    os.umask(current)
    return current


def private_dir(path: Path, what: str) -> Path:
    """`path` as a folder only this user can enter: created 0700, or checked when it exists.

    Raises PrivateFolderError naming the folder, what it is for and what was
    expected, when an existing one is a link, not a folder, another user's, or
    open to group or others. Nothing is changed on a folder that is refused.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with suppress(FileExistsError):
        path.mkdir(mode=0o700)
    _check_private(path, what)
    return path


def _check_private(path: Path, what: str) -> None:
    info = os.lstat(path)
    expected = (f"{path}: {what} must be a folder (not a link) owned by uid {os.getuid()} "
                "with no access for group or others (mode 0700)")
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise PrivateFolderError(f"{expected}; it is not a plain folder")
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid != os.getuid() or mode & 0o077:
        raise PrivateFolderError(f"{expected}; it is owned by uid {info.st_uid} with mode {mode:04o}")
