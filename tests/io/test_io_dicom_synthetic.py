"""The DICOM reader on synthetic data sets built with pydicom: every photometric interpretation,
bit depth, LUT and window form the pipeline handles, and the errors it must raise."""

from __future__ import annotations

import logging
import struct
import time

import numpy as np
import pytest
from dicomfactory import BASIC_TEXT_SR, PHI_VALUES, corpus_cases, dicom_dataset, lut_item

from cxrviewer.errors import CxrError, MissingCodecError, UnreadableImageError, UnsupportedDicomError
from cxrviewer.io import read_film
from cxrviewer.io.dicom_display import GrayscaleParams, Lut, apply_window, display_pixels
from pydicom.uid import JPEGBaseline8Bit

def ramp(bits: int, n: int = 64, signed: bool = False) -> np.ndarray:
    """One row of ``n`` values spanning the full range of ``bits``-bit samples."""
    if signed:
        lo, hi, dtype = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1, np.int8 if bits <= 8 else np.int16
    else:
        lo, hi, dtype = 0, 2**bits - 1, np.uint8 if bits <= 8 else np.uint16
    return np.linspace(lo, hi, n).round().astype(dtype)[None, :].repeat(3, axis=0)


# ------------------------------------------------------------------ photometric & bits
@pytest.mark.parametrize("bits", [8, 12, 16])
@pytest.mark.parametrize("photometric", ["MONOCHROME1", "MONOCHROME2"])
def test_a_ramp_comes_out_increasing_for_mono2_and_decreasing_for_mono1(make_dicom, bits, photometric):
    stored = ramp(bits)
    film = read_film(make_dicom(stored, photometric=photometric, bits_stored=bits))
    row = film.pixels[0].astype(np.float64)
    steps = np.diff(row)
    if photometric == "MONOCHROME2":
        assert (steps > 0).all() and row[0] == 0.0 and row[-1] == 1.0
    else:
        assert (steps < 0).all() and row[0] == 1.0 and row[-1] == 0.0
    # No window: min/max of the data, exactly linear.
    expected = (stored[0] - stored.min()) / float(stored.max() - stored.min())
    if photometric == "MONOCHROME1":
        expected = 1.0 - expected
    np.testing.assert_allclose(row, expected, atol=1e-6)
    assert film.metadata["bits_stored"] == bits and film.metadata["voi"] == "minmax"
    assert film.metadata["inverted"] == (photometric == "MONOCHROME1")


def test_signed_pixels_keep_their_order(make_dicom):
    stored = ramp(12, signed=True)
    assert stored.min() == -2048 and stored.dtype == np.int16
    film = read_film(make_dicom(stored, bits_stored=12))
    assert (np.diff(film.pixels[0]) > 0).all()
    assert film.pixels[0, 0] == 0.0 and film.pixels[0, -1] == 1.0


def test_pixel_representation_decides_the_sign_of_the_same_bits(make_dicom):
    bits = np.array([[0, 1, 2, 0xFFFF]], dtype=np.uint16)
    unsigned = read_film(make_dicom(bits, name="u.dcm"))
    signed = read_film(make_dicom(bits, name="s.dcm", signed=True))  # 0xFFFF is -1 (PS3.5 8.1.1)
    np.testing.assert_allclose(unsigned.pixels[0], [0.0, 1 / 65535, 2 / 65535, 1.0], atol=1e-6)
    np.testing.assert_allclose(signed.pixels[0], [1 / 3, 2 / 3, 1.0, 0.0], atol=1e-6)


def test_signed_pixels_with_a_window_in_signed_units(make_dicom):
    stored = np.array([[-1000, -100, 0, 100, 1000]], dtype=np.int16)
    film = read_film(make_dicom(stored, bits_stored=12, WindowCenter=0, WindowWidth=201))
    # LINEAR: lower edge -0.5 - 100 = -100.5, upper edge 99.5.
    np.testing.assert_allclose(film.pixels[0], [0.0, 0.0025, 0.5025, 1.0, 1.0], atol=1e-6)


# ------------------------------------------------------------------ modality & window
def test_rescale_slope_intercept_is_applied_before_the_window(make_dicom):
    stored = np.array([[0, 450, 512, 600, 1000]], dtype=np.uint16)
    # modality = 2 * stored - 1024 → [-1024, -124, 0, 176, 976]; window 0 / 401 → edges -200.5, 199.5
    film = read_film(make_dicom(stored, bits_stored=12, rescale=(2, -1024), window=(0, 401)))
    expected = [0.0, (-124 + 0.5) / 400 + 0.5, 0.5 / 400 + 0.5, (176 + 0.5) / 400 + 0.5, 1.0]
    np.testing.assert_allclose(film.pixels[0], expected, atol=1e-6)
    assert film.metadata["window"] == (0.0, 401.0) and film.metadata["voi"] == "window"


