"""Keras 3.15's ``Model.fit`` under MultiWorkerMirroredStrategy, made to run.

Two bugs stop it before the first step finishes (TensorFlow 2.21 / Keras 3.15, 2026-11-23):

1. Before its first step ``fit`` (and ``evaluate``) builds the model symbolically from the first
   batch of the *distributed* dataset, which it first averages across the workers with
   ``strategy.reduce("MEAN", batch)``; the collective strategy cannot reduce a nest of
   ``PerReplica`` values eagerly ("Attempt to convert a value (PerReplica...) to a Tensor"). The
   build needs only the batch's shapes and dtypes: :func:`build_from_a_local_batch` gives it a
   batch of this worker's own, undistributed dataset.
2. Every step's logs go through ``reduce_per_replica(..., reduction="auto")``, which under the
   collective strategy is ``strategy.reduce("MEAN", v, axis=0)``, also for the scalar loss and
   metrics ("Invalid reduction dimension 0 for input with 0 dimensions"). A scalar is averaged
   across the workers with ``axis=None`` instead (:func:`reduce_scalars_across_workers`), which
   is what the mean of a scalar means; other values are reduced as Keras does.

Both touch private Keras names, so each checks that they are there and does nothing otherwise;
tests/training/test_train_multiworker.py trains two real workers one step, and says which bug
shows if a Keras version changes them.
"""

from __future__ import annotations

import functools
import logging

import tensorflow as tf

logger = logging.getLogger(__name__)


def build_from_a_local_batch(model, dataset) -> None:
    """Bug 1: the symbolic build takes a batch of ``dataset`` as this worker has it. The
    override is on this model object only."""
    build = getattr(model, "_maybe_symbolic_build", None)
    if build is None:
        return
    local_batch = next(iter(dataset.take(1)))

    def build_from_local_batch(iterator=None, data_batch=None):
        build(data_batch=local_batch if data_batch is None else data_batch)

    model._maybe_symbolic_build = build_from_local_batch


def reduce_scalars_across_workers() -> None:
    """Bug 2: the step's scalar logs are averaged across workers with ``axis=None``."""
    try:
        from keras.src.backend.tensorflow import trainer
    except ImportError:
        return
    original = getattr(trainer, "reduce_per_replica", None)
    multi_worker = getattr(trainer, "_collective_all_reduce_multi_worker", None)
    if original is None or multi_worker is None or getattr(original, "_cxr_scalars", False):
        return

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
