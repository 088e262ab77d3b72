"""Shared helpers for the benchmarks: where the films are, medians, a table printer."""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("CXR_SHARED_DATA", REPO.parent / "shared" / "data"))


def nih_pngs() -> list[Path]:
    films = sorted((SHARED / "nih" / "images").glob("*.png"))
    if not films:
        raise SystemExit(f"no NIH films under {SHARED}; set CXR_SHARED_DATA")
    return films


def dicoms() -> list[Path]:
    return sorted((SHARED / "dicom").glob("*.dcm"))


def demo_model() -> Path:
    from cxrviewer.paths import default_model_path

    return default_model_path()


def median_rate(fn, n_items: int, repeats: int) -> tuple[float, list[float]]:
    """Run ``fn`` ``repeats`` times; films/s of each run and their median."""
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        rates.append(n_items / (time.perf_counter() - t0))
    return statistics.median(rates), rates


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def load() -> str:
    """The 1, 5 and 15 minute load averages (other users of the cores show up here)."""
    try:
        return "load %.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        return "load unknown"


def machine() -> str:
    import platform

    return f"{cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}; {load()}"
