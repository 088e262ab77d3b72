"""One interface over the runtimes that can run a contract model: ONNX Runtime and OpenVINO.

A :class:`Runner` opens one model file on one :class:`Engine` (backend, device, precision) and
gives, for a preprocessed batch, the three contract outputs **fetched by name from one run**
(``probs``, ``cams``, ``features``; docs/model-format.md), so the out-of-distribution features and
the Grad-CAM maps always come from the same forward pass as the probabilities, on every backend.
It also reports the file's ``metadata_props`` and its input and output signature, which
:class:`cxrviewer.model.Classifier` checks against the contract.

Precisions: ``fp32`` runs an fp32 file as it is; ``bf16`` runs an fp32 file with OpenVINO's
``INFERENCE_PRECISION_HINT=bf16`` (AMX or AVX-512 BF16 instructions); ``int8`` runs an int8 copy
(``cxr.precision = "int8"``, ``cxr-train export --int8``), whose quantized convolutions use
VNNI/AMX where the CPU has them. OpenVINO is the direct runtime (the ``openvino`` package, the
``openvino`` extra), not ONNX Runtime's OpenVINO execution provider: bench/RESULTS.md, seventh
session, has the comparison.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .. import contract
from ..errors import EngineError, ModelError

logger = logging.getLogger(__name__)

ONNXRUNTIME = "onnxruntime"
OPENVINO = "openvino"
#: The runtimes a model can run on.
BACKENDS = (ONNXRUNTIME, OPENVINO)
#: Where: ``cuda`` only with ONNX Runtime's CUDA build.
DEVICES = ("cpu", "cuda")
#: How precisely: see the module docstring.
PRECISIONS = ("fp32", "bf16", "int8")

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"

_NAMES = {ONNXRUNTIME: "ONNX Runtime", OPENVINO: "OpenVINO"}


@dataclass(frozen=True)
class Engine:
    """What runs a model: a backend on a device at a precision. Picklable: the node's worker
    processes and Ray's actors get the driver's engine, so every film is scored the same way."""

    backend: str = ONNXRUNTIME
    device: str = "cpu"
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS or self.device not in DEVICES or self.precision not in PRECISIONS:
            raise ValueError(f"not an engine: {self.backend}/{self.device}/{self.precision}")

    def __str__(self) -> str:
        return f"{_NAMES[self.backend]} {self.device.upper()} {self.precision}"


@dataclass(frozen=True)
class TensorSpec:
    """An input or output as the runtime declares it; a dimension it leaves free is ``None``."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str  # numpy's name: "float32"


class Runner(Protocol):
    """A model file opened on an engine."""

    engine: Engine
    #: the model file it runs
    path: Path
    #: What the app shows as "running on": ONNX Runtime's provider name, or ``OpenVINO CPU``.
    provider: str

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``probs`` (N, C), ``cams`` (N, h, w, C) and ``features`` (N, K) of one forward pass."""

    def metadata(self) -> dict[str, str]: ...

    def inputs(self) -> list[TensorSpec]: ...

    def outputs(self) -> list[TensorSpec]: ...


# ----------------------------------------------------------------------------- ONNX Runtime
def ort():
    try:
        import onnxruntime
    except ImportError as exc:  # pragma: no cover - a broken install
        raise ModelError(
            "ONNX Runtime is not installed: run `pip install onnxruntime` "
            "(or `pip install 'cxrviewer[gpu]'` for NVIDIA GPUs)."
        ) from exc
    return onnxruntime


def choose_providers(device: str = "auto") -> list[str]:
    """Execution providers to ask for: CUDA then CPU when a CUDA build is installed.

    ``device`` is ``auto``, ``cpu`` or ``cuda``. With the pip CUDA wheels the CUDA libraries
    must be preloaded or the provider cannot find them; a session asked for CUDA on a
    machine without a working GPU silently falls back to CPU, which is why callers read
    the session's providers (``session.get_providers()``), never this list.
    """
    rt = ort()
    if device == "cpu":
        return [CPU]
    available = rt.get_available_providers()
    if CUDA not in available:
        if device == "cuda":
            raise ModelError(
                "CUDA was requested but this ONNX Runtime has no CUDA support: install the GPU "
                "build with `pip uninstall onnxruntime && pip install 'cxrviewer[gpu]'`."
            )
        return [CPU]
    preload = getattr(rt, "preload_dlls", None)
    if preload is not None:
        try:
            preload()
        except Exception as exc:  # noqa: BLE001 - preload is best effort; the session reports
            logger.warning("could not preload CUDA libraries: %s", exc)
    return [CUDA, CPU]


_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64"}


def _unreadable(path: Path, exc: BaseException) -> ModelError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ModelError(
        f"{path.name} is not a readable ONNX model ({first[:200]}). "
        "The file may be truncated or not an .onnx file: export it again."
    )


class OrtRunner:
    """An ONNX Runtime session (thread-safe: sessions may be run from several threads)."""

    def __init__(self, path: Path, device: str = "auto", threads: int = 0, precision: str = "fp32") -> None:
        rt = ort()
        #: the file this runs
        self.path = Path(path)
        opts = rt.SessionOptions()
        opts.graph_optimization_level = rt.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = int(threads)
        opts.log_severity_level = 3
        providers = choose_providers(device)
        try:
            #: the ONNX Runtime session itself (training's export checks read it)
            self.session = rt.InferenceSession(str(path), sess_options=opts, providers=providers)
        except Exception as exc:  # noqa: BLE001 - ORT raises its own types for corrupt files
            raise _unreadable(path, exc) from None
        self.provider: str = self.session.get_providers()[0]
        self.engine = Engine(ONNXRUNTIME, "cuda" if self.provider == CUDA else "cpu", precision)
        self._names = list(contract.OUTPUT_NAMES)

    def run(self, batch: np.ndarray):
        probs, cams, features = self.session.run(self._names, {contract.INPUT_NAME: batch})
        return probs, cams, features

    def metadata(self) -> dict[str, str]:
        return dict(self.session.get_modelmeta().custom_metadata_map)

    def inputs(self) -> list[TensorSpec]:
        return [_ort_spec(i) for i in self.session.get_inputs()]

    def outputs(self) -> list[TensorSpec]:
        return [_ort_spec(o) for o in self.session.get_outputs()]


def _ort_spec(arg) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) else None for d in arg.shape)
    return TensorSpec(arg.name, shape, _ORT_TYPES.get(arg.type, arg.type))


# ----------------------------------------------------------------------------- OpenVINO
_core = None
_core_lock = threading.Lock()


def openvino_module():
    """The ``openvino`` package, or None when it is not installed (the ``openvino`` extra)."""
    try:
        import openvino
    except ImportError:
        return None
    except Exception as exc:  # noqa: BLE001 - a broken install (a library missing): run without it
        logger.warning("OpenVINO is installed but cannot be loaded (%s); using ONNX Runtime only", exc)
        return None
    return openvino


def openvino_core():
    """The process's one ``openvino.Core`` (thread-safe; it caches device plugins)."""
    global _core
    ov = openvino_module()
    if ov is None:
        raise EngineError("OpenVINO is not installed: run `pip install 'cxrviewer[openvino]'`, "
                         "or choose the onnxruntime backend.")
    with _core_lock:
        if _core is None:
            _core = ov.Core()
        return _core


