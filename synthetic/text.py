"""Landing texts from numpy arrays: pyarrow string arrays, built without a loop over rows.

Fixed-width texts (digit strings, hex, times) are written as a byte matrix, one row per
value, and handed to pyarrow as the data of a string array; texts with a few possible
values (regions, hours, small numbers) are looked up with `take`; variable texts are
joined with pyarrow's element-wise kernels.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_DIGITS = np.frombuffer(b"0123456789", dtype=np.uint8)
_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
NULL_TEXT = pa.scalar(None, pa.string())


def fixed_width_text(chars: np.ndarray) -> pa.StringArray:
    """One ASCII string per row of a (rows, width) uint8 matrix."""
    rows, width = chars.shape
    offsets = np.arange(0, (rows + 1) * width, width, dtype=np.int32)
    data = np.ascontiguousarray(chars, dtype=np.uint8)
    return pa.StringArray.from_buffers(rows, pa.py_buffer(offsets), pa.py_buffer(data))


def digit_chars(numbers: np.ndarray, width: int) -> np.ndarray:
    """(rows, width) matrix of the decimal digits of non-negative integers, zero-padded."""
    chars = np.empty((len(numbers), width), dtype=np.uint8)
    rest = numbers.astype(np.uint64)
    for column in range(width - 1, -1, -1):
        chars[:, column] = _DIGITS[rest % np.uint64(10)]
        rest = rest // np.uint64(10)
    return chars


def hex_chars(numbers: np.ndarray, width: int) -> np.ndarray:
    """(rows, width) matrix of the lowercase hex digits of uint64 values, zero-padded."""
    chars = np.empty((len(numbers), width), dtype=np.uint8)
    values = numbers.astype(np.uint64)
    for column in range(width):
        shift = np.uint64(4 * (width - 1 - column))
        chars[:, column] = _HEX_DIGITS[(values >> shift) & np.uint64(15)]
    return chars


def literal_chars(text: str, rows: int) -> np.ndarray:
    """(rows, len(text)) matrix repeating an ASCII text."""
    return np.broadcast_to(np.frombuffer(text.encode("ascii"), dtype=np.uint8), (rows, len(text)))


def zero_padded(numbers: np.ndarray, width: int, prefix: str = "") -> pa.StringArray:
    """`prefix` then the decimal text of non-negative integers below 10**width, zero-padded."""
    parts = [literal_chars(prefix, len(numbers)), digit_chars(numbers, width)]
    return fixed_width_text(np.hstack(parts))


def lookup(values: Sequence[object], index: np.ndarray | pa.Array) -> pa.Array:
    """The elements of a small list of values at 0-based indexes (a null index gives null)."""
    return _lookup_array(tuple(values)).take(index)


@cache
def _lookup_array(values: tuple) -> pa.Array:
    return pa.array(values)


def plain_number(numbers: np.ndarray) -> pa.StringArray:
    """Decimal text of integers, no padding."""
    return pc.cast(pa.array(numbers, type=pa.int64()), pa.string())


@cache
def small_numbers(n: int) -> pa.StringArray:
    """Decimal texts of 0..n-1 (looked up: cheaper than formatting each)."""
    return pa.array([str(i) for i in range(n)])


@cache
def hex_numbers(n: int) -> pa.StringArray:
    """Lowercase hex texts of 0..n-1, no padding."""
    return pa.array([f"{i:x}" for i in range(n)])


def decimal_text(values: np.ndarray, places: int) -> pa.StringArray:
    """Non-negative numbers as text with exactly `places` decimals ('1.500')."""
    scaled = np.floor(values * 10**places + 0.5).astype(np.int64)
    fraction = fixed_width_text(digit_chars(scaled % 10**places, places))
    return pc.binary_join_element_wise(plain_number(scaled // 10**places), fraction, ".")


@cache
def _clock_texts() -> np.ndarray:
    """(86400, 8) matrix: 'HH:mm:ss' of every second of a day."""
    seconds = np.arange(86_400)
    parts = [digit_chars(seconds // 3600, 2), literal_chars(":", 86_400),
             digit_chars(seconds // 60 % 60, 2), literal_chars(":", 86_400),
             digit_chars(seconds % 60, 2)]
    return np.hstack(parts)


def clock_text(second_of_day: np.ndarray) -> pa.StringArray:
    """'HH:mm:ss' of seconds of a day (0..86399)."""
    return fixed_width_text(_clock_texts()[second_of_day])


def time_text(day: dt.date, second_of_day: np.ndarray) -> pa.StringArray:
    """'yyyy-MM-dd HH:mm:ss' of seconds (0..86399) of `day` (the clock part looked up)."""
    rows = len(second_of_day)
    chars = np.hstack([literal_chars(f"{day.isoformat()} ", rows), _clock_texts()[second_of_day]])
    return fixed_width_text(chars)


def date_text(days: np.ndarray) -> pa.StringArray:
    """'yyyy-MM-dd' of numpy datetime64[D] dates."""
    return pc.cast(pa.array(days.astype("datetime64[D]")), pa.string())
