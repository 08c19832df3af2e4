"""The project's own errors: one base, so a caller catches them once.

Every error class this project defines subclasses KrReportsError, and keeps
the builtin base it had (`class ConfigError(KrReportsError, ValueError)`), so
`except ValueError` around a config load still works. Their messages name
files, columns, keys, stages and counts, never a data value: the CLI prints
them as one line, and a Prefect task may store them in its API.

Most are the user's to fix (a wrong config, a missing input, a budget that
cannot take a report): the CLI shows them without a traceback. An
InternalAlarm is not: one of the project's own safeguards caught the code
doing what it must never do (a delivery that would disclose an undeclared
field, a release stored twice), so the CLI lets its traceback through, to be
reported and fixed rather than worked around.
"""

from __future__ import annotations


class KrReportsError(Exception):
    """An error of this project; its message names files, columns, keys and counts, never data values."""


class InternalAlarm(KrReportsError):
    """A safeguard caught the project's own code breaking an invariant: a bug, not the user's input."""
