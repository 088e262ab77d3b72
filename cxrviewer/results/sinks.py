"""Opening and reading results, whichever kind ``out`` names (a CSV, or a folder of shards)."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import OutputError
from ..io import is_url
from .csv_file import ResultsCsv
from .shards import SHARD_NAME, ResultsDir, import_pyarrow, is_results_dir


def open_results(out: str | os.PathLike[str], labels: Sequence[str], model_version: str,
                 overwrite: bool = False) -> "ResultsCsv | ResultsDir":
    """The results sink ``out`` names: a :class:`ResultsDir` for a folder (an existing one, or a
    name ending in a separator), else a :class:`ResultsCsv`. Both resume the same way."""
    if is_results_dir(out):
        return ResultsDir(out, labels, model_version, overwrite=overwrite)
    if is_url(out):
        raise OutputError(f"{out}: results on an object store are a folder of Parquet shards, not a CSV (an "
                          "object cannot be appended to); end the URL with / for a folder.")
    return ResultsCsv(Path(out), labels, model_version, overwrite=overwrite)


def read_results(out: str | os.PathLike[str]) -> list[dict[str, str]]:
    """Every row of a results CSV or folder, in the order written (for checks and small sets)."""
    if is_results_dir(out):
        pa, pq = import_pyarrow()
        rows: list[dict[str, str]] = []
        if is_url(out):
            from ..storage import read_url_bytes, url_names

            base = str(out).rstrip("/")
            for n in (n for n in url_names(base) if SHARD_NAME.match(n)):
                rows.extend(pq.read_table(pa.BufferReader(read_url_bytes(f"{base}/{n}"))).to_pylist())
            return rows
        for n in sorted(n for n in os.listdir(out) if SHARD_NAME.match(n)):
            rows.extend(pq.read_table(Path(out) / n).to_pylist())
        return rows
    with open(out, newline="", encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))
