"""Reading a results CSV's records back, quote-aware, to find the last complete one."""

from __future__ import annotations

import csv
import io
import sys
from dataclasses import dataclass

#: A quoted cell (a path with a newline) spans at most this many lines when a damaged file is read.
_MAX_RECORD_LINES = 64

def set_field_limit() -> None:
    # a cell may be large (a long error, a hand-edited cell): never refuse to read our own file
    limit = min(sys.maxsize, 2**31 - 1)
    if csv.field_size_limit() < limit:
        csv.field_size_limit(limit)


def parse_records(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline=""), strict=False))


def _ends_outside_quotes(text: str) -> bool:
    """Whether a record's text ends outside a quoted cell (the rules of Python's csv reader:
    a quote opens a cell only at its start; ``""`` inside it is a quote)."""
    inq = False
    start = True
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if inq:
            if c == '"':
                if i + 1 < n and text[i + 1] == '"':
                    i += 1
                else:
                    inq = False
        elif c == '"' and start:
            inq = True
        start = c in ",\n" if not inq else False
        i += 1
    return not inq


@dataclass
class _Scan:
    records: list[list[str]]
    keep: int  # bytes of sound data: everything after it is a partial record to cut
    bad: int  # lines skipped as damaged


def scan_records(data: bytes, start: int, ncols: int) -> _Scan:
    """The records of ``data[start:]`` with ``ncols`` cells each, and where the sound part ends.

    Records are parsed in one pass while they are whole; from the first damaged one on (a record
    cut by a kill, possibly inside a quoted path with a newline, or a hand-edited stray quote),
    line by line: a record that never closes before the end of the file is the cut one, unless
    whole records follow it (then it was a stray quote and only its line is skipped).
    """
    set_field_limit()
    offsets = [start]  # where each line starts, and the end
    pos = start
    while True:
        nl = data.find(b"\n", pos)
        if nl < 0:
            break
        pos = nl + 1
        offsets.append(pos)
    if offsets[-1] != len(data):
        offsets.append(len(data))  # a last line without a newline
    nlines = len(offsets) - 1
    lines = (data[offsets[k] : offsets[k + 1]].decode("utf-8", "replace") for k in range(nlines))
    reader = csv.reader(lines, strict=False)
    records: list[list[str]] = []
    i = 0  # the first line not yet taken as whole records
    for row in reader:
        end = reader.line_num
        if not row or (len(row) == ncols and data[offsets[end] - 1 : offsets[end]] == b"\n"):
            if row:
                records.append(row)
            i = end
            continue
        break
    else:
        return _Scan(records, len(data), 0)
    bad = 0
    pending_cut: int | None = None
    while i < nlines:
        j = i
        while True:
            chunk = data[offsets[i] : offsets[j + 1]]
            closed = _ends_outside_quotes(chunk.decode("utf-8", "replace"))
            if closed or j + 1 >= nlines or j - i + 1 >= _MAX_RECORD_LINES:
                break
            j += 1
        if closed and chunk.endswith(b"\n"):
            rows = parse_records(chunk.decode("utf-8", "replace"))
            if len(rows) == 1 and len(rows[0]) == ncols:
                records.append(rows[0])
                if pending_cut is not None:
                    bad += 1
                    pending_cut = None
                i = j + 1
                continue
            if chunk.strip():
                bad += 1
            i += 1
            continue
        if j + 1 >= nlines:  # ran to the end of the file without closing: cut here, unless
            if pending_cut is None:  # whole records follow (then it was a stray quote)
                pending_cut = offsets[i]
            i += 1
            continue
        bad += 1  # a stray quote that swallows too many lines
        i += 1
    keep = pending_cut if pending_cut is not None else len(data)
    return _Scan(records, keep, bad)
