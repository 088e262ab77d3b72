"""The desktop app's packaging: the Linux menu entry, its installer, and what pyinstaller.spec keeps out.

Building the bundle takes half a minute and is checked by scripts/check_frozen.sh (CI runs it);
these tests catch the files that feed it breaking.
"""

from __future__ import annotations

import ast
import configparser
import os
import shutil
import struct
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from helpers import REPO

RESOURCES = REPO / "resources"
DESKTOP = RESOURCES / "cxrviewer.desktop"
ICONS = RESOURCES / "icons"


def read_desktop_entry(path: Path) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # keys are case-sensitive (Desktop Entry spec, "Basic format")
    parser.read_string(path.read_text(encoding="utf-8"))
    assert parser.sections()[0] == "Desktop Entry", "the first group must be [Desktop Entry]"
    return dict(parser["Desktop Entry"])


def png_size_of(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    return struct.unpack(">II", data[16:24])


def png_size(path: Path) -> tuple[int, int]:
    return png_size_of(path.read_bytes()[:24])


def test_desktop_entry_has_what_a_menu_needs():
    entry = read_desktop_entry(DESKTOP)
    assert entry["Type"] == "Application"
    for key in ("Name", "GenericName", "Comment", "Exec", "Icon"):
        assert entry.get(key, "").strip(), f"{key} is missing or empty"
    assert entry["Terminal"] == "false"
    # several files from a file manager open as one film list
    assert entry["Exec"].split()[-1] == "%F"
    categories = entry["Categories"].split(";")
    assert entry["Categories"].endswith(";") and "MedicalSoftware" in categories and "Graphics" in categories
    mimes = entry["MimeType"].split(";")
    assert entry["MimeType"].endswith(";")
    assert {"application/dicom", "image/png", "image/jpeg"} <= set(mimes)


def test_desktop_entry_runs_the_installed_gui_script():
    entry = read_desktop_entry(DESKTOP)
    gui_scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["gui-scripts"]
    program = entry["Exec"].split()[0]
    assert program in gui_scripts, f"Exec runs {program!r}, which pyproject does not install"
    assert entry.get("TryExec", program) == program


def test_desktop_entry_icon_is_shipped_at_freedesktop_sizes():
    icon = read_desktop_entry(DESKTOP)["Icon"]
    assert "/" not in icon and not icon.endswith((".png", ".svg")), "Icon must be a theme name"
    assert (ICONS / f"{icon}.svg").is_file()
    sizes = {}
    for png in ICONS.glob(f"{icon}-*.png"):
        declared = int(png.stem.rsplit("-", 1)[1])
        assert png_size(png) == (declared, declared), f"{png.name} is not {declared}x{declared}"
        sizes[declared] = png
    assert {16, 32, 48, 128, 256} <= set(sizes), f"hicolor sizes missing: have {sorted(sizes)}"


def test_windows_ico_and_macos_icns_hold_every_size():
    """The .ico (Windows launcher) and .icns (macOS app) that pyinstaller.spec picks per platform."""
    ico = (ICONS / "cxrviewer.ico").read_bytes()
    reserved, kind, count = struct.unpack("<HHH", ico[:6])
    assert (reserved, kind) == (0, 1)
    sides = set()
    for i in range(count):
        w, h, _, _, _, _, size, offset = struct.unpack("<BBBBHHII", ico[6 + 16 * i: 22 + 16 * i])
        side = w or 256
        assert offset + size <= len(ico) and png_size_of(ico[offset:offset + size]) == (side, side)
        sides.add(side)
    assert {16, 32, 48, 256} <= sides

    icns = (ICONS / "cxrviewer.icns").read_bytes()
    assert icns[:4] == b"icns" and struct.unpack(">I", icns[4:8])[0] == len(icns)
    entries, pos = {}, 8
    while pos < len(icns):
        kind, length = icns[pos:pos + 4], struct.unpack(">I", icns[pos + 4:pos + 8])[0]
        entries[kind] = png_size_of(icns[pos + 8:pos + length])
        pos += length
    assert pos == len(icns)
    assert entries[b"icp4"] == (16, 16) and entries[b"ic09"] == (512, 512) and entries[b"ic10"] == (1024, 1024)


def test_wheel_and_bundle_carry_the_desktop_entry():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    data = pyproject["tool"]["setuptools"]["package-data"]["cxrviewer.resources"]
    assert "*.desktop" in data and DESKTOP.parent == RESOURCES  # the wheel; the spec copies resources/ whole
    assert '(str(ROOT / "resources"), "resources")' in (REPO / "pyinstaller.spec").read_text()


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None, reason="desktop-file-utils is not installed")
def test_desktop_entry_passes_desktop_file_validate():
    proc = subprocess.run(["desktop-file-validate", str(DESKTOP)], capture_output=True, text=True)
    errors = [line for line in proc.stdout.splitlines() if ": hint: " not in line]
    assert proc.returncode == 0 and not errors, proc.stdout + proc.stderr