def test_rescale_without_window_is_min_max_of_the_modality_values(make_dicom):
    stored = np.array([[10, 20, 30, 50]], dtype=np.uint16)
    film = read_film(make_dicom(stored, RescaleSlope=-1, RescaleIntercept=100))  # a negative slope flips order
    np.testing.assert_allclose(film.pixels[0], [1.0, 0.75, 0.5, 0.0], atol=1e-6)


WINDOW_POINTS = (0, 74, 75, 100, 124, 125, 4000)


@pytest.mark.parametrize(
    "function, expected",
    [
        # c = 100, w = 51. LINEAR: edges c - 0.5 ∓ (w - 1)/2 = 74.5 and 124.5, ((x - 99.5)/50 + 0.5).
        ("LINEAR", [0.0, 0.0, 0.01, 0.51, 0.99, 1.0, 1.0]),
        # LINEAR_EXACT: edges c ∓ w/2 = 74.5 and 125.5, ((x - 100)/51 + 0.5).
        ("LINEAR_EXACT", [0.0, 0.0, 0.5 / 51, 0.5, 24 / 51 + 0.5, 1 - 0.5 / 51, 1.0]),
        # SIGMOID: 1 / (1 + exp(-4 (x - c) / w)).
        ("SIGMOID", [1 / (1 + np.exp(-4 * (x - 100) / 51)) for x in WINDOW_POINTS]),
    ],
)
def test_window_follows_the_exact_formulas_of_ps3_3_c_11_2(make_dicom, function, expected):
    stored = np.array([WINDOW_POINTS], dtype=np.uint16)
    film = read_film(make_dicom(stored, bits_stored=12, WindowCenter=100, WindowWidth=51, VOILUTFunction=function))
    np.testing.assert_allclose(film.pixels[0], expected, atol=1e-6)
    assert film.metadata["window"] == (100.0, 51.0)


def test_linear_window_matches_pydicoms_apply_windowing():
    from pydicom.pixels import apply_windowing

    x = np.arange(0, 4096, dtype=np.uint16)
    ds = dicom_dataset(x[None, :], bits_stored=12, window=(1500, 700))
    reference = apply_windowing(x, ds) / 4095.0
    np.testing.assert_allclose(apply_window(x, 1500, 700), reference, atol=1e-6)


def test_window_of_width_one_is_a_step():
    out = apply_window(np.array([9, 10, 11], dtype=np.float32), center=10.0, width=1.0)
    np.testing.assert_array_equal(out, [0.0, 1.0, 1.0])


def test_only_the_first_of_several_windows_is_used(make_dicom):
    stored = np.array([[0, 100, 200]], dtype=np.uint16)
    film = read_film(make_dicom(stored, bits_stored=12, WindowCenter=[100, 2000], WindowWidth=[201, 10]))
    assert film.metadata["window"] == (100.0, 201.0)
    # edges 99.5 ∓ 100: -0.5 and 199.5
    np.testing.assert_allclose(film.pixels[0], [0.0025, 0.5025, 1.0], atol=1e-6)


def test_a_window_that_saturates_everything_falls_back_to_min_max(make_dicom, caplog):
    stored = np.array([[10, 20, 30]], dtype=np.uint16)
    with caplog.at_level(logging.WARNING, logger="cxrviewer.io"):
        film = read_film(make_dicom(stored, WindowCenter=30000, WindowWidth=10))
    np.testing.assert_allclose(film.pixels[0], [0.0, 0.5, 1.0], atol=1e-6)
    assert film.metadata["voi"] == "minmax" and film.metadata["window"] is None
    assert "same value" in caplog.text


@pytest.mark.parametrize("width", [0, -5, 0.5])
def test_an_invalid_window_width_is_ignored(make_dicom, width, caplog):
    stored = np.array([[10, 20, 30]], dtype=np.uint16)
    with caplog.at_level(logging.WARNING, logger="cxrviewer.io"):
        film = read_film(make_dicom(stored, WindowCenter=20, WindowWidth=width))
    assert film.metadata["voi"] == "minmax"
    np.testing.assert_allclose(film.pixels[0], [0.0, 0.5, 1.0], atol=1e-6)
    assert "ignoring window" in caplog.text


