"""Results: the CSV and the folder of Parquet shards, their columns and rows, resuming them, and one
run at a time per output.

A results file is written by one run at a time (:class:`RunLock`, an OS lock that dies with the
process, so a ``kill -9`` leaves no stale lock). Rows are appended with plain ``os.write`` calls
in groups, each group fsync'ed; a group that cannot be written completely is cut back, so the
file always ends with a whole row and stays resumable. Opening an existing file reads its header
first, without changing anything: a file that is not a results file of ours is refused, never
cut or appended to. Resuming finds the last complete record by parsing (a quoted path may hold a
newline), and treats a film as done only when its last row is ``ok`` for the same path, size and
modification time: failed films are tried again.

The ``path`` cell is the path as UTF-8 text. On POSIX a file name is bytes and need not be UTF-8
(a Latin-1 ``Müller.png`` from an old archive is ``b"M\\xfcller.png"``). Such a path, and any
path holding a backslash, is written escaped: each byte that is not UTF-8 as ``\\xHH`` and each
backslash as ``\\\\`` (see :func:`path_cell` / :func:`path_from_cell`). A cell without a backslash
is the path as it is.

The modules: :mod:`.cells` (columns, a film's key, the cells of a row), :mod:`.lock`,
:mod:`.output_paths` (checks before writing), :mod:`.records` (reading a CSV's records back),
:mod:`.index` (the finished-film index), :mod:`.csv_file` (:class:`ResultsCsv`), :mod:`.shards`
(:class:`ResultsDir`), :mod:`.sinks` (:func:`open_results`, :func:`read_results`) and
:mod:`.summary`.
"""

from __future__ import annotations

from .cells import (
    CSV_ROWS_PER_WRITE,
    FIXED_HEAD,
    FIXED_TAIL,
    NOT_APPLICABLE,
    OUTSIDE_USE,
    FileKey,
    ScoredFile,
    csv_columns,
    file_key,
    path_cell,
    path_from_cell,
    region_dicts,
    regions_cell,
    result_row,
    safe_file_stem,
    text_cell,
    write_regions_json,
)
from .csv_file import UTF8_BOM, ResultsCsv
from .index import DoneKeys, KeyIndex, key_hash, key_path
from .lock import RunLock, lock_path
from .output_paths import check_output_file, refuse_inputs_as_output
from .records import scan_records
from .shards import MANIFEST, SHARD_ROWS, SHARD_SECONDS, ResultsDir, is_results_dir
from .sinks import open_results, read_results
from .summary import Summary

__all__ = [
    "CSV_ROWS_PER_WRITE",
    "DoneKeys",
    "FIXED_HEAD",
    "FIXED_TAIL",
    "FileKey",
    "KeyIndex",
    "MANIFEST",
    "NOT_APPLICABLE",
    "OUTSIDE_USE",
    "ResultsCsv",
    "ResultsDir",
    "RunLock",
    "SHARD_ROWS",
    "SHARD_SECONDS",
    "ScoredFile",
    "Summary",
    "UTF8_BOM",
    "check_output_file",
    "csv_columns",
    "file_key",
    "is_results_dir",
    "key_hash",
    "key_path",
    "lock_path",
    "open_results",
    "path_cell",
    "path_from_cell",
    "read_results",
    "refuse_inputs_as_output",
    "region_dicts",
    "regions_cell",
    "result_row",
    "safe_file_stem",
    "scan_records",
    "text_cell",
    "write_regions_json",
]
