"""``cxr.crop``: a model that reads the film's largest centred square (torchxrayvision's
``XRayCenterCrop``) gets that square, resized, as its input, and its maps and regions are put
back on that square of the film, zero outside it. Without the key nothing changes.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from cxrviewer import contract, heatmap
from cxrviewer.errors import ModelError
from cxrviewer.model import Classifier
from cxrviewer.preprocess import model_input, preprocess, preprocess_batch
from cxrviewer.render import overlay
from cxrviewer.types import Film, Prediction, crop_box
from tinymodel import LABELS, build_tiny_model, tiny_info

#: a landscape film, 300 wide and 200 high: its centred square is columns 50..249, every row
W, H = 300, 200
X0, SIDE = 50, 200


def film_with_patch(rows: slice, cols: slice, h: int = H, w: int = W) -> Film:
    """A dark film with one bright square patch and a faint gradient (not constant anywhere)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    px = 0.1 + 0.05 * xx / w + 0.05 * yy / h
    px[rows, cols] = 0.95
    return Film(px.astype(np.float32))


@pytest.fixture(scope="module")
def center_model(tmp_path_factory):
    return Classifier.load(build_tiny_model(tmp_path_factory.mktemp("crop") / "center.onnx", tiny_info(64, crop="center")),
                           device="cpu")


@pytest.mark.parametrize(
    "shape,box",
    [
        ((200, 300), (50, 0, 200, 200)),
        ((300, 200), (0, 50, 200, 200)),
        ((200, 301), (50, 0, 200, 200)),  # odd surplus: the extra column after the square
        ((201, 300), (50, 0, 201, 201)),  # as XRayCenterCrop: 300 // 2 − 201 // 2 = 50
        ((256, 256), (0, 0, 256, 256)),
    ],
)
def test_crop_box_is_the_largest_centred_square(shape, box):
    assert crop_box(*shape, "center") == box
    assert crop_box(*shape) == (0, 0, shape[1], shape[0])
    with pytest.raises(ValueError, match="unknown crop"):
        crop_box(*shape, "left")


def test_center_crop_input_is_the_square_resized_with_area_interpolation():
    rng = np.random.default_rng(3)
    film = Film(rng.random((H, W), dtype=np.float32))
    info = tiny_info(64, crop="center")
    # by hand: the square (every row, columns 50..249), INTER_AREA to 64×64, (x − 0.5)/0.25, 3 channels
    square = np.ascontiguousarray(film.pixels[:, X0 : X0 + SIDE])
    z = (cv2.resize(square, (64, 64), interpolation=cv2.INTER_AREA) - np.float32(0.5)) / np.float32(0.25)
    expected = np.repeat(z[..., None], 3, axis=-1)
    np.testing.assert_array_equal(preprocess(film, info), expected)
    np.testing.assert_array_equal(preprocess_batch([film], info)[0], expected)
    # and it is not the squashed whole film
    assert np.abs(preprocess(film, tiny_info(64)) - expected).max() > 0.1
    # a portrait film: every column, rows 50..249
    tall = Film(np.ascontiguousarray(film.pixels.T))
    z = (cv2.resize(np.ascontiguousarray(tall.pixels[X0 : X0 + SIDE]), (64, 64), interpolation=cv2.INTER_AREA) - 0.5) / 0.25
    np.testing.assert_allclose(preprocess(tall, info)[..., 0], z, atol=0, rtol=0)


def test_without_the_key_the_input_is_the_squashed_film_as_before():
    film = Film(np.random.default_rng(4).random((H, W), dtype=np.float32))
    squashed = (cv2.resize(film.pixels, (64, 64), interpolation=cv2.INTER_AREA) - np.float32(0.5)) / np.float32(0.25)
    np.testing.assert_array_equal(preprocess(film, tiny_info(64))[..., 0], squashed)
    np.testing.assert_array_equal(model_input(film.pixels, 64, 0.5, 0.25), preprocess(film, tiny_info(64)))


def test_crop_key_round_trip_and_absent_means_none(tiny_model):
    meta = contract.to_metadata(tiny_info())
    assert "cxr.crop" not in meta  # existing files' metadata unchanged, key for key
    assert Classifier.load(tiny_model).info.crop == "none"
    meta = contract.to_metadata(tiny_info(crop="center"))
    assert meta["cxr.crop"] == '"center"'
    assert contract.from_metadata(meta) == tiny_info(crop="center")
    meta["cxr.crop"] = '"none"'  # written explicitly, it means the same as absent
    assert contract.from_metadata(meta) == tiny_info()


