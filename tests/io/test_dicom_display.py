"""The display pipeline as plain functions (cxrviewer.io.dicom_display): arrays in, new arrays out,
parameters explicit, so a viewer can window modality values at display time with the same code."""

from __future__ import annotations

import numpy as np
import pytest

from cxrviewer.io.dicom_display import (
    GrayscaleParams,
    Lut,
    apply_voi,
    apply_voi_lut,
    apply_window,
    display_pixels,
    is_inverted,
    modality_values,
    rgb_to_luma,
    scale_min_max,
    to_display,
    valid_window,
)

STORED = np.array([[0, 100, 200, 300], [400, 500, 600, 4095]], dtype=np.uint16)
LUT = Lut(data=np.array([0, 1000, 2000, 4095]), first_map=0, bits=12)


@pytest.mark.parametrize(
    "call",
    [
        lambda a: modality_values(a),
        lambda a: modality_values(a, rescale=(2.0, -1024.0)),
        lambda a: modality_values(a, lut=LUT),
        lambda a: apply_window(a, 300.0, 401.0),
        lambda a: apply_window(a, 300.0, 401.0, "SIGMOID"),
        lambda a: apply_voi_lut(a, LUT),
        lambda a: scale_min_max(a),
        lambda a: apply_voi(a, window=(300.0, 401.0))[0],
        lambda a: to_display(a, inverted=True),
        lambda a: to_display(a, inverted=False),
    ],
)
@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_each_stage_returns_a_new_array_and_leaves_its_input_alone(call, dtype):
    x = STORED.astype(dtype)
    before = x.copy()
    out = call(x)
    np.testing.assert_array_equal(x, before)
    assert out.dtype == np.float32 and out.shape == x.shape
    assert not np.shares_memory(out, x)


def test_the_pipeline_is_the_composition_of_its_stages():
    """Windowing modality values later (at display time) gives exactly what the reader gives."""
    params = GrayscaleParams(photometric="MONOCHROME1", rescale=(2.0, -1024.0), window=(0.0, 401.0))
    whole, facts = display_pixels(STORED, params)
    modality = modality_values(STORED, params.rescale, params.modality_lut)
    voi, kind, window = apply_voi(modality, params.voi_lut, params.window, params.voi_function)
    staged = to_display(voi, is_inverted(params.photometric, params.presentation_shape))
    np.testing.assert_array_equal(whole, staged)
    assert (facts.voi, facts.window, facts.inverted) == (kind, window, True) == ("window", (0.0, 401.0), True)


def test_apply_voi_prefers_the_lut_then_the_window_then_min_max():
    x = modality_values(np.array([[0, 1, 2, 3]], dtype=np.uint16))
    assert apply_voi(x, lut=LUT, window=(1.0, 2.0))[1:] == ("lut-sequence", None)
    assert apply_voi(x, window=(1.5, 3.0))[1:] == ("window", (1.5, 3.0))
    y, kind, window = apply_voi(x)
    assert (kind, window) == ("minmax", None)
    np.testing.assert_allclose(y[0], [0.0, 1 / 3, 2 / 3, 1.0], atol=1e-7)


@pytest.mark.parametrize(
    "center, width, function, ok",
    [(0, 1, "LINEAR", True), (0, 0.5, "LINEAR", False), (0, 0.5, "LINEAR_EXACT", True),
     (0, 0, "SIGMOID", False), (float("nan"), 10, "LINEAR", False), (0, float("inf"), "LINEAR", False)],
)
def test_valid_window_follows_ps3_3_c_11_2_1_2(center, width, function, ok):
    assert valid_window(center, width, function) is ok


def test_rgb_to_luma_uses_bt601_weights_and_ignores_negative_samples():
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [-5, 255, 255]]], dtype=np.int16)
    np.testing.assert_allclose(rgb_to_luma(rgb, 255.0)[0], [0.299, 0.587, 0.114, 0.701], atol=1e-6)


def test_to_display_can_work_in_place_on_an_array_the_caller_owns():
    y = np.array([[-0.5, 0.0, 0.25, 1.5]], dtype=np.float32)
    expected = to_display(y, inverted=True)
    same = to_display(y, inverted=True, out=y)
    assert same is y
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(expected[0], [1.0, 1.0, 0.75, 0.0])