#: OpenVINO's name for each precision hint (int8: the int8 file's float parts stay f32).
_OV_HINT = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}


class OpenVinoRunner:
    """An OpenVINO compiled model on the CPU, read straight from the ONNX file.

    Thread-safe as ONNX Runtime's sessions are: a run takes an idle infer request from the
    runner's pool (a new one when every request is busy) and gives it back after, so no request
    is used by two threads at once, and the outputs are copied out of the request's buffers,
    which its next run overwrites. The requests belong to the runner, not to threads: one kept in
    a thread's local storage would be destroyed when the thread's Python state is, and a Qt pool
    thread deletes that state after each task (PySide6's GIL release), which crashed the app.
    """

    def __init__(self, path: Path, threads: int = 0, precision: str = "fp32") -> None:
        core = openvino_core()
        self.path = Path(path)
        try:
            self._model = core.read_model(str(path))
        except Exception as exc:  # noqa: BLE001 - OpenVINO raises RuntimeError subclasses for bad files
            raise _unreadable(path, exc) from None
        config: dict[str, object] = {
            "INFERENCE_PRECISION_HINT": _OV_HINT[precision],
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
        }
        if threads > 0:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        if threads == 1:
            # one-thread models run side by side, one per core (the batch path's workers): left
            # to itself each would pin its one thread, all to the same core
            config["ENABLE_CPU_PINNING"] = False
        try:
            self._compiled = core.compile_model(self._model, "CPU", config)
        except Exception as exc:  # noqa: BLE001
            raise EngineError(f"OpenVINO cannot compile {path.name} ({str(exc).strip()[:200]}); "
                             "choose the onnxruntime backend.") from None
        self.engine = Engine(OPENVINO, "cpu", precision)
        self.provider = "OpenVINO CPU"
        self._idle: list = []
        self._idle_lock = threading.Lock()
        self._names = list(contract.OUTPUT_NAMES)

    def run(self, batch: np.ndarray):
        with self._idle_lock:
            req = self._idle.pop() if self._idle else None
        if req is None:
            req = self._compiled.create_infer_request()
        try:
            req.infer({contract.INPUT_NAME: batch})
            probs, cams, features = (np.array(req.get_tensor(name).data, copy=True) for name in self._names)
        finally:
            with self._idle_lock:
                self._idle.append(req)
        return probs, cams, features

    def metadata(self) -> dict[str, str]:
        return ov_model_metadata(self._model)

    def inputs(self) -> list[TensorSpec]:
        return [_ov_spec(p) for p in self._model.inputs]

    def outputs(self) -> list[TensorSpec]:
        return [_ov_spec(p) for p in self._model.outputs]


def ov_model_metadata(model) -> dict[str, str]:
    """An OpenVINO model's ONNX ``metadata_props``: its reader keeps them under the ``framework``
    runtime info."""
    info = model.get_rt_info()
    if "framework" not in info:
        return {}
    raw = info["framework"]
    items = raw.items() if hasattr(raw, "items") else raw.astype(dict).items()
    return {str(k): (v.astype(str) if hasattr(v, "astype") else str(v)) for k, v in items}


def _ov_spec(port) -> TensorSpec:
    shape = tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())
    dtype = port.get_element_type().to_dtype().name
    return TensorSpec(port.get_any_name(), shape, dtype)


def open_runner(path: Path, engine: Engine, threads: int = 0, device: str | None = None) -> Runner:
    """``path`` opened on ``engine`` with ``threads`` intra-op threads (0: the runtime's default,
    one per core). ``device`` overrides the engine's for ONNX Runtime (``auto``: CUDA when it works)."""
    if engine.backend == OPENVINO:
        return OpenVinoRunner(path, threads=threads, precision=engine.precision)
    return OrtRunner(path, device=device or engine.device, threads=threads, precision=engine.precision)