@pytest.mark.parametrize("value", ['"centre"', '"square"', "1", "null", '["center"]'])
def test_unknown_crop_values_are_refused(tmp_path, value):
    meta = contract.to_metadata(tiny_info())
    meta["cxr.crop"] = value
    path = build_tiny_model(tmp_path / "m.onnx", metadata=meta)
    with pytest.raises(ModelError, match=r'm.onnx has invalid metadata: cxr.crop must be one of "none", "center" '
                                         r'\(absent means "none": the whole film\), got .*upgrade it'):
        Classifier.load(path)


def test_a_center_model_scores_the_film_as_a_plain_model_scores_its_square(center_model, classifier):
    film = film_with_patch(slice(0, 100), slice(X0, X0 + 100))
    square = Film(np.ascontiguousarray(film.pixels[:, X0 : X0 + SIDE]))
    got = center_model.predict_one(film)
    want = classifier.predict_one(square)
    assert got.crop == "center" and want.crop == "none"
    np.testing.assert_array_equal(got.probabilities, want.probabilities)
    np.testing.assert_array_equal(got.class_maps, want.class_maps)
    # the squashed film is another input: the crop is what makes them equal
    assert np.abs(classifier.predict_one(film).probabilities - want.probabilities).max() > 1e-4


def hot_label(prediction: Prediction, cell: tuple[int, int]) -> str:
    """A label whose map is hottest in ``cell`` (and not flat)."""
    for label in prediction.labels:
        m = prediction.class_map(label)
        if m.max() > 0 and np.unravel_index(np.argmax(m), m.shape) == cell and m.max() > 2 * np.sort(m.ravel())[-2]:
            return label
    raise AssertionError(f"no class map is hottest in {cell}")


def test_heat_lies_on_the_square_and_its_top_left_cell_at_the_square_top_left(center_model):
    # bright in the top-left quarter of the centred square: the maps' top-left cell (of 2×2)
    film = film_with_patch(slice(0, 100), slice(X0, X0 + 100))
    pred = center_model.predict_one(film)
    label = hot_label(pred, (0, 0))
    shape = (H, W)
    for heat in (heatmap.display_map(pred, label, shape), heatmap.combined_map(pred, [label], shape),
                 heatmap.combined_map(pred, list(LABELS), shape)):
        assert heat.shape == shape
        assert not heat[:, :X0].any() and not heat[:, X0 + SIDE :].any()  # nothing outside the square
        assert heat[:, X0 : X0 + SIDE].max() > 0
    heat = heatmap.display_map(pred, label, shape)
    y, x = np.unravel_index(np.argmax(heat), shape)
    assert y < SIDE // 2 and X0 <= x < X0 + SIDE // 2, (y, x)  # the square's top-left quarter, not the film's
    # exactly the map upsampled over the square
    np.testing.assert_array_equal(heat[:, X0 : X0 + SIDE],
                                  heatmap.upsample(heatmap.normalize(pred.class_map(label)), (SIDE, SIDE)))
    # the overlay leaves the film outside the square as the bare film
    bare = overlay(film, None)
    # the strongest finding alone (one scale for all findings; one finding: no legend on the film)
    strongest = max(LABELS, key=lambda name: pred.class_map(name).max())
    drawn = overlay(film, pred, [strongest], alpha=0.9)
    assert np.array_equal(drawn[:, :X0], bare[:, :X0]) and np.array_equal(drawn[:, X0 + SIDE :], bare[:, X0 + SIDE :])
    assert not np.array_equal(drawn[:, X0 : X0 + SIDE], bare[:, X0 : X0 + SIDE])


