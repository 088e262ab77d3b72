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


#: the real chest DICOMs of ../shared/data/dicom the DICOM-result benchmarks build results for
CHEST_DICOMS = (
    "torchxrayvision_siim_cr_chest.dcm",
    "nccid_nih_cxr14_gcp_dx.dcm",
    "dcmfx_fo-dicom_CR-MONO1-10-chest.dcm",
    "pydicom-data_RG3_J2KR.dcm",
)


def scored_chest_dicoms(clf) -> list:
    """(name, film, prediction) for each of :data:`CHEST_DICOMS`, scored once by ``clf``."""
    from cxrviewer.io import read_film

    films = [(name, read_film(SHARED / "dicom" / name)) for name in CHEST_DICOMS]
    return [(name, film, clf.predict_one(film)) for name, film in films]


def time_builds(scored: list, build, oracle, encode, repeats: int, profile=None) -> dict[str, list]:
    """CPU seconds of ``build(film, prediction)`` and of ``encode`` of what it built, and of
    ``oracle(film, prediction)`` (built and encoded), measured in turn for each scored film
    ``repeats`` times, after one warm-up of each. Returns, per film name and for "all", the
    lists ``build``, ``encode``, ``total`` and ``oracle``. ``profile``: a cProfile.Profile to
    run around ``build``."""
    for _, film, prediction in scored:  # warm-up (imports, the model's parts, caches)
        encode(build(film, prediction))
        encode(oracle(film, prediction))
    out: dict[str, dict[str, list]] = {"all": {"build": [], "encode": [], "total": [], "oracle": []}}
    for name, film, prediction in scored:
        times = out.setdefault(name, {"build": [], "encode": [], "total": [], "oracle": []})
        for _ in range(repeats):
            c0 = time.process_time()
            encode(oracle(film, prediction))
            c1 = time.process_time()
            if profile:
                profile.enable()
            ds = build(film, prediction)
            if profile:
                profile.disable()
            c2 = time.process_time()
            encode(ds)
            c3 = time.process_time()
            for key, value in (("oracle", c1 - c0), ("build", c2 - c1), ("encode", c3 - c2), ("total", c3 - c1)):
                times[key].append(value)
                out["all"][key].append(value)
    return out


def print_build_times(scored: list, times: dict[str, dict[str, list]], oracle: str, repeats: int) -> None:
    """The per-film and overall medians of :func:`time_builds`' ``times``, in ms; ``oracle``
    names the reference build ("item by item")."""
    import statistics

    for name, _, prediction in scored:
        t = {key: 1000 * statistics.median(values) for key, values in times[name].items()}
        print(f"{name}: {len(prediction.positives)} positives, build {t['build']:.1f} ms CPU, "
              f"encode {t['encode']:.1f} ms; {oracle} {t['oracle']:.1f} ms (median of {repeats})")
    t = {key: 1000 * statistics.median(values) for key, values in times["all"].items()}
    print(f"all films: build median {t['build']:.1f} ms CPU; build + encode {t['total']:.1f} ms "
          f"vs {oracle} {t['oracle']:.1f} ms: {t['oracle'] / t['total']:.1f}x less CPU")
