"""``cxrviewer export --window``: what the default window clips, the full range shows (#14)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest

from cxrviewer.cli import main
from cxrviewer.io import read_film
from cxrviewer.io.grayscale import full_range, value_range
from cxrviewer.render import RenderOptions, annotate, picture_size, select_classes

@pytest.fixture
def clipping_cr(tmp_path, dicom_corpus) -> Path:
    """The chest CR (generated from an NIH film, and the real one where present) with a stored
    window that clips most of its range (a copy)."""
    ds = pydicom.dcmread(dicom_corpus["no_preamble_chest"], force=True)
    ds.WindowCenter, ds.WindowWidth = 560, 80
    out = tmp_path / "narrow-window-chest.dcm"
    ds.save_as(out)
    return out


def film_area(png: Path, film_shape: tuple[int, int]) -> np.ndarray:
    """The film's picture inside an exported PNG, without the banner rows at its top and bottom."""
    img = cv2.cvtColor(cv2.imread(str(png)), cv2.COLOR_BGR2GRAY)
    ph, pw = picture_size(*film_shape)
    top = (img.shape[0] - ph) // 2
    area = img[top : top + ph, :pw]
    return area[ph // 10 : ph - ph // 10]  # the demo and out-of-distribution banners sit on the edges


def saturated(gray: np.ndarray) -> float:
    return float(((gray == 0) | (gray == 255)).mean())


def test_full_range_export_shows_what_the_stored_window_saturates(clipping_cr, tmp_path, tiny_model):
    film = read_film(clipping_cr)
    assert value_range(film.gray)[1] - value_range(film.gray)[0] > 10 * 80
    common = ["--model", str(tiny_model), "--classes", "none"]
    stored, full = tmp_path / "file.png", tmp_path / "full.png"
    assert main(["export", str(clipping_cr), "--out", str(stored), "--window", "file", *common]) == 0
    assert main(["export", str(clipping_cr), "--out", str(full), "--window", "full", *common]) == 0
    shape = (film.height, film.width)
    assert saturated(film_area(stored, shape)) > 0.5  # the stored window saturates most of the film
    shown = film_area(full, shape)
    assert saturated(shown) < 0.05
    assert len(np.unique(shown)) > 100  # detail: many gray levels where the default had two


def test_export_window_draws_what_the_renderer_draws(clipping_cr, tmp_path, tiny_model, classifier):
    out = tmp_path / "w.png"
    assert main(["export", str(clipping_cr), "--out", str(out), "--window", "500,300",
                 "--model", str(tiny_model), "--classes", "none"]) == 0
    film = read_film(clipping_cr)
    pred = classifier.predict_one(film)
    want = annotate(film, pred, classifier.info, RenderOptions(select_classes(pred, "none"), window=(500.0, 300.0)))
    np.testing.assert_array_equal(cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB), want)
    auto, full = tmp_path / "a.png", tmp_path / "f.png"
    assert main(["export", str(clipping_cr), "--out", str(full), "--window", "full", "--model", str(tiny_model)]) == 0
    want_full = annotate(film, pred, classifier.info, RenderOptions(select_classes(pred, "positives"), window=full_range(film.gray)))
    np.testing.assert_array_equal(cv2.cvtColor(cv2.imread(str(full)), cv2.COLOR_BGR2RGB), want_full)
    assert main(["export", str(clipping_cr), "--out", str(auto), "--window", "auto", "--model", str(tiny_model)]) == 0
    assert not np.array_equal(cv2.imread(str(auto)), cv2.imread(str(full)))


@pytest.mark.parametrize("bad", ["wide", "1,2,3", "100,0", "100,-5"])
def test_a_bad_window_is_a_clear_usage_error(bad, tmp_path, tiny_model, capsys, nih_images):
    with pytest.raises(SystemExit) as exc:
        main(["export", str(nih_images[0]), "--out", str(tmp_path / "x.png"), "--window", bad, "--model", str(tiny_model)])
    assert exc.value.code == 2
    assert "--window" in capsys.readouterr().err
