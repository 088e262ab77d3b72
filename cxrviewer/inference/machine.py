"""What this machine can run, and which engines ``auto`` tries on it: a pure decision.

:func:`this_machine` reads the CPU's model name and instruction-set flags (``/proc/cpuinfo`` on
Linux; elsewhere the flags are unknown and OpenVINO's own report decides), OpenVINO's
``OPTIMIZATION_CAPABILITIES`` of the CPU (its public device property: ``BF16``, ``INT8``, ...), the
versions of the runtimes and whether ONNX Runtime has a working CUDA build.
:func:`candidates` turns that, the model's own precision, its int8 copy and the precisions it
forbids (``cxr.forbid_precisions``) into the engines to try, with a reason for each one left out;
tests call it with made-up machines.
"""

from __future__ import annotations

import functools
import os
import platform
from collections.abc import Collection
from dataclasses import dataclass, field

from ..errors import EngineError
from .runners import CUDA, ONNXRUNTIME, OPENVINO, Engine, openvino_module, ort

#: The flags that matter here: AMX (bf16/int8 tiles), AVX-512 BF16 and VNNI (int8 dot products).
RELEVANT_FLAGS = ("amx_tile", "amx_bf16", "amx_int8", "avx512_bf16", "avx512_vnni", "avx_vnni", "avx512f", "avx2")
BF16_FLAGS = ("amx_bf16", "avx512_bf16")

#: The order in which equally fast engines are preferred: the most exact first.
PREFERENCE = (
    Engine(ONNXRUNTIME, "cpu", "fp32"),
    Engine(OPENVINO, "cpu", "fp32"),
    Engine(OPENVINO, "cpu", "bf16"),
    Engine(OPENVINO, "cpu", "int8"),
    Engine(ONNXRUNTIME, "cpu", "int8"),
)


@dataclass(frozen=True)
class Machine:
    """The facts the choice depends on; a cached choice is valid only on the same ones."""

    cpu: str
    #: ``/proc/cpuinfo`` flags among :data:`RELEVANT_FLAGS`; None where they cannot be read
    flags: frozenset[str] | None
    cores: int
    onnxruntime: str
    #: the ``openvino`` package's version; None when it is not installed
    openvino: str | None = None
    #: OpenVINO's OPTIMIZATION_CAPABILITIES of the CPU (``BF16``, ``INT8``, ``FP32``, ...)
    openvino_caps: frozenset[str] = field(default_factory=frozenset)
    cuda: bool = False

    def key(self) -> dict:
        """What identifies the machine in the cache."""
        return {"cpu": self.cpu, "flags": sorted(self.flags) if self.flags is not None else None,
                "cores": self.cores, "onnxruntime": self.onnxruntime, "openvino": self.openvino,
                "openvino_caps": sorted(self.openvino_caps), "cuda": self.cuda}

    def describe(self) -> str:
        flags = "unknown" if self.flags is None else (" ".join(sorted(self.flags)) or "none of " + " ".join(RELEVANT_FLAGS))
        ov = f"OpenVINO {self.openvino} (CPU capabilities {' '.join(sorted(self.openvino_caps)) or 'none'})" \
            if self.openvino else "OpenVINO not installed"
        return f"{self.cpu}, {self.cores} cores; flags: {flags}; ONNX Runtime {self.onnxruntime}; {ov}"

    @property
    def bf16(self) -> bool:
        """bf16 in hardware: OpenVINO says so and, where the flags can be read, the CPU has them
        (OpenVINO would otherwise quietly run f32, or emulate)."""
        has_flag = self.flags is None or any(f in self.flags for f in BF16_FLAGS)
        return "BF16" in self.openvino_caps and has_flag


def cpu_info() -> tuple[str, frozenset[str] | None]:
    """The CPU's model name and its relevant flags (None where ``/proc/cpuinfo`` is absent)."""
    name, flags = "", None
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not name:
                    name = value.strip()
                elif key == "flags" and flags is None:
                    flags = frozenset(value.split()) & frozenset(RELEVANT_FLAGS)
                if name and flags is not None:
                    break
    except OSError:
        pass
    return name or platform.processor() or platform.machine(), flags


