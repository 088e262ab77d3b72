"""Shared fixtures. Sets the Qt platform to offscreen before anything imports Qt."""

from __future__ import annotations

import os
import re
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest

# tests/ is on sys.path through `pythonpath` in pyproject.toml's pytest settings.
from helpers import SHARED_DATA, synthetic_pixels  # noqa: E402
from tinymodel import build_tiny_model, tiny_info  # noqa: E402


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` from the repository root; the tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not here")
    return SHARED_DATA


@pytest.fixture(scope="session")
def nih_images(shared_data) -> list[Path]:
    return sorted((shared_data / "nih" / "images").glob("*.png"))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A 64 px, 14-label contract model made with onnx.helper (demo=true)."""
    return build_tiny_model(tmp_path_factory.mktemp("model") / "tiny.onnx", tiny_info(64))


@pytest.fixture(scope="session")
def classifier(tiny_model):
    from cxrviewer.model import Classifier

    return Classifier.load(tiny_model, device="cpu")


@pytest.fixture
def synthetic_film():
    from cxrviewer.types import Film

    return Film(synthetic_pixels(), source=Path("synthetic.png"), metadata={"format": "synthetic"})


# In CI (CI=true) a test skipped because a tool or the shared data is missing is a broken CI
# setup, not a pass: the run fails and names them. On a developer's machine they stay skips.
_MISSING = re.compile(r"not installed|is not here|is missing|needs \d+ NIH")
_skipped_for_missing: list[str] = []


def pytest_runtest_logreport(report) -> None:
    if report.skipped and os.environ.get("CI"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if _MISSING.search(str(reason)):
            _skipped_for_missing.append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session, exitstatus) -> None:
    if _skipped_for_missing:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter) -> None:
    if _skipped_for_missing:
        terminalreporter.section("skipped for a missing tool or data set (a failure in CI)")
        for line in _skipped_for_missing:
            terminalreporter.write_line(line)