# ----------------------------------------------------------------------- LUT sequences
def test_voi_lut_sequence_is_preferred_over_the_window(make_dicom):
    stored = np.array([[0, 1, 2, 3]], dtype=np.uint8)
    voi = lut_item([0, 4095, 1000, 3000], first_map=0, bits=12)  # non-monotonic on purpose
    film = read_film(make_dicom(stored, voi_lut=voi, window=(1, 2)))
    np.testing.assert_allclose(film.pixels[0], [0.0, 1.0, 1000 / 4095, 3000 / 4095], atol=1e-6)
    assert film.metadata["voi"] == "lut-sequence" and film.metadata["window"] is None


def test_a_voi_lut_wider_than_the_data_clips_and_never_fails(make_dicom):
    """Weasis #373: the LUT's input range exceeds the data's; values outside map to the ends."""
    table = list(range(0, 65536, 16))  # 4096 entries from -1000: input -1000..3095
    stored = np.array([[0, 5, 10, 4000]], dtype=np.uint16)  # 4000 lies past the table's end
    voi = lut_item(table, first_map=-1000, bits=16)
    film = read_film(make_dicom(stored, bits_stored=12, RescaleSlope=1, RescaleIntercept=-1500, VOILUTSequence=[voi]))
    # modality = stored - 1500 = [-1500, -1495, -1490, 2500]; the first three are below first_map
    expected = [0.0, 0.0, 0.0, table[2500 + 1000] / 65535]
    np.testing.assert_allclose(film.pixels[0], expected, atol=1e-6)


def test_a_lut_that_declares_16_bits_but_holds_12_spans_the_full_range():
    lut = Lut(data=np.array([0, 2048, 4095]), first_map=0, bits=16)
    out, facts = display_pixels(np.array([[0, 1, 2]], dtype=np.uint16), GrayscaleParams(voi_lut=lut))
    np.testing.assert_allclose(out[0], [0.0, 2048 / 4095, 1.0], atol=1e-6)
    assert facts.voi == "lut-sequence"


def test_modality_lut_sequence_then_window(make_dicom):
    stored = np.array([[0, 1, 2, 3]], dtype=np.uint16)
    mlut = lut_item([100, 200, 300, 400], first_map=0, bits=16)
    film = read_film(make_dicom(stored, bits_stored=12, modality_lut=mlut, window=(250.5, 201)))
    # modality [100, 200, 300, 400]; LINEAR c-0.5=250, w-1=200: edges 150 and 350
    np.testing.assert_allclose(film.pixels[0], [0.0, 0.25, 0.75, 1.0], atol=1e-6)


def test_a_broken_lut_is_ignored_not_fatal(make_dicom, caplog):
    stored = np.array([[0, 1, 2]], dtype=np.uint8)
    broken = lut_item(None, descriptor=[3, 0, 16])  # no LUTData
    with caplog.at_level(logging.WARNING, logger="cxrviewer.io"):
        film = read_film(make_dicom(stored, voi_lut=broken))
    assert film.metadata["voi"] == "minmax"
    assert "VOILUTSequence" in caplog.text


# ---------------------------------------------------------------- inversion, exactly once
@pytest.mark.parametrize(
    "photometric, shape, inverted",
    [
        ("MONOCHROME2", None, False),
        ("MONOCHROME2", "IDENTITY", False),
        ("MONOCHROME2", "INVERSE", True),
        ("MONOCHROME1", None, True),
        ("MONOCHROME1", "INVERSE", True),  # the pair the DX/CR standard requires: ONE inversion
        ("MONOCHROME1", "IDENTITY", True),  # contradictory: Photometric Interpretation wins
    ],
)
def test_inversion_happens_exactly_once(make_dicom, photometric, shape, inverted):
    stored = np.array([[0, 100, 200, 300]], dtype=np.uint16)
    film = read_film(make_dicom(stored, photometric=photometric, bits_stored=12, WindowCenter=150.5, WindowWidth=301,
                                PresentationLUTShape=shape))
    windowed = np.array([0.0, 1 / 3, 2 / 3, 1.0])
    np.testing.assert_allclose(film.pixels[0], 1.0 - windowed if inverted else windowed, atol=1e-6)
    assert film.metadata["inverted"] is inverted


