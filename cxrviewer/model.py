"""``Classifier``: a model file that honours the contract, on ONNX Runtime or OpenVINO.

``Classifier.load(path)`` validates the file (docs/model-format.md) and raises one
:class:`~cxrviewer.errors.ModelError` naming what is wrong; ``predict(films)`` preprocesses,
runs one batched forward pass and returns a :class:`~cxrviewer.types.Prediction` per film
with probabilities and every class's Grad-CAM map from the same pass.

What runs it (:mod:`cxrviewer.inference`): ONNX Runtime (CPU or CUDA) or OpenVINO (CPU), at fp32,
bf16 or int8; ``auto`` picks the fastest that keeps parity with fp32 ONNX Runtime on this
machine, measured once per model file and cached. :attr:`Classifier.engine` says which, and
:attr:`Classifier.choice` why.

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
from .errors import EngineError, ModelError, ModelOutputError
from .inference import ONNXRUNTIME, Engine
from .inference.choice import Choice, choose, weights_for
from .inference.machine import candidates, this_machine
from .inference.runners import CPU, CUDA, Runner, TensorSpec, choose_providers, open_runner
from .ood import OodModel
from .preprocess import preprocess_batch
from .types import Film, ModelInfo, Prediction

logger = logging.getLogger(__name__)

__all__ = ["CPU", "CUDA", "DEVICES", "BACKEND_CHOICES", "PRECISION_CHOICES", "Classifier", "RawOutputs",
           "choose_providers", "probe_film"]

#: What ``device`` may be (:func:`choose_providers`).
DEVICES = ("auto", "cpu", "cuda")
#: What ``backend`` may be: ``auto`` measures (:mod:`cxrviewer.inference.choice`).
BACKEND_CHOICES = ("auto", "onnxruntime", "openvino")
#: What ``precision`` may be: ``auto`` measures; fp32, bf16 (OpenVINO), int8 (the int8 copy).
PRECISION_CHOICES = ("auto", "fp32", "bf16", "int8")


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


class Classifier:
    """A loaded model. Thread-safe: its runner may be run from several threads (ONNX Runtime
    sessions are; OpenVINO runs each call on an idle infer request of its pool)."""

    def __init__(self, runner: Runner, info: ModelInfo, path: Path, threads: int = 0,
                 choice: Choice | None = None) -> None:
        self._runner = runner
        self.info = info
        #: the model file given (an int8 copy beside it may be what runs: :attr:`weights_path`)
        self.path = path
        self.threads = int(threads)
        #: ONNX Runtime's execution provider (``CPUExecutionProvider``...), or ``OpenVINO CPU``
        self.provider: str = runner.provider
        #: what runs the model, and why (``cxrviewer info`` prints it)
        self.choice: Choice = choice if choice is not None else Choice(runner.engine, "the combination asked for")
        self._ood = OodModel(info.ood) if info.ood is not None else None
        self._throughput: Classifier | None = None
        self._lock = threading.Lock()

    @property
    def session(self):
        """The ONNX Runtime ``InferenceSession`` that runs the model, or None on OpenVINO: for
        callers that need its raw outputs or types (training compares an export with Keras
        through it, on ONNX Runtime)."""
        return getattr(self._runner, "session", None)

    @property
    def engine(self) -> Engine:
        """The backend, device and precision the model runs on: give it to a worker's
        :meth:`load` (``engine=``) and it runs the film the same way."""
        return self._runner.engine

    @property
    def runner(self) -> Runner:
        """The backend's runner (read-only): ``run(batch)`` gives the three raw outputs."""
        return self._runner

    @property
    def weights_path(self) -> Path:
        """The file that runs: :attr:`path`, or the int8 copy beside it at int8."""
        return self._runner.path

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(
        cls, path: str | os.PathLike[str], device: str = "auto", threads: int = 0, check_outputs: bool = True,
        *, backend: str = ONNXRUNTIME, precision: str | None = None, engine: Engine | None = None,
    ) -> "Classifier":
        """Open and validate a model file.

        ``threads`` sets the runtime's intra-op threads (0 = one per core, its default).
        ``check_outputs``: run the model once on :func:`probe_film` and refuse it when its outputs
        are not valid numbers: one forward pass of one film (its cost: bench/RESULTS.md).
        Skipped only for a second session over a file already checked.

        What runs it: ``backend`` (``onnxruntime``, ``openvino`` or ``auto``) and ``precision``
        (None: the file's own, ``fp32``, ``bf16``, ``int8`` or ``auto``) on ``device``. Where either
        is ``auto`` the fastest combination that keeps parity with fp32 ONNX Runtime is measured
        once per model file and machine (:mod:`cxrviewer.inference.choice`). ``engine``: run on
        exactly this one (a worker given its driver's :attr:`engine`), nothing measured.
        """
        p = Path(path)
        if not p.is_file():
            raise ModelError(f"Model file not found: {p}. Choose an exported .onnx model file.")
        if backend not in BACKEND_CHOICES or (precision is not None and precision not in PRECISION_CHOICES) \
                or device not in DEVICES:
            raise EngineError(f"Unknown engine: device {device}, backend {backend}, precision {precision}; "
                              f"choose from {DEVICES}, {BACKEND_CHOICES} and {PRECISION_CHOICES}.")
        choice = None
        if engine is None and "auto" in (backend, precision):
            choice = choose(p, device=device, backend=backend, precision=precision or "auto")
            engine = choice.engine
        if engine is not None:
            weights = weights_for(p, engine)
            runner = open_runner(weights, engine, threads=int(threads))
        else:  # a fixed backend: the file's own precision, or the one asked for
            asked = precision or "fp32"
            guess = Engine(backend, "cuda" if device == "cuda" else "cpu", asked)
            weights = weights_for(p, guess)
            runner = open_runner(weights, guess, threads=int(threads), device=device)
        info = contract.from_metadata(runner.metadata(), source=weights.name)
        if engine is None and precision is None and info.precision != runner.engine.precision:
            runner.engine = Engine(runner.engine.backend, runner.engine.device, info.precision)
        if engine is None and precision is not None:
            # a precision asked for by name: refuse what this model or machine cannot do, with the reason
            candidates(this_machine(), device=runner.engine.device, backend=backend, precision=precision,
                       file_precision=info.precision if weights == p else "fp32", int8_copy=weights != p,
                       forbidden=info.forbid_precisions)
        if (runner.engine.precision == "int8") != (info.precision == "int8"):
            raise EngineError(f"{weights.name} is {info.precision}, so it cannot run at {runner.engine.precision}: "
                              "an int8 copy runs at int8 only, and int8 needs such a copy (cxr-train export, "
                              "docs/training.md, int8).")
        if runner.engine.precision in info.forbid_precisions:
            raise EngineError(f"{p.name} forbids running at {runner.engine.precision} (cxr.forbid_precisions); "
                              "choose the precision fp32 or auto.")
        _check_signature(runner, info, weights.name)
        clf = cls(runner, info, p, threads=int(threads), choice=choice)
        if check_outputs:
            clf._check_outputs()
        logger.info(
            "loaded model %s (version %s, %d labels, %d px) on %s",
            weights.name, info.model_version, info.num_classes, info.input_size, clf.engine,
        )
        return clf

    def for_throughput(self) -> "Classifier":
        """This model set up to score many films side by side (the batch path).

        On CPU: the same model file on the same engine with one intra-op thread, made once and
        kept, so that the batch path runs one film per core at once rather than one film on all
        cores: no core then waits at a synchronisation point while a worker decodes, so decoding
        overlaps inference (measured: bench/RESULTS.md, (c1) vs (c2)). A classifier already on
        one thread, or on a GPU, is returned as it is.
        """
        if self.engine.device != "cpu" or self.threads == 1 or (os.cpu_count() or 1) == 1:
            return self
        with self._lock:
            if self._throughput is None:
                self._throughput = Classifier.load(self.path, threads=1, check_outputs=False, engine=self.engine)
                self._throughput.choice = self.choice
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
        # the three outputs by name from one run, on every backend: maps and features always
        # belong to the probabilities they are shown with
        probs, cams, features = self._runner.run(x)
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