def test_regions_lie_in_the_square_in_film_coordinates(center_model):
    film = film_with_patch(slice(0, 100), slice(X0, X0 + 100))
    pred = center_model.predict_one(film)
    label = hot_label(pred, (0, 0))
    found = heatmap.regions(pred, label, (H, W))
    assert found
    # the same outlines as the square traced as a film of its own, moved right by the square's offset
    alone = heatmap.regions(Prediction(pred.labels, pred.probabilities, pred.class_maps, pred.thresholds,
                                       pred.model_version), label, (SIDE, SIDE))
    assert [r.box for r in found] == [(r.box[0] + X0, *r.box[1:]) for r in alone]
    assert [r.contour for r in found] == [tuple((x + X0, y) for x, y in r.contour) for r in alone]
    for r in found:
        x, y, w, h = r.box
        assert X0 <= x and x + w <= X0 + SIDE and 0 <= y and y + h <= H
        assert all(X0 <= px < X0 + SIDE and 0 <= py < H for px, py in r.contour)
    top = found[0]
    assert top.box[0] == X0 and top.box[1] == 0  # the hot cell is the square's top-left corner
    # contour mode draws nothing outside the square either
    bare = overlay(film, None)
    drawn = overlay(film, pred, [label], mode="contour")
    assert np.array_equal(drawn[:, : X0 - 8], bare[:, : X0 - 8])


def test_regions_of_a_large_film_are_scaled_and_placed_on_the_square():
    # a 1200 × 3000 film: the square (1200 px) is traced on a 512 grid and moved 900 px right
    maps = np.zeros((len(LABELS), 2, 2), np.float32)
    maps[:, 0, 0] = 1.0
    pred = Prediction(LABELS, np.full(len(LABELS), 0.9, np.float32), maps, (0.5,) * len(LABELS), "t", crop="center")
    found = heatmap.regions(pred, LABELS[0], (1200, 3000))
    assert len(found) == 1
    x, y, w, h = found[0].box
    assert x == 900 and y == 0 and 0 < w < 1200 and 0 < h < 1200
    xs = [p[0] for p in found[0].contour]
    assert min(xs) == 900 and max(xs) < 900 + 1200
    heat = heatmap.display_map(pred, LABELS[0], (1200, 3000))
    assert not heat[:, :900].any() and not heat[:, 2100:].any() and heat[0, 900] == 1.0


def test_a_prediction_refuses_an_unknown_crop():
    with pytest.raises(ValueError, match="unknown crop"):
        Prediction(LABELS, np.zeros(len(LABELS), np.float32), np.zeros((len(LABELS), 2, 2), np.float32),
                   (0.5,) * len(LABELS), "t", crop="centre")


def test_the_presentation_states_graphics_lie_in_the_square(tmp_path, center_model):
    """The GSPS draws the regions (outlines and boxes) on the source image: inside the square."""
    import pydicom

    from cxrviewer.dicom import export_dicom_gsps
    from cxrviewer.io import read_film
    from dicomfactory import CR_IMAGE, dicom_dataset, write_dicom

    px = np.rint(film_with_patch(slice(0, 100), slice(X0, X0 + 100)).pixels * 4095).astype(np.uint16)
    src = write_dicom(tmp_path / "wide.dcm", dicom_dataset(px, bits_stored=12, sop_class=CR_IMAGE, modality="CR",
                                                           BodyPartExamined="CHEST", ViewPosition="PA"))
    film = read_film(src)
    assert (film.height, film.width) == (H, W)
    pred = center_model.predict_one(film)
    label = hot_label(pred, (0, 0))
    out = export_dicom_gsps(tmp_path / "pr.dcm", film, pred, center_model.info, region_labels=[label])
    points = [np.asarray(g.GraphicData, dtype=float).reshape(-1, 2)
              for item in pydicom.dcmread(out).GraphicAnnotationSequence for g in item.get("GraphicObjectSequence", [])]
    assert points
    for pts in points:  # DICOM image coordinates (column, row): pixel (0, 0) spans 0..1
        assert (pts[:, 0] >= X0).all() and (pts[:, 0] <= X0 + SIDE).all() and (pts[:, 1] >= 0).all(), pts
    assert min(p[:, 0].min() for p in points) <= X0 + 1  # the top-left region starts at the square's edge


def test_the_model_card_says_which_part_of_the_film_the_model_reads(tmp_path, tiny_model, capsys):
    from cxrviewer.cli import main

    center = build_tiny_model(tmp_path / "center.onnx", tiny_info(64, crop="center"))
    assert main(["info", "--model", str(center)]) == 0
    assert "the film's largest centred square (cxr.crop)" in capsys.readouterr().out
    assert main(["info", "--model", str(tiny_model), "--json"]) == 0
    assert '"crop": "none"' in capsys.readouterr().out
