"""``auto``: the fastest engine that keeps parity with fp32 ONNX Runtime, measured once and cached.

For a model file and this machine (:func:`~.machine.this_machine`), every engine that
:func:`~.machine.candidates` allows is

1. **checked** against the reference, ONNX Runtime on the CPU at fp32 (for an int8 file given
   directly: ONNX Runtime on that file), on the model's calibration films
   (:func:`calibration_inputs`): the six bundled NIH sample films (``resources/samples``, read
   and preprocessed by the app's own path) and three deterministic synthetic films (a grey ramp,
   a seeded smooth noise field, a bright disc on a dark ground). It passes when, on every film,
   every probability is within :data:`MAX_PROB_DELTA` (1e-3; an fp32 engine: within
   :data:`MAX_PROB_DELTA_FP32`, 1e-5) and every class map within :data:`MAX_MAP_DELTA` (1%) of
   that film's peak map value;
2. **timed** as ``cxrviewer score`` runs it: one-thread runs side by side, one per core (at most
   :data:`TIMING_STREAMS`; the batch path's workers), the engines taking turns for
   :data:`TIMING_ROUNDS` rounds after a warm-up; median wall ms a film (a round's time over its
   films). Side by side matters: engines that are close alone can differ when both cores run.

The fastest engine that passes is chosen, if it is at least :data:`MIN_GAIN` (1.25x) as fast as
the reference (else the reference stays); engines within :data:`TIE` (5%) of the fastest count
as equally fast, and the most exact of those wins (:data:`~.machine.PREFERENCE`). The result is
kept in the user's cache folder (:func:`cache_dir`), keyed by the SHA-256 of the model file (and
of its int8 copy), the machine (CPU model, flags, core count, runtime versions) and what was
asked, so it is measured again only when one of those changes. A cache that cannot be read is
measured afresh; one that cannot be written is only logged.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import statistics
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import contract
from ..errors import CxrError, ModelError
from ..io import read_film
from ..paths import samples_dir
from ..preprocess import preprocess_batch
from ..storage import atomic_write_bytes
from ..types import Film, ModelInfo
from .machine import PREFERENCE, Candidates, Machine, candidates, this_machine
from .runners import Engine, OrtRunner, Runner, ov_model_metadata, open_runner

logger = logging.getLogger(__name__)

#: A candidate's probabilities may differ from the reference's by at most this much ...
MAX_PROB_DELTA = 1e-3
#: ... and by at most this much when it claims to be fp32 too (OpenVINO f32: ~2e-7 measured).
MAX_PROB_DELTA_FP32 = 1e-5
#: Its class maps by at most this fraction of the film's peak map value.
MAX_MAP_DELTA = 0.01
#: Engines this much slower than the fastest count as as fast (the most exact is preferred).
TIE = 0.05
#: Another engine replaces the reference only when it is at least this much faster in the
#: measurement: the model-only time leaves out what the engine costs around it (its start-up, its
#: threads beside the decoding workers). Measured on a 2-core AMD EPYC: OpenVINO fp32 timed
#: 1.05-1.16x ONNX Runtime model-only, yet `cxrviewer score` of 74 films ran at 0.53-0.91x
#: (bench/RESULTS.md, seventh session); bf16 on AMX is ~3.4x.
MIN_GAIN = 1.25
TIMING_ROUNDS = 7
#: Films run side by side in a timing round: one per core, at most this many.
TIMING_STREAMS = 8
#: Bumped when the rules above change: older cached choices are then measured again.
CHOICE_VERSION = 3
CACHE_ENV = "CXRVIEWER_CACHE_DIR"
CACHE_FILE = "engine-choices.json"
#: Choices kept in the cache file (the most recent).
CACHE_ENTRIES = 64


@dataclass(frozen=True)
class Trial:
    """One candidate's measurement."""

    engine: str
    ms_per_film: float | None
    max_prob_delta: float | None
    max_map_delta: float | None  # a fraction of the film's peak map value
    max_feature_delta: float | None  # a fraction of the largest feature (information)
    passed: bool
    note: str = ""


