"""Patient-level train/valid/test split and the leakage guard.

A patient's films all go to one split: films of one patient look alike, so a patient in both
train and test inflates every metric (the deeplearning.ai course's ``check_for_leakage``; the
course's own ``train-small.csv`` and ``valid-small.csv`` share patients). :func:`assert_no_leakage`
is a real guard: training refuses to start when it finds a shared patient.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from .data import SPLITS, Record
from .errors import DataError, LeakageError

logger = logging.getLogger(__name__)


def check_for_leakage(first: Iterable[str], second: Iterable[str]) -> bool:
    """True when any patient id occurs in both collections (the course's helper)."""
    return bool(set(first) & set(second))


def assert_no_leakage(splits: Mapping[str, Sequence[Record]]) -> None:
    """Raise :class:`LeakageError` when a patient appears in two splits.

    The message gives counts only: patient ids are never logged.
    """
    names = [s for s in splits if splits[s]]
    problems = []
    for i, a in enumerate(names):
        pa = {r.patient for r in splits[a]}
        for b in names[i + 1 :]:
            shared = pa & {r.patient for r in splits[b]}
            if shared:
                films = sum(1 for r in splits[a] if r.patient in shared) + sum(1 for r in splits[b] if r.patient in shared)
                problems.append(f"{len(shared)} patients ({films} films) in both {a} and {b}")
    if problems:
        raise LeakageError(
            "Patient leakage: " + "; ".join(problems) + ". Refusing to train, because shared patients "
            "inflate every validation and test metric. Let cxr-train split by patient (drop "
            "--valid-csv/--test-csv), or move each patient's films into one split."
        )


def split_by_patient(
    records: Sequence[Record], val_frac: float = 0.1, test_frac: float = 0.1, seed: int = 0
) -> dict[str, list[Record]]:
    """Split records into train/valid/test by patient, reproducibly for a given ``seed``.

    Records with a preset split (class folders ``train/val/test``, ``--valid-csv``) keep it; the
    others are train. When no preset valid split exists, ``val_frac`` of the train patients are
    moved to valid; likewise ``test_frac`` for test, but only when nothing was preset at all.
    """
    if not 0.0 <= val_frac < 1.0 or not 0.0 <= test_frac < 1.0 or val_frac + test_frac >= 1.0:
        raise DataError(f"--val-frac {val_frac} and --test-frac {test_frac} must be in [0, 1) and sum below 1.")
    preset = any(r.split for r in records)
    out: dict[str, list[Record]] = {s: [] for s in SPLITS}
    for r in records:
        out[r.split or "train"].append(r)
    carve = []
    if not out["test"] and not preset and test_frac > 0:
        carve.append(("test", test_frac))
    if not out["valid"] and val_frac > 0:
        carve.append(("valid", val_frac))
    if carve:
        patients = sorted({r.patient for r in out["train"]})
        order = np.random.default_rng(seed).permutation(len(patients))
        total = len(patients)
        assigned: dict[str, str] = {}
        start = 0
        for name, frac in carve:
            n = int(round(frac * total))
            if n == 0 and total >= 3:
                n = 1
            for i in order[start : start + n]:
                assigned[patients[i]] = name
            start += n
        if start >= total:
            raise DataError(f"Only {total} patients: too few to split off {' and '.join(n for n, _ in carve)}. Add films or lower the fractions.")
        kept = []
        for r in out["train"]:
            dest = assigned.get(r.patient)
            (out[dest] if dest else kept).append(r)
        out["train"] = kept
    logger.info("split by patient (seed %d): %s", seed, ", ".join(f"{s} {len(out[s])}" for s in SPLITS))
    return out
