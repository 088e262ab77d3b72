"""The one module where cxrviewer touches other packages' private names, and why.

Every other module uses public APIs only (``tests/test_private_names.py`` scans the code and
fails on a private name of another package anywhere else). Each touch point below is listed in
:data:`TOUCH_POINTS` with the versions it was checked on; :func:`check` says, for the installed
versions, which ones are no longer there (``tests/training/test_compat.py`` fails with that
message); each workaround logs a warning when it cannot apply, and training goes on as Keras
makes it.

Keras 3.15's ``Model.fit`` under MultiWorkerMirroredStrategy (TensorFlow 2.21 / Keras 3.15,
2026-11-23) stops before the first step finishes, for two reasons, and Keras has no public
setting for either:

1. Before its first step ``fit`` (and ``evaluate``) builds the model symbolically from the first
   batch of the *distributed* dataset, which it first averages across the workers with
   ``strategy.reduce("MEAN", batch)``; the collective strategy cannot reduce a nest of
   ``PerReplica`` values eagerly ("Attempt to convert a value (PerReplica...) to a Tensor"). The
   build needs only the batch's shapes and dtypes: :func:`build_from_a_local_batch` gives it a
   batch of this worker's own, undistributed dataset (``Model._maybe_symbolic_build``, on this
   model object only).
2. Every step's logs go through ``reduce_per_replica(..., reduction="auto")``, which under the
   collective strategy is ``strategy.reduce("MEAN", v, axis=0)``, also for the scalar loss and
   metrics ("Invalid reduction dimension 0 for input with 0 dimensions"). A scalar is averaged
   across the workers with ``axis=None`` instead (:func:`reduce_scalars_across_workers`), which
   is what the mean of a scalar means; other values are reduced as Keras does
   (``keras.src.backend.tensorflow.trainer.reduce_per_replica`` and
   ``_collective_all_reduce_multi_worker``).

Both are worth reporting to Keras (a distributed ``fit`` under MultiWorkerMirroredStrategy with
a scalar loss fails as it comes); ``tests/training/test_train_multiworker.py`` trains two real
workers one step, and says which bug shows if a Keras version changes them.
"""

from __future__ import annotations

import functools
import importlib
import logging
from dataclasses import dataclass

import tensorflow as tf

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TouchPoint:
    """A private name of another package that cxrviewer uses, and where."""

    package: str  #: the distribution whose version is checked
    module: str  #: the module that holds the name (or the class, ``module:Class``)
    name: str
    checked: str  #: the versions it was checked on
    why: str


TOUCH_POINTS: tuple[TouchPoint, ...] = (
    TouchPoint("keras", "keras.src.backend.tensorflow.trainer:TensorFlowTrainer", "_maybe_symbolic_build",
               "keras 3.15.1, tensorflow 2.21.0", "fit's symbolic build reduces a distributed batch eagerly (bug 1)"),
    TouchPoint("keras", "keras.src.backend.tensorflow.trainer", "reduce_per_replica", "keras 3.15.1, tensorflow 2.21.0",
               "a step's scalar logs reduced on axis 0 under the collective strategy (bug 2)"),
    TouchPoint("keras", "keras.src.backend.tensorflow.trainer", "_collective_all_reduce_multi_worker",
               "keras 3.15.1, tensorflow 2.21.0", "which strategies bug 2 concerns"),
)


def _resolve(point: TouchPoint):
    module, _, cls = point.module.partition(":")
    owner = importlib.import_module(module)
    if cls:
        owner = getattr(owner, cls)
    return getattr(owner, point.name)


def check() -> list[str]:
    """For the installed versions, one line for each touch point that is no longer there."""
    from importlib.metadata import version

    problems = []
    for point in TOUCH_POINTS:
        try:
            _resolve(point)
        except (ImportError, AttributeError) as exc:
            problems.append(f"{point.module}.{point.name} ({point.why}) is gone in {point.package} "
                            f"{version(point.package)} (checked on {point.checked}): {type(exc).__name__}: {exc}")
    return problems


def build_from_a_local_batch(model, dataset) -> bool:
    """Bug 1: the symbolic build takes a batch of ``dataset`` as this worker has it. The
    override is on this model object only. Whether it applied."""
    build = getattr(model, "_maybe_symbolic_build", None)
    if build is None:
        logger.warning("this Keras has no Model._maybe_symbolic_build (training/compat.py, checked on %s): "
                       "fit runs as Keras makes it", TOUCH_POINTS[0].checked)
        return False
    local_batch = next(iter(dataset.take(1)))

    def build_from_local_batch(iterator=None, data_batch=None):
        build(data_batch=local_batch if data_batch is None else data_batch)

    model._maybe_symbolic_build = build_from_local_batch
    return True


def reduce_scalars_across_workers() -> bool:
    """Bug 2: the step's scalar logs are averaged across workers with ``axis=None``. Whether it
    applied (or had been already)."""
    try:
        from keras.src.backend.tensorflow import trainer
    except ImportError:
        trainer = None
    original = getattr(trainer, "reduce_per_replica", None)
    multi_worker = getattr(trainer, "_collective_all_reduce_multi_worker", None)
    if original is None or multi_worker is None:
        logger.warning("this Keras has no keras.src.backend.tensorflow.trainer.reduce_per_replica or "
                       "_collective_all_reduce_multi_worker (training/compat.py, checked on %s): fit runs as "
                       "Keras makes it", TOUCH_POINTS[1].checked)
        return False
    if getattr(original, "_cxr_scalars", False):
        return True

    @functools.wraps(original)
    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and multi_worker(strategy):
            def scalar_first(v):
                if isinstance(v, tf.Tensor) and v.shape.rank == 0:
                    return strategy.reduce("MEAN", v, axis=None)
                return original(v, strategy, reduction)

            return tf.nest.map_structure(scalar_first, values)
        return original(values, strategy, reduction)

    reduce_per_replica._cxr_scalars = True
    trainer.reduce_per_replica = reduce_per_replica
    return True