@dataclass(frozen=True)
class Choice:
    """The engine a classifier runs on, and why."""

    engine: Engine
    reason: str
    trials: tuple[Trial, ...] = ()
    excluded: tuple[tuple[str, str], ...] = ()
    #: "measured", "cached" or "given" (no choice to make: one combination, or fixed by the caller)
    how: str = "given"
    films: int = 0
    measured_at: str = ""
    machine: str = ""

    def lines(self) -> list[str]:
        """For ``cxrviewer info``: the choice, its reason, and each measurement."""
        out = [f"{self.engine}  ({self.how})", self.reason]
        if self.trials:
            for t in self.trials:
                speed = "-" if t.ms_per_film is None else f"{t.ms_per_film:7.1f} ms a film"
                parity = ("" if t.max_prob_delta is None else
                          f"  Δprob {t.max_prob_delta:.1e}, Δmaps {100 * (t.max_map_delta or 0):.2g}% of peak")
                verdict = "ok" if t.passed else "FAILS parity" if t.max_prob_delta is not None else "failed"
                out.append(f"  {t.engine:<22} {speed}{parity}  {verdict}{'  ' + t.note if t.note else ''}")
        for name, why in self.excluded:
            out.append(f"  {name:<22} not tried: {why}")
        if self.machine:
            out.append(f"  on {self.machine}")
        return out


# ----------------------------------------------------------------------------- files
def int8_copy_path(path: Path) -> Path:
    """Where ``cxr-train export --int8`` puts a model's int8 copy: ``model.onnx`` → ``model.int8.onnx``."""
    return path.with_name(path.stem + ".int8" + (path.suffix or ".onnx"))


def weights_for(path: Path, engine: Engine) -> Path:
    """The file an engine runs: the int8 copy beside ``path`` for int8 when there is one, else ``path``."""
    if engine.precision == "int8":
        copy = int8_copy_path(path)
        if copy.is_file():
            return copy
    return path


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ----------------------------------------------------------------------------- the cache
def cache_dir() -> Path:
    """``$CXRVIEWER_CACHE_DIR``, else the platform's user cache folder: ``$XDG_CACHE_HOME/cxrviewer``
    or ``~/.cache/cxrviewer`` (Linux), ``~/Library/Caches/cxrviewer`` (macOS),
    ``%LOCALAPPDATA%\\cxrviewer\\Cache`` (Windows)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "cxrviewer" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "cxrviewer"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache") / "cxrviewer"


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        logger.warning("ignoring the unreadable engine cache %s (%s); measuring again", path, exc)
        return {}
    entries = data.get("choices") if isinstance(data, dict) else None
    return entries if isinstance(entries, dict) else {}


def _write_cache(path: Path, key: str, entry: dict) -> None:
    """Add ``entry`` under ``key``: a temporary file in the same folder, then a rename, so a reader
    never sees half a file; failing to write costs a measurement next time, nothing else."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        entries = _read_cache(path)
        entries.pop(key, None)
        entries[key] = entry
        while len(entries) > CACHE_ENTRIES:
            entries.pop(next(iter(entries)))
        atomic_write_bytes(path, json.dumps({"format": 1, "choices": entries}, indent=1).encode("utf-8"))
    except (OSError, CxrError) as exc:
        logger.warning("could not keep the engine choice in %s (%s); it will be measured again next time", path, exc)


def _from_entry(entry: dict, allowed: Sequence[Engine] | None = None) -> Choice | None:
    try:
        engine = Engine(**entry["engine"])
        trials = tuple(Trial(**t) for t in entry.get("trials", ()))
        excluded = tuple((str(a), str(b)) for a, b in entry.get("excluded", ()))
        choice = Choice(engine=engine, reason=str(entry["reason"]), trials=trials, excluded=excluded, how="cached",
                        films=int(entry.get("films", 0)), measured_at=str(entry.get("measured_at", "")),
                        machine=str(entry.get("machine", "")))
    except (KeyError, TypeError, ValueError):
        return None
    if allowed is not None and engine not in allowed:
        return None
    return choice


def _entry(choice: Choice) -> dict:
    return {"engine": asdict(choice.engine), "reason": choice.reason, "trials": [asdict(t) for t in choice.trials],
            "excluded": [list(x) for x in choice.excluded], "films": choice.films,
            "measured_at": choice.measured_at, "machine": choice.machine}