def test_monochrome1_with_a_voi_lut_is_inverted_after_the_lut():
    lut = Lut(data=np.array([0, 10, 255]), first_map=0, bits=8)
    out, facts = display_pixels(np.array([[0, 1, 2]], dtype=np.uint8), GrayscaleParams(photometric="MONOCHROME1", voi_lut=lut))
    np.testing.assert_allclose(out[0], [1.0, 1 - 10 / 255, 0.0], atol=1e-6)
    assert facts.inverted


# ------------------------------------------------------------------------ other forms
def test_multi_frame_shows_the_first_frame_and_warns(make_dicom, caplog):
    frames = np.stack([np.full((4, 5), v, dtype=np.uint16) for v in (0, 1000, 2000)])
    frames[0, 0, 0] = 4000  # frame 0 is not constant
    with caplog.at_level(logging.WARNING, logger="cxrviewer.io"):
        film = read_film(make_dicom(frames, bits_stored=12))
    assert film.pixels.shape == (4, 5) and film.metadata["frames"] == 3
    assert film.pixels[0, 0] == 1.0 and film.pixels[1, 1] == 0.0
    assert "3 frames" in caplog.text


def test_rgb_dicom_becomes_luma(make_dicom):
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [0, 0, 0]]], dtype=np.uint8)
    film = read_film(make_dicom(rgb, photometric="RGB"))
    np.testing.assert_allclose(film.pixels[0], [0.299, 0.587, 0.114, 1.0, 0.0], atol=1e-6)
    assert film.metadata["photometric"] == "RGB" and film.metadata["voi"] == "none"


def test_no_preamble_synthetic_file_reads(make_dicom):
    path = make_dicom(ramp(12), bits_stored=12, preamble=False, name="IM0001")
    assert path.read_bytes()[:2] == b"\x08\x00"
    film = read_film(path)
    assert (np.diff(film.pixels[0]) > 0).all()
    assert film.metadata["transfer_syntax"] == "1.2.840.10008.1.2"


def test_pixel_spacing_prefers_pixel_spacing_then_imager_pixel_spacing(make_dicom):
    px = ramp(8)
    both = read_film(make_dicom(px, name="a.dcm", PixelSpacing=[0.2, 0.25], ImagerPixelSpacing=[0.1, 0.1]))
    imager = read_film(make_dicom(px, name="b.dcm", ImagerPixelSpacing=[0.139, 0.14]))
    bad = read_film(make_dicom(px, name="c.dcm", PixelSpacing=[0.0, -1.0]))
    assert both.pixel_spacing == pytest.approx((0.2, 0.25))
    assert imager.pixel_spacing == pytest.approx((0.139, 0.14))
    assert bad.pixel_spacing is None


def test_no_identifying_value_reaches_metadata_logs_or_errors(make_dicom, tmp_path, caplog):
    good = make_dicom(ramp(8), name="good.dcm")
    with caplog.at_level(logging.DEBUG):
        film = read_film(good)
        broken = tmp_path / "broken.dcm"
        broken.write_bytes(good.read_bytes()[:-100])
        with pytest.raises(CxrError) as info:
            read_film(broken)
    text = repr(dict(film.metadata)) + caplog.text + str(info.value)
    for secret in PHI_VALUES:
        assert secret not in text
    assert not {"PatientName", "PatientID", "PatientBirthDate"} & set(film.metadata)


# ----------------------------------------------------------------------------- errors
def test_a_dicom_without_pixel_data_is_unsupported(make_dicom):
    path = make_dicom(ramp(8), sop_class=BASIC_TEXT_SR, PixelData=None)
    with pytest.raises(UnsupportedDicomError, match="no image .*report or a presentation state"):
        read_film(path)


def test_an_image_storage_object_without_pixel_data_is_called_damaged(make_dicom):
    path = make_dicom(ramp(8), PixelData=None)  # Secondary Capture *Image* Storage
    with pytest.raises(UnreadableImageError, match="damaged or truncated"):
        read_film(path)


def test_an_unknown_transfer_syntax_is_unsupported_and_named(make_dicom):
    from pydicom.encaps import encapsulate

    path = make_dicom(ramp(8), transfer_syntax="1.2.3.4.5.6.7", pixel_data=encapsulate([b"\x00" * 64]))
    with pytest.raises(UnsupportedDicomError, match=r"1\.2\.3\.4\.5\.6\.7"):
        read_film(path)


