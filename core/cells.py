"""The columns of a released table, named once: a cell's status and what each output derives.

A release has one row per cell: its group keys, its `status`, the number of
cells merged into it (`cells_merged`: 1 for a cell, more for a remainder), and
for every output its noisy value with the noise's sd and 95% interval.
A partner sees the values of the published statuses only; a withheld cell
keeps its keys and status and leaves its values empty.
"""

from __future__ import annotations

STATUS = "status"
CELLS_MERGED = "cells_merged"
CELL_COLUMNS = (STATUS, CELLS_MERGED)  # after the group keys, before the outputs

RELEASED = "released"  # published as noised
REMAINDER = "remainder"  # the sum of the merged cells next to it (sparse_cells: roll_up)
SUPPRESSED = "suppressed"  # withheld: fewer than k subscribers (noisy count)
MERGED = "merged"  # withheld, and added into its remainder row
PUBLISHED = (RELEASED, REMAINDER)
WITHHELD = (SUPPRESSED, MERGED)
STATUSES = (*PUBLISHED, *WITHHELD)


def noise_sd_column(output: str) -> str:
    return f"{output}_noise_sd"


def ci95_low_column(output: str) -> str:
    return f"{output}_ci95_low"


def ci95_high_column(output: str) -> str:
    return f"{output}_ci95_high"


def output_columns(output: str) -> tuple[str, str, str, str]:
    """An output's released columns: its value, the noise's sd, and the 95% interval's bounds."""
    return output, noise_sd_column(output), ci95_low_column(output), ci95_high_column(output)