# ----------------------------------------------------------------------------- films
def synthetic_films(size: int) -> list[Film]:
    """Three deterministic films: a grey ramp (the load-time probe), seeded smooth noise, a disc."""
    ramp = np.linspace(0.2, 0.8, 2 * size - 1, dtype=np.float32)
    yy, xx = np.indices((size, size))
    coarse = np.random.default_rng(20261208).random((8, 8)).astype(np.float32)
    noise = np.kron(coarse, np.ones((size // 8 + 1, size // 8 + 1), np.float32))[:size, :size]
    r = np.hypot(yy - 0.45 * size, xx - 0.6 * size)
    disc = np.where(r < size / 5, 0.9, 0.15).astype(np.float32)
    meta = {"format": "synthetic"}
    return [Film(ramp[yy + xx], metadata=meta), Film(noise, metadata=meta), Film(disc, metadata=meta)]


def calibration_inputs(info: ModelInfo) -> tuple[list[np.ndarray], str]:
    """The model's calibration films as (1, S, S, 3) inputs, and a line saying which."""
    films: list[Film] = []
    try:
        names = sorted(samples_dir().glob("*.png"))
    except OSError:
        names = []
    for p in names:
        try:
            films.append(read_film(p))
        except (CxrError, OSError) as exc:
            logger.warning("calibration film %s skipped: %s", p.name, exc)
    n_samples = len(films)
    films += synthetic_films(info.input_size)
    x = preprocess_batch(films, info)
    return [np.ascontiguousarray(x[i : i + 1]) for i in range(len(films))], \
        f"{n_samples} bundled sample films + {len(films) - n_samples} synthetic"


# ----------------------------------------------------------------------------- measuring
def _outputs(runner: Runner, inputs: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    return [tuple(np.asarray(a, dtype=np.float64) for a in runner.run(x)) for x in inputs]  # type: ignore[misc]


def _parity(ref, got) -> tuple[float, float, float]:
    """Max |Δprob|; max |Δmap| over each film's peak map value; max |Δfeature| over the largest feature."""
    dp = dm = df = 0.0
    for (p0, c0, f0), (p1, c1, f1) in zip(ref, got):
        dp = max(dp, float(np.abs(p1 - p0).max()))
        dm = max(dm, float(np.abs(c1 - c0).max()) / max(float(np.abs(c0).max()), 1e-12))
        df = max(df, float(np.abs(f1 - f0).max()) / max(float(np.abs(f0).max()), 1e-12))
    return dp, dm, df


def measure(path: Path, info: ModelInfo, cands: Candidates, machine: Machine,
            rounds: int = TIMING_ROUNDS) -> Choice:
    """Check and time every candidate (module docstring); the choice, with every trial."""
    inputs, which = calibration_inputs(info)
    t_start = time.perf_counter()
    ref_runner = OrtRunner(weights_for(path, cands.reference), device="cpu", threads=1, precision=cands.reference.precision)
    reference = _outputs(ref_runner, inputs)
    runners: dict[Engine, Runner] = {}
    trials: dict[Engine, Trial] = {}
    for engine in cands.engines:
        name = str(engine)
        try:
            runner = ref_runner if engine == cands.reference else open_runner(weights_for(path, engine), engine, threads=1)
            dp, dm, df = _parity(reference, _outputs(runner, inputs))
        except (ModelError, RuntimeError, ValueError) as exc:  # a runtime that cannot run this graph
            trials[engine] = Trial(name, None, None, None, None, False, f"cannot run: {str(exc).strip()[:120]}")
            continue
        limit = MAX_PROB_DELTA_FP32 if engine.precision == "fp32" else MAX_PROB_DELTA
        ok = dp <= limit and dm <= MAX_MAP_DELTA
        trials[engine] = Trial(name, None, dp, dm, df, ok)
        if ok:
            runners[engine] = runner
    times: dict[Engine, list[float]] = {e: [] for e in runners}
    streams = _streams()
    films = [inputs[i % len(inputs)] for i in range(streams)]
    with ThreadPoolExecutor(streams) as pool:
        for _ in range(rounds):
            for engine, runner in runners.items():
                t0 = time.perf_counter()
                list(pool.map(runner.run, films))
                times[engine].append(1000 * (time.perf_counter() - t0) / streams)
    for engine, ts in times.items():
        t = trials[engine]
        trials[engine] = Trial(t.engine, statistics.median(ts), t.max_prob_delta, t.max_map_delta,
                               t.max_feature_delta, t.passed, t.note)
    if not runners:  # not even the reference ran: nothing to choose
        raise ModelError(f"{path.name} could not be run on any engine here; check the file with `cxrviewer info`.")
    ref_ms = trials[cands.reference].ms_per_film if cands.reference in runners else None
    eligible = [e for e in runners if e == cands.reference or ref_ms is None
                or trials[e].ms_per_film * MIN_GAIN <= ref_ms]  # type: ignore[operator]
    fastest = min(trials[e].ms_per_film for e in eligible)  # type: ignore[type-var]
    order = [e for e in PREFERENCE if e in eligible]
    best = next(e for e in order if trials[e].ms_per_film <= fastest * (1 + TIE))  # type: ignore[operator]
    bt = trials[best]
    if best == cands.reference:
        reason = (f"no engine that keeps parity is {MIN_GAIN:g}x as fast as the reference ({bt.ms_per_film:.0f} ms a film, "
                  f"{_streams()} one-thread runs side by side), measured on {which} films")
    else:
        speedup = f", ×{ref_ms / bt.ms_per_film:.2f} the reference's {ref_ms:.0f} ms" if ref_ms else ""
        reason = (f"the fastest that keeps parity with {cands.reference}: {bt.ms_per_film:.0f} ms a film "
                  f"({_streams()} one-thread runs side by side){speedup}; probabilities within {bt.max_prob_delta:.1e}, maps within "
                  f"{100 * (bt.max_map_delta or 0):.2g}% of their peak, on {which} films")
    logger.info("engine for %s: %s (%s; %.1f s to measure)", path.name, best, reason, time.perf_counter() - t_start)
    ordered = tuple(trials[e] for e in PREFERENCE if e in trials)
    return Choice(engine=best, reason=reason, trials=ordered, excluded=cands.excluded, how="measured",
                  films=len(inputs), machine=machine.describe(),
                  measured_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))


def _streams() -> int:
    return max(1, min(os.cpu_count() or 1, TIMING_STREAMS))


# ----------------------------------------------------------------------------- choosing
def read_info(path: Path, backend_hint: str | None = None) -> ModelInfo:
    """The model's metadata, read without compiling it where OpenVINO can (it reads ONNX files)."""
    machine = this_machine()
    if machine.openvino is not None and backend_hint != "onnxruntime":
        from .runners import openvino_core

        try:
            model = openvino_core().read_model(str(path))
        except Exception:  # noqa: BLE001 - let ONNX Runtime say what is wrong with the file
            pass
        else:
            return contract.from_metadata(ov_model_metadata(model), source=path.name)
    runner = OrtRunner(path, device="cpu", threads=1)
    return contract.from_metadata(runner.metadata(), source=path.name)


def _int8_copy(path: Path, info: ModelInfo) -> tuple[bool, str | None]:
    """Whether an int8 copy of this model sits beside it (and, if one is there but unusable, why not)."""
    copy = int8_copy_path(path)
    if info.precision == "int8" or not copy.is_file():
        return False, None
    try:
        c = read_info(copy)
    except ModelError as exc:
        return False, f"{copy.name} is not usable ({exc})"
    same = (c.precision == "int8" and c.labels == info.labels and c.model_version == info.model_version
            and c.input_size == info.input_size and c.mean == info.mean and c.std == info.std)
    return (True, None) if same else (False, f"{copy.name} is not an int8 copy of this model (its metadata differ)")


def choose(path: Path, *, device: str = "auto", backend: str = "auto", precision: str = "auto",
           use_cache: bool = True) -> Choice:
    """The engine to run ``path`` on: measured (module docstring) where ``auto`` leaves a choice,
    cached per model file and machine."""
    machine = this_machine()
    int8_copy = int8_copy_path(path)
    key_fields = {"version": CHOICE_VERSION, "model": file_hash(path),
                  "int8_copy": file_hash(int8_copy) if int8_copy.is_file() else None,
                  "machine": machine.key(), "asked": [device, backend, precision]}
    key = hashlib.sha256(json.dumps(key_fields, sort_keys=True).encode()).hexdigest()
    store = cache_dir() / CACHE_FILE
    if use_cache:
        entry = _read_cache(store).get(key)
        cached = _from_entry(entry) if isinstance(entry, dict) else None
        if cached is not None:
            return cached
        if entry is not None:
            logger.warning("ignoring a malformed entry in %s; measuring again", store)
    info = read_info(path)
    has_copy, copy_problem = _int8_copy(path, info)
    cands = candidates(machine, device=device, backend=backend, precision=precision, file_precision=info.precision,
                       int8_copy=has_copy, forbidden=info.forbid_precisions)
    if copy_problem:
        cands = Candidates(cands.engines, cands.reference, cands.excluded + (("int8 copy", copy_problem),))
    if len(cands.engines) == 1:
        only = cands.engines[0]
        return Choice(engine=only, reason=_only_reason(only, cands), excluded=cands.excluded, how="given",
                      machine=machine.describe())
    logger.info("measuring which engine runs %s fastest on this machine (once per model file and machine)", path.name)
    choice = measure(path, info, cands, machine)
    if use_cache:
        _write_cache(store, key, _entry(choice))
    return choice


def _only_reason(engine: Engine, cands: Candidates) -> str:
    if engine.device == "cuda":
        return "a CUDA GPU: the model runs there (no CPU combination is measured against it)"
    if not cands.excluded:
        return "the combination asked for"
    return "the only combination available here (the others are listed below)"
