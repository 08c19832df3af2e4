"""Names that operators and specs give, and the paths built from them.

Release ids, report names, partner ids and purposes become folder names (the
quarantine, the release store, a partner's deliveries) and key-derivation
contexts. A name is one plain path segment: a letter or digit, then letters,
digits, '.', '_' or '-', at most 128 characters, and never '..'. A path built
from names is resolved and must stay under the folder it was built in, so a
name can never reach (or overwrite, or remove) anything outside it.
"""

from __future__ import annotations

import re
from pathlib import Path

from core.errors import KrReportsError

IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
IDENTIFIER_RULE = ("a letter or digit, then letters, digits, '.', '_' or '-' "
                   "(at most 128 characters, no '..')")


class UnsafeName(KrReportsError, ValueError):
    """A name or path from input that could leave the folder it belongs in."""


def is_identifier(name: object) -> bool:
    return isinstance(name, str) and IDENTIFIER.fullmatch(name) is not None and ".." not in name


def check_identifier(name: object, what: str) -> str:
    """`name` when it is one plain path segment; UnsafeName naming `what` otherwise."""
    if not is_identifier(name):
        raise UnsafeName(f"{what} {name!r} is not a plain name: expected {IDENTIFIER_RULE}")
    return name


def path_under(parent: Path | str, *parts: str) -> Path:
    """parent/part/..., resolved; UnsafeName unless it is strictly inside the resolved parent."""
    root = Path(parent).resolve()
    path = root.joinpath(*parts).resolve()
    if path == root or not path.is_relative_to(root):
        raise UnsafeName(f"{Path(parent, *parts)}: leaves {root}")
    return path
