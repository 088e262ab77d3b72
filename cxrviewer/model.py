"""``Classifier``: an ONNX Runtime session over a model file that honours the contract.

``Classifier.load(path)`` validates the file (docs/model-format.md) and raises one
:class:`~cxrviewer.errors.ModelError` naming what is wrong; ``predict(films)`` preprocesses,
runs one batched forward pass and returns a :class:`~cxrviewer.types.Prediction` per film
with probabilities and every class's Grad-CAM map from the same pass.

Outputs are checked before they become a prediction: a model that gives NaN or infinite
numbers (a broken export, an overflowing layer) would otherwise put ``nan`` in a results file
as if it were a finding, and switch the out-of-distribution guard off for that film (NaN never
exceeds a threshold). At load the model is run once on a plain test film and refused if that
already fails; later, a film for which it fails gets a
:class:`~cxrviewer.errors.ModelOutputError` instead of a prediction.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import contract
from .errors import ModelError, ModelOutputError
from .ood import OodModel
from .preprocess import preprocess_batch
from .types import Film, ModelInfo, Prediction

logger = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
#: What ``device`` may be (:func:`choose_providers`).
DEVICES = ("auto", "cpu", "cuda")


#: How far a probability may stray outside [0, 1]: a float32 sigmoid never does, but a
#: quantized model's dequantized output may land an ulp or so beyond 1 (1.2e-7 there).
PROB_SLACK = 1e-5


@dataclass(frozen=True, eq=False)
class RawOutputs:
    """One forward pass: probs (N, C), cams (N, C, h, w), features (N, K)."""

    probs: np.ndarray
    cams: np.ndarray
    features: np.ndarray

    def problems(self) -> list[str | None]:
        """For each film, what is wrong with its numbers (None when nothing is).

        Probabilities must be finite and in [0, 1] (the contract's sigmoid outputs), to within
        :data:`PROB_SLACK`; class maps and features finite.
        """
        n = self.probs.shape[0]
        probs = self.probs.reshape(n, -1)
        bad = {
            "probabilities": ~np.isfinite(probs).all(axis=1),
            "probabilities outside 0..1": ~((probs >= -PROB_SLACK) & (probs <= 1.0 + PROB_SLACK)).all(axis=1),
            "heatmaps": ~np.isfinite(self.cams.reshape(n, -1)).all(axis=1),
            "features": ~np.isfinite(self.features.reshape(n, -1)).all(axis=1),
        }
        if bad["probabilities"].any():  # NaN is also "outside 0..1": say it once
            bad["probabilities outside 0..1"] &= ~bad["probabilities"]
        out: list[str | None] = []
        for i in range(n):
            what = [name for name, flags in bad.items() if flags[i]]
            out.append(None if not what else _describe(what))
        return out


def _describe(what: list[str]) -> str:
    finite = [w for w in what if "outside" not in w]
    parts = [f"NaN or infinite {', '.join(finite)}"] if finite else []
    parts += [w for w in what if "outside" in w]
    return "; ".join(parts)


def probe_film(size: int) -> Film:
    """The plain film a model is run on once at load (:meth:`Classifier.load`): a smooth grey
    ramp from 0.2 to 0.8 along the diagonal, mean 0.5, nothing a real film would not have."""
    ramp = np.linspace(0.2, 0.8, 2 * size - 1, dtype=np.float32)
    yy, xx = np.indices((size, size))
    return Film(ramp[yy + xx], metadata={"format": "probe"})


def _ort():
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
    :attr:`Classifier.provider` (``session.get_providers()``), never this list.
    """
    ort = _ort()
    if device == "cpu":
        return [CPU]
    available = ort.get_available_providers()
    if CUDA not in available:
        if device == "cuda":
            raise ModelError(
                "CUDA was requested but this ONNX Runtime has no CUDA support: install the GPU "
                "build with `pip uninstall onnxruntime && pip install 'cxrviewer[gpu]'`."
            )
        return [CPU]
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        try:
            preload()
        except Exception as exc:  # noqa: BLE001 - preload is best effort; the session reports
            logger.warning("could not preload CUDA libraries: %s", exc)
    return [CUDA, CPU]


class Classifier:
    """A loaded model. Thread-safe: ONNX Runtime sessions may be run from several threads."""

    def __init__(self, session, info: ModelInfo, path: Path, threads: int = 0) -> None:
        self._session = session
        self.info = info
        self.path = path
        self.threads = int(threads)
        self.provider: str = session.get_providers()[0]
        self._ood = OodModel(info.ood) if info.ood is not None else None
        self._throughput: Classifier | None = None
        self._lock = threading.Lock()

    @property
    def session(self):
        """The ONNX Runtime ``InferenceSession`` that runs the model: for callers that need its
        raw outputs or types (training compares an export with Keras through it)."""
        return self._session

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(
        cls, path: str | os.PathLike[str], device: str = "auto", threads: int = 0, check_outputs: bool = True
    ) -> "Classifier":
        """Open and validate a model file.

        ``threads`` sets ONNX Runtime's intra-op threads (0 = one per core, its default).
        ``check_outputs``: run the model once on :func:`probe_film` and refuse it when its outputs
        are not valid numbers: one forward pass of one film (its cost: bench/RESULTS.md).
        Skipped only for a second session over a file already checked.
        """
        ort = _ort()
        p = Path(path)
        if not p.is_file():
            raise ModelError(f"Model file not found: {p}. Choose an exported .onnx model file.")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = int(threads)
        opts.log_severity_level = 3
        providers = choose_providers(device)
        try:
            session = ort.InferenceSession(str(p), sess_options=opts, providers=providers)
        except Exception as exc:  # noqa: BLE001 - ORT raises its own types for corrupt files
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(
                f"{p.name} is not a readable ONNX model ({first[:200]}). "
                "The file may be truncated or not an .onnx file: export it again."
            ) from None
        meta = session.get_modelmeta().custom_metadata_map
        info = contract.from_metadata(meta, source=p.name)
        _check_signature(session, info, p.name)
        clf = cls(session, info, p, threads=int(threads))
        if check_outputs:
            clf._check_outputs()
        logger.info(
            "loaded model %s (version %s, %d labels, %d px) on %s",
            p.name, info.model_version, info.num_classes, info.input_size, clf.provider,
        )
        return clf

    def for_throughput(self) -> "Classifier":
        """This model set up to score many films side by side (the batch path).

        On CPU: the same model file in a second session with one intra-op thread, made once and
        kept, so that the batch path runs one film per core at once rather than one film on all
        cores: no core then waits at a synchronisation point while a worker decodes, so decoding
        overlaps inference (measured: bench/RESULTS.md, (c1) vs (c2)). A classifier already on
        one thread, or on a GPU, is returned as it is.
        """
        if self.provider != CPU or self.threads == 1 or (os.cpu_count() or 1) == 1:
            return self
        with self._lock:
            if self._throughput is None:
                self._throughput = Classifier.load(self.path, device="cpu", threads=1, check_outputs=False)
            return self._throughput

    def _check_outputs(self) -> None:
        """Refuse a model whose outputs on a plain film are not valid numbers."""
        raw = self.run(preprocess_batch([probe_film(self.info.input_size)], self.info))
        problem = raw.problems()[0]
        if problem is None and self._ood is not None and not np.isfinite(self._ood.scores(raw.features)).all():
            problem = "an infinite out-of-distribution score"
        if problem is not None:
            raise ModelError(
                f"{self.path.name} produced invalid numbers ({problem}) on a plain test film, so none "
                "of its results could be trusted. Choose another model file (export the model again, "
                "or use the bundled demo model)."
            )

    # ---------------------------------------------------------------- inference
    @property
    def model_id(self) -> str:
        return f"{self.path.stem} {self.info.model_version}"

    def run(self, batch: np.ndarray) -> RawOutputs:
        """One forward pass on a preprocessed (N, S, S, 3) float32 batch."""
        x = np.ascontiguousarray(batch, dtype=np.float32)
        probs, cams, features = self._session.run(
            list(contract.OUTPUT_NAMES), {contract.INPUT_NAME: x}
        )
        # cams come NHWC (N, h, w, C) from the graph; the app indexes by class first.
        return RawOutputs(probs=probs, cams=np.transpose(cams, (0, 3, 1, 2)), features=features)

    def outcomes(self, raw: RawOutputs) -> list[Prediction | ModelOutputError]:
        """A forward pass's outputs as one :class:`Prediction` per film, or, for a film whose
        numbers are invalid (:meth:`RawOutputs.problems`), the :class:`ModelOutputError` saying so."""
        info = self.info
        thresholds = tuple(info.thresholds[label] for label in info.labels)
        problems = raw.problems()
        scores = self._ood.scores(raw.features) if self._ood is not None else None
        out: list[Prediction | ModelOutputError] = []
        for i, problem in enumerate(problems):
            score = float(scores[i]) if scores is not None else None
            if problem is None and score is not None and not np.isfinite(score):
                problem = "an infinite out-of-distribution score"
            if problem is not None:
                out.append(ModelOutputError(
                    f"The model {self.path.name} produced invalid numbers ({problem}) for this film, "
                    "so it has no findings for it. Try another model file."
                ))
                continue
            out.append(
                Prediction(
                    labels=info.labels,
                    probabilities=raw.probs[i],
                    class_maps=raw.cams[i],
                    thresholds=thresholds,
                    model_version=info.model_version,
                    features=raw.features[i],
                    ood_score=score,
                    ood_flag=bool(score is not None and score > self._ood.threshold),
                    crop=info.crop,
                )
            )
        return out

    def predictions(self, raw: RawOutputs) -> list[Prediction]:
        """Wrap a forward pass's outputs as one :class:`Prediction` per film; raises the
        :class:`ModelOutputError` of the first film whose numbers are invalid."""
        out = self.outcomes(raw)
        for item in out:
            if isinstance(item, ModelOutputError):
                raise item
        return out  # type: ignore[return-value]

    def predict(self, films: Sequence[Film], batch_size: int = 8) -> list[Prediction]:
        """Predictions for ``films``, run in batches of ``batch_size``."""
        out: list[Prediction] = []
        for start in range(0, len(films), max(1, batch_size)):
            chunk = films[start : start + batch_size]
            out.extend(self.predictions(self.run(preprocess_batch(chunk, self.info))))
        return out

    def predict_one(self, film: Film) -> Prediction:
        return self.predict([film])[0]


def _check_signature(session, info: ModelInfo, name: str) -> None:
    """Inputs and outputs must match the contract and the metadata."""
    problems: list[str] = []
    inputs = session.get_inputs()
    s, c = info.input_size, info.num_classes
    if len(inputs) != 1 or inputs[0].name != contract.INPUT_NAME:
        problems.append(
            f"it must have one input named {contract.INPUT_NAME!r}, has {[i.name for i in inputs]}"
        )
    else:
        shape = inputs[0].shape
        if len(shape) != 4 or list(shape[1:]) != [s, s, 3]:
            problems.append(f"input {contract.INPUT_NAME!r} must be [N, {s}, {s}, 3], is {shape}")
        if inputs[0].type != "tensor(float)":
            problems.append(f"input must be float32, is {inputs[0].type}")
    outputs = {o.name: o for o in session.get_outputs()}
    for name_ in contract.OUTPUT_NAMES:
        if name_ not in outputs:
            problems.append(f"output {name_!r} is missing (has {sorted(outputs)})")
    if contract.PROBS in outputs:
        shape = outputs[contract.PROBS].shape
        if len(shape) != 2 or (isinstance(shape[1], int) and shape[1] != c):
            problems.append(f"output 'probs' must be [N, {c}], is {shape}")
    if contract.CAMS in outputs:
        shape = outputs[contract.CAMS].shape
        if len(shape) != 4 or (isinstance(shape[3], int) and shape[3] != c):
            problems.append(f"output 'cams' must be [N, h, w, {c}], is {shape}")
    if problems:
        raise ModelError(
            f"{name} does not honour the cxrviewer model contract: {'; '.join(problems)}. "
            "Export it with `cxr-train export`; see docs/model-format.md."
        )