def test_a_video_transfer_syntax_is_unsupported_and_named(make_dicom):
    from pydicom.encaps import encapsulate

    path = make_dicom(ramp(8), transfer_syntax="1.2.840.10008.1.2.4.100", pixel_data=encapsulate([b"\x00" * 64]))
    with pytest.raises(UnsupportedDicomError, match="MPEG2"):
        read_film(path)


def test_huge_rows_and_columns_are_refused_before_decoding(make_dicom, monkeypatch):
    import pydicom.pixels

    def must_not_decode(*args, **kwargs):
        raise AssertionError("decoded a bomb")

    monkeypatch.setattr(pydicom.pixels, "pixel_array", must_not_decode)
    path = make_dicom(ramp(8), Rows=65535, Columns=65535)
    t0 = time.perf_counter()
    with pytest.raises(UnreadableImageError, match="megapixel limit"):
        read_film(path)
    assert time.perf_counter() - t0 < 1.0


def _jpeg_header(width: int, height: int) -> bytes:
    """SOI, a baseline SOF0 declaring width × height, an SOS, then EOI: no real image data."""
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    sos = b"\xff\xda" + struct.pack(">HB", 8, 1) + b"\x01\x00\x00\x3f\x00"
    return b"\xff\xd8" + sof + sos + b"\x00" * 16 + b"\xff\xd9"


def test_a_codestream_larger_than_rows_and_columns_is_refused(make_dicom):
    from pydicom.encaps import encapsulate

    bomb = _jpeg_header(60000, 60000)
    path = make_dicom(np.zeros((8, 8), np.uint8), transfer_syntax=JPEGBaseline8Bit, pixel_data=encapsulate([bomb]))
    with pytest.raises(UnreadableImageError, match="compressed DICOM frame is 60000 × 60000"):
        read_film(path)


def test_the_pixel_limit_can_be_changed_by_environment(make_dicom, monkeypatch):
    path = make_dicom(np.zeros((40, 50), np.uint8) + np.arange(50, dtype=np.uint8))
    monkeypatch.setenv("CXRVIEWER_MAX_PIXELS", "1999")
    with pytest.raises(UnreadableImageError, match="CXRVIEWER_MAX_PIXELS"):
        read_film(path)
    monkeypatch.setenv("CXRVIEWER_MAX_PIXELS", "2000")
    assert read_film(path).pixels.shape == (40, 50)


def test_a_missing_decoder_names_the_package_to_install(dicom_corpus, monkeypatch):
    import pydicom.pixels

    real_get_decoder = pydicom.pixels.get_decoder

    class NoPlugins:
        def __init__(self, uid):
            self.wrapped = real_get_decoder(uid)

        is_available = False
        available_plugins: tuple = ()

    monkeypatch.setattr(pydicom.pixels, "get_decoder", NoPlugins)
    with pytest.raises(MissingCodecError, match="pip install pylibjpeg-openjpeg"):
        read_film(dicom_corpus["j2k_mono1"])
    with pytest.raises(MissingCodecError, match="pip install pylibjpeg-libjpeg"):
        read_film(dicom_corpus["jpeg_baseline_chest"])


def test_a_plugin_whose_dependencies_fail_while_decoding_becomes_missing_codec(dicom_corpus, monkeypatch):
    """A decoder that had a plugin when asked, and has none when it fails (a plugin whose
    dependencies break on first use): pydicom's RuntimeError is a missing codec, judged by the
    decoder's public ``available_plugins``, not by the message's words. Another RuntimeError with
    plugins still there is damaged data."""
    import pydicom.pixels

    real_get_decoder = pydicom.pixels.get_decoder

    class Fading:
        def __init__(self, uid):
            self.wrapped = real_get_decoder(uid)
            self.plugins = tuple(self.wrapped.available_plugins)

        is_available = True

        @property
        def available_plugins(self):
            return self.plugins

    decoders = []

    def get_decoder(uid):
        decoders.append(Fading(uid))
        return decoders[-1]

    def fail(*args, **kwargs):
        decoders[-1].plugins = ()
        raise RuntimeError("Unable to decompress: whatever pydicom says")

    monkeypatch.setattr(pydicom.pixels, "get_decoder", get_decoder)
    monkeypatch.setattr(pydicom.pixels, "pixel_array", fail)
    with pytest.raises(MissingCodecError, match="pip install"):
        read_film(dicom_corpus["j2k_mono1"])

    def damaged(*args, **kwargs):
        raise RuntimeError("all plugins are missing dependencies")  # the old words, plugins still there

    monkeypatch.setattr(pydicom.pixels, "pixel_array", damaged)
    with pytest.raises(UnreadableImageError, match="damaged"):
        read_film(dicom_corpus["j2k_mono1"])


