"""Fuzzing read_film with damaged copies of the real files: a Film or a CxrError, nothing else.

Each example takes a film (the generated DICOM corpus, two NIH samples, and the real files of
../shared/data where present) and truncates it, flips bytes in it, or
splices the head of one file onto the body of another, writes the result under a suffix, and
reads it. The contract checked: ``read_film`` returns a valid Film (float32, 2-D, finite, in
[0, 1]) or raises a CxrError that is not the "internal error" safety net (which would mean a bug
slipped past the guarded third-party calls).

Run longer with e.g. ``CXR_FUZZ_EXAMPLES=5000 pytest tests/io/test_fuzz.py``.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pytest
from dicomfactory import REAL_DICOMS, build_dicom, lut_item
from helpers import SAMPLES, SHARED_DATA
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cxrviewer.errors import CxrError
from cxrviewer.io import read_film
from cxrviewer.types import Film

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),  # pydicom warns about the damage it sees
]

EXAMPLES = int(os.environ.get("CXR_FUZZ_EXAMPLES", "60"))


@pytest.fixture(scope="module")
def sources(generated_dicoms) -> list[Path]:
    films = sorted(generated_dicoms.files.values()) + sorted(SAMPLES.glob("*.png"))[:2]
    if SHARED_DATA.is_dir():
        small = sorted((SHARED_DATA / "nih" / "small512").glob("*"))[:1]
        films += [SHARED_DATA / "dicom" / name for name in REAL_DICOMS] + small
    return films


_CACHE: dict[Path, bytes] = {}
_COUNTER = itertools.count()


def _bytes(path: Path) -> bytes:
    if path not in _CACHE:
        _CACHE[path] = path.read_bytes()
    return _CACHE[path]


@st.composite
def damaged_files(draw, sources: list[Path]) -> tuple[bytes, str, str]:
    """(content, suffix, description) of a damaged copy of one of ``sources``."""
    source = draw(st.sampled_from(sources))
    data = _bytes(source)
    kind = draw(st.sampled_from(["truncate", "flip", "flip-header", "splice"]))
    if kind == "truncate":
        cut = draw(st.integers(1, len(data) - 1))
        out, what = data[:cut], f"{source.name} cut at {cut}"
    elif kind in ("flip", "flip-header"):
        limit = len(data) if kind == "flip" else min(len(data), 2048)
        flips = draw(st.lists(st.tuples(st.integers(0, limit - 1), st.integers(1, 255)), min_size=1, max_size=24))
        buf = bytearray(data)
        for pos, mask in flips:
            buf[pos] ^= mask
        out, what = bytes(buf), f"{source.name} with {len(flips)} flipped bytes"
    else:
        other = _bytes(draw(st.sampled_from(sources)))
        head = draw(st.integers(1, min(len(data), 4096)))
        start = draw(st.integers(0, len(other) - 1))
        out, what = data[:head] + other[start:], f"{source.name}[:{head}] + other[{start}:]"
    suffix = draw(st.sampled_from([source.suffix, source.suffix, ".png", ".dcm", ".jpg", ""]))
    return out, suffix, what


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_damaged_files_give_a_film_or_a_cxr_error(fuzz_dir, sources, data):
    content, suffix, what = data.draw(damaged_files(sources))
    path = fuzz_dir / f"case{next(_COUNTER)}{suffix}"
    path.write_bytes(content)
    try:
        film = read_film(path)
    except CxrError as exc:
        assert "bug in cxrviewer" not in str(exc), f"{what}: {exc!r} from {exc.__cause__!r}"
        assert str(exc), what
    else:
        assert isinstance(film, Film), what
        px = film.pixels
        assert px.dtype == np.float32 and px.ndim == 2 and px.size > 0, what
        assert np.isfinite(px).all() and px.min() >= 0.0 and px.max() <= 1.0, what
        assert film.metadata["format"] in {"png", "jpeg", "tiff", "bmp", "dicom"}, what
    finally:
        path.unlink()


_WEIRD_TEXT = st.sampled_from(["", " ", "abc", "1e400", "-1e400", "nan", "inf", "0", "-0", "1\\2", "\\", "65536",
                               "-32769", "3.5", "1e30", "MONOCHROME1", "INVERSE", "SIGMOID", "YBR_FULL"])
_NUMBER = st.one_of(st.integers(-70000, 70000), st.floats(allow_nan=True, allow_infinity=True), _WEIRD_TEXT)


@st.composite
def weird_headers(draw) -> dict:
    """Image-pixel and VOI attributes with out-of-range, contradictory or malformed values."""
    elements: dict = {}
    for keyword in ("WindowCenter", "WindowWidth", "RescaleSlope", "RescaleIntercept"):
        if draw(st.booleans()):
            elements[keyword] = str(draw(_NUMBER))[:16]
    for keyword in ("BitsStored", "HighBit", "NumberOfFrames"):
        if draw(st.booleans()):
            elements[keyword] = draw(st.integers(0, 64)) if keyword != "NumberOfFrames" else str(draw(_NUMBER))[:12]
    for keyword, choices in (("PhotometricInterpretation", ["MONOCHROME1", "MONOCHROME2", "RGB", "PALETTE COLOR", "", "X"]),
                             ("PresentationLUTShape", ["INVERSE", "IDENTITY", "LIN OD", ""]),
                             ("VOILUTFunction", ["LINEAR", "LINEAR_EXACT", "SIGMOID", "bogus", ""])):
        if draw(st.booleans()):
            elements[keyword] = draw(st.sampled_from(choices))
    for keyword in ("VOILUTSequence", "ModalityLUTSequence"):
        if draw(st.booleans()):
            descriptor = [draw(st.integers(0, 65535)) for _ in range(draw(st.integers(0, 4)))]
            data = draw(st.lists(st.integers(0, 65535), max_size=40))
            elements[keyword] = [lut_item(data, descriptor=descriptor)]
    return elements


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(elements=weird_headers(), signed=st.booleans())
def test_weird_header_values_give_a_film_or_a_cxr_error(fuzz_dir, elements, signed):

    stored = (np.arange(48).reshape(6, 8) * 37 - (600 if signed else 0)).astype(np.int16 if signed else np.uint16)
    path = fuzz_dir / f"header{next(_COUNTER)}.dcm"
    try:
        build_dicom(path, stored, **elements)
    except Exception:  # noqa: BLE001 - pydicom refused to write this combination: nothing to read
        return
    try:
        film = read_film(path)
    except CxrError as exc:
        assert "bug in cxrviewer" not in str(exc), f"{elements}: {exc!r} from {exc.__cause__!r}"
    else:
        px = film.pixels
        assert px.dtype == np.float32 and px.ndim == 2, elements
        assert np.isfinite(px).all() and px.min() >= 0.0 and px.max() <= 1.0, elements
    finally:
        path.unlink(missing_ok=True)
