"""The run directory: what ``fit`` leaves for ``evaluate`` and ``export``.

::

    RUN/run.json      labels, input size, mean/std, uncertainty mapping, model version, trained_on, config
    RUN/splits.csv    split, film path, raw label values (no patient ids)
    RUN/model.keras   the best model (lowest val_loss)
    RUN/history.csv   per-epoch loss/metrics (Keras CSVLogger)
    RUN/metrics.json  per-split AUROC, thresholds, confusion counts   (evaluate)
    RUN/report.md     the same for people, with roc_*.png / pr_*.png   (evaluate)
    RUN/model.onnx    the exported model with its metadata            (export)
    RUN/model.int8.onnx, RUN/int8.json   int8 copy and its parity check  (export --int8)
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .data import SPLITS, Record
from .errors import RunError

RUN_FILE = "run.json"
SPLITS_FILE = "splits.csv"
MODEL_FILE = "model.keras"
ONNX_FILE = "model.onnx"
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"
HISTORY_FILE = "history.csv"
INT8_JSON = "int8.json"


@dataclass(frozen=True)
class Run:
    """A run directory and its ``run.json``."""

    path: Path
    info: dict[str, Any]

    @classmethod
    def open(cls, path: str | Path) -> "Run":
        p = Path(path)
        f = p / RUN_FILE
        if not f.is_file():
            raise RunError(f"{p} is not a training run (no {RUN_FILE}). Make one with `cxr-train fit ... --out {p}`.")
        try:
            info = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RunError(f"{f} is unreadable ({exc}); run `cxr-train fit` again.") from None
        return cls(p, info)

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.info["labels"])

    @property
    def input_size(self) -> int:
        return int(self.info["input_size"])

    @property
    def mean(self) -> float:
        return float(self.info["mean"])

    @property
    def std(self) -> float:
        return float(self.info["std"])

    def splits(self) -> dict[str, list[Record]]:
        return read_splits(self.path / SPLITS_FILE, len(self.labels))

    def require(self, name: str, hint: str) -> Path:
        f = self.path / name
        if not f.is_file():
            raise RunError(f"{f} is missing: {hint}")
        return f


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def write_splits(path: Path, labels: tuple[str, ...], splits: dict[str, list[Record]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["split", "path", *labels])
        for name in SPLITS:
            for r in splits.get(name, []):
                w.writerow([name, str(r.path), *(f"{v:g}" for v in r.values)])


def read_splits(path: Path, num_labels: int) -> dict[str, list[Record]]:
    if not path.is_file():
        raise RunError(f"{path} is missing: the run was not made by `cxr-train fit`, or is incomplete.")
    out: dict[str, list[Record]] = {s: [] for s in SPLITS}
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        for i, row in enumerate(reader):
            if len(row) != 2 + num_labels or row[0] not in out:
                raise RunError(f"{path} row {i + 2} is malformed; run `cxr-train fit` again.")
            out[row[0]].append(Record(Path(row[1]), tuple(float(v) for v in row[2:]), patient="", split=row[0]))
    return out