def spec_list(name: str) -> list[str]:
    """A list literal assigned at the top of pyinstaller.spec, read without running the spec."""
    tree = ast.parse((REPO / "pyinstaller.spec").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"pyinstaller.spec assigns no {name}")


def test_spec_keeps_tensorflow_and_training_out():
    never = spec_list("NEVER")
    assert {"tensorflow", "keras", "tf2onnx", "training"} <= set(never)
    assert not {"PySide6", "onnxruntime", "numpy", "pydicom", "cv2", "cxrviewer"} & set(never)
    spec = (REPO / "pyinstaller.spec").read_text()
    assert "excludes=NEVER" in spec and "raise SystemExit" in spec  # excluded, and asserted after analysis


# ------------------------------------------------------------------ scripts/install_desktop.sh
needs_sh = pytest.mark.skipif(sys.platform == "win32" or shutil.which("sh") is None, reason="needs a POSIX shell")


def fake_bundle(root: Path) -> Path:
    """What install_desktop.sh reads from dist/cxrviewer: the launcher and _internal/resources."""
    root.mkdir(parents=True)
    gui = root / "cxrviewer-gui"
    gui.write_text("#!/bin/sh\n")
    gui.chmod(0o755)
    res = root / "_internal" / "resources"
    shutil.copytree(ICONS, res / "icons")
    shutil.copy2(DESKTOP, res / DESKTOP.name)
    return root


def run_install(args: list[str], data_home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "XDG_DATA_HOME": str(data_home), "HOME": str(data_home.parent)}
    return subprocess.run(["sh", str(REPO / "scripts" / "install_desktop.sh"), *args], env=env,
                          capture_output=True, text=True, timeout=60)


@needs_sh
def test_install_desktop_points_the_entry_at_the_bundle(tmp_path):
    bundle = fake_bundle(tmp_path / "my apps" / "cxrviewer")  # a space: Exec must quote it
    share = tmp_path / "share"
    proc = run_install([str(bundle)], share)
    assert proc.returncode == 0, proc.stderr
    installed = share / "applications" / "cxrviewer.desktop"
    entry = read_desktop_entry(installed)
    gui = bundle / "cxrviewer-gui"
    assert entry["Exec"] == f'"{gui}" %F'
    assert entry["TryExec"] == str(gui)
    original = read_desktop_entry(DESKTOP)
    assert {k: v for k, v in entry.items() if k not in ("Exec", "TryExec")} == \
        {k: v for k, v in original.items() if k not in ("Exec", "TryExec")}
    icon = entry["Icon"]
    hicolor = share / "icons" / "hicolor"
    for png in ICONS.glob(f"{icon}-*.png"):
        n = png.stem.rsplit("-", 1)[1]
        assert (hicolor / f"{n}x{n}" / "apps" / f"{icon}.png").read_bytes() == png.read_bytes()
    assert (hicolor / "scalable" / "apps" / f"{icon}.svg").is_file()
    if shutil.which("desktop-file-validate"):
        check = subprocess.run(["desktop-file-validate", str(installed)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout

    proc = run_install(["--uninstall"], share)
    assert proc.returncode == 0, proc.stderr
    assert not installed.exists()
    assert not list(hicolor.glob(f"*/apps/{icon}.*"))


@needs_sh
def test_install_desktop_refuses_a_folder_that_is_not_a_bundle(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = run_install([str(tmp_path / "empty")], tmp_path / "share")
    assert proc.returncode != 0 and "cxrviewer-gui" in proc.stderr
    assert not (tmp_path / "share" / "applications" / "cxrviewer.desktop").exists()
