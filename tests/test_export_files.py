"""Exported files: the usual permissions (the umask, not mkstemp's 0600), the format the
extension names (a mismatch is an error), no folders created unless asked."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cxrviewer.cli import main
from cxrviewer.errors import OutputFormatError
from cxrviewer.export import output_format, write_png
from cxrviewer.storage import atomic_write_bytes, current_umask
from helpers import synthetic_pixels, write_png as write_film_png

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def umask():
    """Set the process umask for a test, and restore it after."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda mask: os.umask(mask)
    os.umask(old)


@pytest.fixture
def film_png(tmp_path):
    return write_film_png(tmp_path / "film.png", synthetic_pixels(128, 128))


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask,expected", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    assert current_umask() == mask
    out = write_png(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8))
    assert mode(out) == expected
    assert mode(atomic_write_bytes(tmp_path / "b.csv", b"x\n")) == expected
    assert not list(tmp_path.glob("*.part"))


def test_a_replaced_file_keeps_its_permissions(tmp_path, umask):
    umask(0o022)
    target = tmp_path / "a.png"
    target.write_bytes(b"old")
    target.chmod(0o640)
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new" and mode(target) == 0o640


def test_the_cli_export_is_0644_under_umask_022(tmp_path, tiny_model, film_png):
    out = tmp_path / "e.png"
    proc = subprocess.run(
        [sys.executable, "-m", "cxrviewer", "export", str(film_png), "--out", str(out), "--model", str(tiny_model)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120,
        preexec_fn=lambda: os.umask(0o022),
    )
    assert proc.returncode == 0, proc.stderr
    assert mode(out) == 0o644


def test_the_format_follows_the_extension():
    assert output_format(Path("a.png")) == "png"
    assert output_format(Path("a.PNG"), "png") == "png"
    assert output_format(Path("a.dcm")) == "dicom-sc"
    assert output_format(Path("a.dcm"), "dicom-sr") == "dicom-sr"
    for path, fmt in (("e.jpg", None), ("x.png", "dicom-sc"), ("x.dcm", "png"), ("noext", None), ("x.png", "dicom-gsps")):
        with pytest.raises(OutputFormatError):
            output_format(Path(path), fmt)


@pytest.mark.parametrize("name,extra", [("e.jpg", []), ("x.png", ["--format", "dicom-sc"]), ("x.dcm", ["--format", "png"])])
def test_a_mismatched_extension_is_a_usage_error_and_writes_nothing(tmp_path, tiny_model, film_png, capsys, name, extra):
    out = tmp_path / name
    code = main(["export", str(film_png), "--out", str(out), "--model", str(tiny_model), *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "--format" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_a_missing_folder_is_an_error_unless_asked(tmp_path, tiny_model, film_png, capsys):
    out = tmp_path / "no" / "such" / "dir" / "e.png"
    code = main(["export", str(film_png), "--out", str(out), "--model", str(tiny_model)])
    err = capsys.readouterr().err
    assert code == 2 and "does not exist" in err and "--parents" in err, err
    assert not (tmp_path / "no").exists()
    assert main(["export", str(film_png), "--out", str(out), "--model", str(tiny_model), "--parents"]) == 0
    assert out.is_file()
