"""File-system failures get specific messages; folder scanning is deterministic; DICOM sniffing."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

import cxrviewer.io.files as files_module
from cxrviewer.errors import UnreadableImageError
from cxrviewer.io import MAX_PIXELS, SUPPORTED_SUFFIXES, is_dicom, list_films, read_film
from cxrviewer.io.limits import max_pixels


def tiny_png(path: Path) -> Path:
    import cv2

    ok, buf = cv2.imencode(".png", np.arange(12, dtype=np.uint8).reshape(3, 4))
    path.write_bytes(buf.tobytes())
    return path


# ------------------------------------------------------------------ file-system errors
def test_missing_file(tmp_path):
    with pytest.raises(UnreadableImageError, match="no such file"):
        read_film(tmp_path / "absent.png")


def test_path_through_a_file(tmp_path):
    f = tiny_png(tmp_path / "a.png")
    with pytest.raises(UnreadableImageError, match="no such file"):
        read_film(f / "b.png")


def test_directory_named_like_an_image(tmp_path):
    (tmp_path / "x.png").mkdir()
    with pytest.raises(UnreadableImageError, match="is a folder, not an image file"):
        read_film(tmp_path / "x.png")


def test_broken_symlink(tmp_path):
    link = tmp_path / "film.png"
    link.symlink_to(tmp_path / "gone.png")
    with pytest.raises(UnreadableImageError, match="broken symbolic link .*gone.png"):
        read_film(link)


def test_symlink_loop(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.symlink_to(b)
    b.symlink_to(a)
    with pytest.raises(UnreadableImageError, match="loops"):
        read_film(a)


def test_working_symlink_reads(tmp_path):
    target = tiny_png(tmp_path / "real.png")
    link = tmp_path / "link.png"
    link.symlink_to(target)
    assert read_film(link).pixels.shape == (3, 4)


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.dcm"
    path.touch()
    with pytest.raises(UnreadableImageError, match=r"empty \(0 bytes\)"):
        read_film(path)


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(UnreadableImageError, match="not a regular file"):
        read_film(fifo)


def test_permission_denied_is_reported(tmp_path, monkeypatch):
    path = tiny_png(tmp_path / "locked.png")

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(files_module, "open", denied, raising=False)
    with pytest.raises(UnreadableImageError, match="permission denied"):
        read_film(path)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file")
def test_permission_denied_for_real(tmp_path):
    path = tiny_png(tmp_path / "locked.png")
    path.chmod(0)
    try:
        with pytest.raises(UnreadableImageError, match="permission denied"):
            read_film(path)
    finally:
        path.chmod(0o644)


def test_a_path_with_a_nul_character(tmp_path):
    with pytest.raises(UnreadableImageError, match="not a valid file path"):
        read_film(str(tmp_path / "a\x00b.png"))


def test_a_non_path_argument_is_a_type_error():
    with pytest.raises(TypeError):
        read_film(42)  # type: ignore[arg-type]


# ------------------------------------------------------------------------- sniffing
def test_is_dicom_by_content(dicom_corpus, nih_images, tmp_path, make_dicom):
    assert is_dicom(dicom_corpus["j2k_mono1"])
    assert is_dicom(dicom_corpus["no_preamble_chest"])  # no preamble
    assert is_dicom(make_dicom(np.zeros((2, 2), np.uint8), name="bare", preamble=False))
    assert not is_dicom(nih_images[0])
    assert not is_dicom(tmp_path / "missing.dcm")
    assert not is_dicom(tmp_path)
    text = tmp_path / "t.dcm"
    text.write_text("not dicom at all")
    assert not is_dicom(text)


def test_supported_suffixes_and_limit_constants():
    assert SUPPORTED_SUFFIXES == (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm", ".dicom")
    assert MAX_PIXELS == 50_000_000


@pytest.mark.parametrize("value, expected", [("1000", 1000), ("2e7", 20_000_000), ("60_000_000", 60_000_000),
                                             ("", MAX_PIXELS), ("lots", MAX_PIXELS), ("0", MAX_PIXELS), ("-5", MAX_PIXELS)])
def test_max_pixels_reads_the_environment(monkeypatch, value, expected, caplog):
    monkeypatch.setenv("CXRVIEWER_MAX_PIXELS", value)
    with caplog.at_level(logging.WARNING, logger="cxrviewer.io"):
        assert max_pixels() == expected
    assert ("ignoring CXRVIEWER_MAX_PIXELS" in caplog.text) == (value not in ("", "1000", "2e7", "60_000_000"))


# ------------------------------------------------------------------------- scanning
@pytest.fixture
def tree(tmp_path, make_dicom) -> Path:
    root = tmp_path / "films"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / ".cache").mkdir()
    (root / "x.png").mkdir()  # a folder named like an image
    for name in ["b.png", "A.JPG", "c.DCM", "d.tiff", "sub/e.bmp", "sub/deeper/f.dicom", ".hidden.png", ".cache/g.png"]:
        tiny_png(root / name)
    (root / "notes.txt").write_text("not a film")
    (root / "README").write_text("no suffix, not DICOM")
    make_dicom(np.zeros((2, 2), np.uint8), name="films/IM0001", preamble=False)
    make_dicom(np.zeros((2, 2), np.uint8), name="films/1.2.840.113619.2.55.3.7")
    make_dicom(np.zeros((2, 2), np.uint8), name="films/DICOMDIR")
    return root


def names(paths: list[Path], root: Path) -> list[str]:
    return [p.relative_to(root).as_posix() for p in paths]


def test_a_folder_gives_supported_files_and_suffixless_dicoms_sorted(tree):
    assert names(list_films([tree]), tree) == ["1.2.840.113619.2.55.3.7", "A.JPG", "IM0001", "b.png", "c.DCM", "d.tiff"]


def test_recursive_scan_descends_but_skips_hidden_folders(tree):
    assert names(list_films([tree], recursive=True), tree) == [
        "1.2.840.113619.2.55.3.7", "A.JPG", "IM0001", "b.png", "c.DCM", "d.tiff", "sub/deeper/f.dicom", "sub/e.bmp",
    ]


def test_named_files_are_always_kept_in_order_and_deduplicated(tree):
    inputs = [tree / "notes.txt", tree / "missing.png", tree / "b.png", tree, str(tree / "b.png")]
    out = names(list_films(inputs), tree)
    assert out[:3] == ["notes.txt", "missing.png", "b.png"]
    assert out.count("b.png") == 1 and len(out) == 8


def test_a_single_path_is_accepted(tree):
    assert list_films(tree / "b.png") == [tree / "b.png"]
    assert len(list_films(str(tree))) == 6


def test_scanning_is_deterministic(tree):
    assert list_films([tree], recursive=True) == list_films([tree], recursive=True)


def test_symlinked_folder_loops_are_not_followed(tree):
    (tree / "sub" / "loop").symlink_to(tree, target_is_directory=True)
    found = list_films([tree], recursive=True)
    assert len(found) == 8


def test_an_internal_bug_still_leaves_as_a_cxr_error_and_is_logged_with_its_traceback(tmp_path, monkeypatch, caplog):
    import cxrviewer.io as io_module

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(io_module, "read_raster", broken)
    with caplog.at_level(logging.ERROR, logger="cxrviewer.io"):
        with pytest.raises(UnreadableImageError, match="internal error .*bug in cxrviewer") as info:
            read_film(tiny_png(tmp_path / "a.png"))
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    assert "Traceback" in caplog.text and "ZeroDivisionError" in caplog.text
