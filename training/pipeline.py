"""tf.data input pipelines built on the app's own reader and preprocessing.

Per film: :func:`training.data.read_pixels` (the app's ``read_film``) → :func:`cxrviewer.preprocess.resize`
to S×S, in parallel; the resized [0, 1] films are cached (memory, or a file for big sets). Per
batch: augmentation (Keras preprocessing layers, model-external, on the [0, 1] film) →
:func:`cxrviewer.preprocess.standardize` with the training mean/std (3 channels) → prefetch.
Unreadable films are skipped with a warning, never a crash.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cxrviewer.errors import CxrError
from cxrviewer.preprocess import resize, standardize

from .data import Record, read_pixels, targets

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Augment:
    """Model-external augmentation. Chest films are not mirror-symmetric: flips are off by default."""

    rotation_deg: float = 5.0
    zoom: float = 0.1
    flip: bool = False

    @property
    def active(self) -> bool:
        return self.rotation_deg > 0 or self.zoom > 0 or self.flip

    def layers(self, seed: int = 0):
        import keras
        from keras import layers

        stack = []
        if self.flip:
            stack.append(layers.RandomFlip("horizontal", seed=seed, name="flip"))
        if self.rotation_deg > 0:
            stack.append(layers.RandomRotation(self.rotation_deg / 360.0, fill_mode="constant", fill_value=0.0,
                                               seed=seed + 1, name="rotation"))
        if self.zoom > 0:
            stack.append(layers.RandomZoom((-self.zoom, self.zoom), fill_mode="constant", fill_value=0.0,
                                           seed=seed + 2, name="zoom"))
        return keras.Sequential(stack, name="augment")


def load_resized(path: str, size: int) -> tuple[np.ndarray, bool]:
    """(S×S float32 film, True), or (zeros, False) for a film that cannot be read."""
    try:
        return resize(read_pixels(path), size), True
    except (CxrError, OSError, ValueError) as exc:
        logger.warning("skipping %s: %s", Path(path).name, exc)
        return np.zeros((size, size), np.float32), False


def film_dataset(
    records: Sequence[Record],
    size: int,
    uncertain_value: float = 0.0,
    uncertain_weight: float = 1.0,
    cache: str | Path | None = None,
):
    """A dataset of (film [S, S] in [0, 1], targets [C], weights [C]) per record.

    ``cache``: ``"memory"``, a file path prefix (tf.data writes it on the first full pass), or None.
    """
    import tensorflow as tf

    values = np.array([r.values for r in records], dtype=np.float32).reshape(len(records), -1)
    y, w = targets(values, uncertain_value, uncertain_weight)
    paths = np.array([str(r.path) for r in records])

    def _load(path):
        px, ok = load_resized(path.decode("utf-8") if isinstance(path, bytes) else str(path), size)
        return px, np.bool_(ok)

    def decode(path, yy, ww):
        px, ok = tf.numpy_function(_load, [path], [tf.float32, tf.bool], stateful=False)
        px.set_shape((size, size))
        ok.set_shape(())
        return px, ok, yy, ww

    ds = tf.data.Dataset.from_tensor_slices((paths, y, w))
    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.filter(_readable).map(_drop_flag)
    if cache == "memory":
        ds = ds.cache()
    elif cache:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        ds = ds.cache(str(cache))
    return ds


def _readable(px, ok, yy, ww):
    return ok


def _drop_flag(px, ok, yy, ww):
    return px, yy, ww


def batches(
    films,
    mean: float,
    std: float,
    batch_size: int,
    size: int,
    *,
    shuffle: int = 0,
    augment: Augment | None = None,
    seed: int = 0,
    repeat: bool = False,
    drop_remainder: bool = False,
):
    """Standardized (x [N, S, S, 3], y, w) batches from :func:`film_dataset`, prefetched.

    ``repeat`` makes the dataset endless, and the caller passes Keras ``steps_per_epoch`` /
    ``validation_steps``: unreadable films are filtered out, so tf.data cannot count the batches.
    Training also sets ``drop_remainder``: a second batch shape would make Keras trace the
    DenseNet121 train step again (about a minute on a CPU).
    """
    import tensorflow as tf

    ds = films
    if shuffle > 1:
        ds = ds.shuffle(shuffle, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if repeat:
        ds = ds.repeat()
    if augment is not None and augment.active:
        aug = augment.layers(seed)

        def _augment(x, yy, ww):
            return aug(x[..., None], training=True)[..., 0], yy, ww

        ds = ds.map(_augment, num_parallel_calls=tf.data.AUTOTUNE)

    def _standardize(x):
        return standardize(x, mean, std)

    def to_input(x, yy, ww):
        z = tf.numpy_function(_standardize, [x], tf.float32, stateful=False)
        z.set_shape((None, size, size, 3))
        return z, yy, ww

    ds = ds.map(to_input, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


def pixel_stats(films, batch_size: int = 32) -> tuple[float, float, int]:
    """(mean, std, films) of the resized [0, 1] films of a :func:`film_dataset` (one full pass)."""
    from .stats import PixelStats

    acc = PixelStats()
    n = 0
    for px, _, _ in films.batch(batch_size).as_numpy_iterator():
        acc.add(px)
        n += px.shape[0]
    if n == 0:
        raise ValueError("no readable films")
    return acc.mean, acc.std, n


def predict(model, films, mean: float, std: float, size: int, batch_size: int = 16):
    """Run ``model`` (single or dict output) over a film dataset; returns (outputs, y, w) as NumPy."""
    outs: list = []
    ys, ws = [], []
    for x, yy, ww in batches(films, mean, std, batch_size, size).as_numpy_iterator():
        out = model(x, training=False)
        outs.append({k: np.asarray(v) for k, v in out.items()} if isinstance(out, dict) else np.asarray(out))
        ys.append(yy)
        ws.append(ww)
    if not outs:
        raise ValueError("no readable films")
    if isinstance(outs[0], dict):
        merged = {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}
    else:
        merged = np.concatenate(outs)
    return merged, np.concatenate(ys), np.concatenate(ws)