def _check_signature(runner: Runner, info: ModelInfo, name: str) -> None:
    """Inputs and outputs must match the contract and the metadata."""
    problems: list[str] = []
    inputs: list[TensorSpec] = runner.inputs()
    s, c = info.input_size, info.num_classes
    if len(inputs) != 1 or inputs[0].name != contract.INPUT_NAME:
        problems.append(
            f"it must have one input named {contract.INPUT_NAME!r}, has {[i.name for i in inputs]}"
        )
    else:
        shape = inputs[0].shape
        if len(shape) != 4 or list(shape[1:]) != [s, s, 3]:
            problems.append(f"input {contract.INPUT_NAME!r} must be [N, {s}, {s}, 3], is {_shape(shape)}")
        if inputs[0].dtype != "float32":
            problems.append(f"input must be float32, is {inputs[0].dtype}")
    outputs = {o.name: o for o in runner.outputs()}
    for name_ in contract.OUTPUT_NAMES:
        if name_ not in outputs:
            problems.append(f"output {name_!r} is missing (has {sorted(outputs)})")
    if contract.PROBS in outputs:
        shape = outputs[contract.PROBS].shape
        if len(shape) != 2 or (shape[1] is not None and shape[1] != c):
            problems.append(f"output 'probs' must be [N, {c}], is {_shape(shape)}")
    if contract.CAMS in outputs:
        shape = outputs[contract.CAMS].shape
        if len(shape) != 4 or (shape[3] is not None and shape[3] != c):
            problems.append(f"output 'cams' must be [N, h, w, {c}], is {_shape(shape)}")
    if problems:
        raise ModelError(
            f"{name} does not honour the cxrviewer model contract: {'; '.join(problems)}. "
            "Export it with `cxr-train export`; see docs/model-format.md."
        )


def _shape(shape) -> list:
    return ["N" if d is None else d for d in shape]