@functools.lru_cache(maxsize=1)
def this_machine() -> Machine:
    """This machine (read once a process)."""
    cpu, flags = cpu_info()
    rt = ort()
    ov = openvino_module()
    caps: frozenset[str] = frozenset()
    version = None
    if ov is not None:
        from .runners import openvino_core

        version = ov.get_version().split("-")[0] if hasattr(ov, "get_version") else getattr(ov, "__version__", "?")
        try:
            caps = frozenset(str(c) for c in openvino_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
        except Exception:  # noqa: BLE001 - no CPU plugin: OpenVINO cannot run here
            version = None
    return Machine(cpu=cpu, flags=flags, cores=os.cpu_count() or 1, onnxruntime=rt.__version__,
                   openvino=version, openvino_caps=caps, cuda=CUDA in rt.get_available_providers())


@dataclass(frozen=True)
class Candidates:
    """The engines ``auto`` tries (most exact first), the reference they are checked against,
    and a reason for each combination left out (``"OpenVINO CPU bf16": "the CPU has no ..."``)."""

    engines: tuple[Engine, ...]
    reference: Engine
    excluded: tuple[tuple[str, str], ...]


def candidates(machine: Machine, *, device: str = "auto", backend: str = "auto", precision: str = "auto",
               file_precision: str = "fp32", int8_copy: bool = False,
               forbidden: Collection[str] = ()) -> Candidates:
    """The engines to try for a model on ``machine`` under the user's ``device``, ``backend`` and
    ``precision`` (each ``auto`` or fixed).

    ``file_precision`` is the model file's ``cxr.precision``: an int8 file runs as int8 only. An
    fp32 file can run at int8 when ``int8_copy`` (its int8 copy sits beside it). ``forbidden``:
    the precisions the model's metadata forbids. A fixed choice that cannot be met raises a
    :class:`EngineError` saying why; ``auto`` just leaves such combinations out, with the reason.
    """
    excluded: list[tuple[str, str]] = []
    reference = Engine(ONNXRUNTIME, "cpu", "int8" if file_precision == "int8" else "fp32")

    def why_not(engine: Engine) -> str | None:
        if engine.backend == OPENVINO and machine.openvino is None:
            return "OpenVINO is not installed (pip install 'cxrviewer[openvino]')"
        if engine.precision in forbidden:
            return f"the model forbids {engine.precision} (cxr.forbid_precisions)"
        if file_precision == "int8" and engine.precision != "int8":
            return "the model file is an int8 copy: it runs as int8 only (load the fp32 file for fp32 or bf16)"
        if engine.precision == "int8" and file_precision != "int8" and not int8_copy:
            return "the model has no int8 copy beside it (cxr-train export makes one: docs/training.md, int8)"
        if engine.precision == "bf16" and engine.backend != OPENVINO:
            return "bf16 runs on OpenVINO only"
        if engine.precision == "bf16" and not machine.bf16:
            return "this CPU has no bf16 instructions (AMX or AVX-512 BF16)"
        if engine.backend == OPENVINO and engine.precision == "int8" and "INT8" not in machine.openvino_caps:
            return "OpenVINO reports no INT8 support on this CPU"
        return None

    if device == "cuda" or (device == "auto" and machine.cuda and backend in ("auto", ONNXRUNTIME)):
        if backend == OPENVINO:
            raise EngineError("OpenVINO runs on the CPU here: choose the device cpu, or the onnxruntime backend.")
        if device == "cuda" and not machine.cuda:
            raise EngineError("CUDA was requested but this ONNX Runtime has no CUDA support: install the GPU "
                             "build with `pip uninstall onnxruntime && pip install 'cxrviewer[gpu]'`.")
        p = file_precision if precision == "auto" else precision
        if p not in ("fp32", "int8") or (p != file_precision and not (p == "int8" and int8_copy)):
            raise EngineError(f"The precision {precision} cannot run on CUDA with this model: choose fp32 there "
                              "(or the device cpu).")
        # a GPU outruns every CPU combination: no measurement (bench/RESULTS.md)
        return Candidates((Engine(ONNXRUNTIME, "cuda", p),), reference, ())

    engines: list[Engine] = []
    tried = list(PREFERENCE)
    if backend != "auto" and precision != "auto" and Engine(backend, "cpu", precision) not in tried:
        tried.append(Engine(backend, "cpu", precision))  # e.g. ONNX Runtime bf16: say why not
    for engine in tried:
        if backend not in ("auto", engine.backend) or precision not in ("auto", engine.precision):
            continue
        reason = why_not(engine)
        if reason is None:
            engines.append(engine)
        else:
            excluded.append((str(engine), reason))
    if not engines:
        asked = ", ".join(f"{k} {v}" for k, v in (("backend", backend), ("precision", precision)) if v != "auto")
        reasons = "; ".join(f"{name}: {reason}" for name, reason in excluded) or "no such combination"
        raise EngineError(f"This model cannot run with {asked or 'these options'} here ({reasons}). "
                          "Choose another precision or backend, or auto.")
    return Candidates(tuple(engines), reference, tuple(excluded))