@pytest.mark.filterwarnings("ignore:End of file reached:UserWarning")  # pydicom sees the cut, says so
@pytest.mark.parametrize("kind, role", corpus_cases("jpeg_baseline_chest", "nih_dx", "j2k_mono1", "no_preamble_chest"))
def test_a_truncated_dicom_is_damaged_not_image_less(dicom_corpora, tmp_path, kind, role):
    data = dicom_corpora[kind][role].read_bytes()
    cut = tmp_path / f"{role}.dcm"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(UnreadableImageError, match="damaged|truncated"):
        read_film(cut)


def test_absurd_rescale_values_never_give_non_finite_pixels(make_dicom, caplog):
    stored = np.array([[0, 1000, 4_000_000_000]], dtype=np.uint32)
    with caplog.at_level(logging.WARNING, logger="cxrviewer.io"):
        rejected = read_film(make_dicom(stored, name="huge.dcm", RescaleSlope="1e35", RescaleIntercept=0))
        assert "ignoring an unusable Rescale Slope/Intercept" in caplog.text
        overflow = read_film(make_dicom(stored, name="overflow.dcm", RescaleSlope="1e29", RescaleIntercept=0))
        assert "overflow" in caplog.text  # 4e9 × 1e29 is beyond float32
    for film in (rejected, overflow):
        assert np.isfinite(film.pixels).all()
        np.testing.assert_allclose(film.pixels[0], stored[0] / 4e9, atol=1e-6)


def test_the_codestream_parsers_read_the_headers(dicom_corpus):
    import pydicom
    from pydicom.encaps import generate_frames

    from cxrviewer.io.sniff import j2k_info, jpeg_info

    real = dicom_corpus.real
    for role, parse, size in [("j2k_mono1", j2k_info, (1760, 1760) if real else (512, 512)),
                              ("jpeg_baseline_chest", jpeg_info, (1024, 1024)),
                              ("jpeg_lossless_mlut", jpeg_info, (1976, 1576) if real else (512, 512))]:
        ds = pydicom.dcmread(dicom_corpus[role])
        frame = next(generate_frames(ds.PixelData, number_of_frames=1))
        info = parse(frame)
        assert (info.width, info.height) == size, role


def test_a_malformed_window_value_costs_the_window_not_the_film(make_dicom, caplog):
    stored = np.array([[10, 20, 30]], dtype=np.uint16)
    path = make_dicom(stored, WindowCenter="1234", WindowWidth="5678")
    path.write_bytes(path.read_bytes().replace(b"1234", b"ab#d"))  # pydicom will not write it
    with caplog.at_level(logging.WARNING, logger="cxrviewer.io"):
        film = read_film(path)
    assert "not a pair of numbers" in caplog.text
    assert film.metadata["voi"] == "minmax"
    np.testing.assert_allclose(film.pixels[0], [0.0, 0.5, 1.0], atol=1e-6)


def test_palette_color_goes_through_its_palette_to_luma(make_dicom):
    ramp16 = np.linspace(0, 65535, 256).astype("<u2")
    zeros = np.zeros(256, "<u2")
    stored = np.array([[0, 128, 255]], dtype=np.uint8)
    path = make_dicom(
        stored, photometric="PALETTE COLOR",
        RedPaletteColorLookupTableDescriptor=[256, 0, 16], RedPaletteColorLookupTableData=ramp16.tobytes(),
        GreenPaletteColorLookupTableDescriptor=[256, 0, 16], GreenPaletteColorLookupTableData=zeros.tobytes(),
        BluePaletteColorLookupTableDescriptor=[256, 0, 16], BluePaletteColorLookupTableData=ramp16.tobytes(),
    )
    film = read_film(path)
    expected = (0.299 + 0.114) * ramp16[[0, 128, 255]] / 65535.0
    np.testing.assert_allclose(film.pixels[0], expected, atol=1e-6)
    assert film.metadata["voi"] == "none"


def test_palette_color_without_its_palette_is_damaged(make_dicom):
    with pytest.raises(UnreadableImageError, match="colour palette is missing or damaged"):
        read_film(make_dicom(np.array([[0, 1]], dtype=np.uint8), photometric="PALETTE COLOR"))
