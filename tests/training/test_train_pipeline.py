"""The tf.data pipeline uses the app's reader and preprocessing; augmentation; strategies."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.training
tf = pytest.importorskip("tensorflow")

from cxrviewer.io import read_film  # noqa: E402
from cxrviewer.preprocess import model_input  # noqa: E402
from training.data import Record, load_labels_csv  # noqa: E402
from training.pipeline import Augment, batches, film_dataset, pixel_stats  # noqa: E402

S = 64


def test_batches_equal_the_apps_preprocessing(nih, tmp_path):
    table = load_labels_csv(nih / "labels.csv", nih / "images")
    records = list(table.records[:5])
    broken = tmp_path / "00000001_000.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    records.insert(2, Record(broken, records[0].values, "1"))
    films = film_dataset(records, S, cache="memory")
    mean, std, n = pixel_stats(films)
    assert n == 5  # the unreadable film is skipped, not a crash
    x, y, w = next(iter(batches(films, mean, std, 8, S).as_numpy_iterator()))
    assert x.shape == (5, S, S, 3) and x.dtype == np.float32
    good = [r for r in records if r.path != broken]
    expected = np.stack([model_input(read_film(r.path).pixels, S, mean, std) for r in good])
    np.testing.assert_array_equal(x, expected)  # one preprocessing implementation
    np.testing.assert_array_equal(y, [r.values for r in good])
    assert np.all(w == 1)
    # statistics are those of the resized [0, 1] films
    resized = np.stack([e[..., 0] * std + mean for e in expected])
    assert mean == pytest.approx(resized.mean(), abs=1e-5) and std == pytest.approx(resized.std(), abs=1e-5)


def test_uncertain_weights_flow_to_the_batches(nih):
    recs = [Record(nih / "images" / "00000103_000.png", (1.0, -1.0), "103"),
            Record(nih / "images" / "00000022_000.png", (-1.0, 0.0), "22")]
    films = film_dataset(recs, S, uncertain_value=1.0, uncertain_weight=0.25)
    _, y, w = next(iter(batches(films, 0.5, 0.25, 2, S).as_numpy_iterator()))
    np.testing.assert_array_equal(y, [[1, 1], [1, 0]])
    np.testing.assert_array_equal(w, [[1, 0.25], [0.25, 1]])


def test_augmentation_is_model_external_and_flip_is_off_by_default():
    aug = Augment()
    names = [layer.name for layer in aug.layers().layers]
    assert names == ["rotation", "zoom"]
    assert [layer.name for layer in Augment(flip=True).layers().layers][0] == "flip"
    x = np.zeros((2, S, S, 1), np.float32)
    x[:, 20:40, 20:40] = 1.0
    out = np.asarray(aug.layers(seed=3)(x, training=True))
    assert out.shape == x.shape and 0.0 <= out.min() and out.max() <= 1.0 + 1e-6
    assert not Augment(0, 0, False).active


def test_strategies():
    from training.errors import TrainingError
    from training.fit import make_strategy

    assert make_strategy("none") is tf.distribute.get_strategy()
    mirrored = make_strategy("mirrored")
    assert isinstance(mirrored, tf.distribute.MirroredStrategy) and mirrored.num_replicas_in_sync >= 1
    with pytest.raises(TrainingError, match="mirrored"):
        make_strategy("tpu")
