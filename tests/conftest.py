"""Shared fixtures. Sets the Qt platform to offscreen before anything imports Qt."""

from __future__ import annotations

import os
import re
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest

# tests/ is on sys.path through `pythonpath` in pyproject.toml's pytest settings.
from dicomfactory import CORPORA, DicomCorpus, make_generated_corpus, shared_corpus  # noqa: E402
from helpers import SAMPLES, SHARED_DATA, synthetic_pixels  # noqa: E402
from tinymodel import build_tiny_model, tiny_info  # noqa: E402

# the DICOM node tests' port and Orthanc (tests/nodefixtures.py); a module may define its own
pytest_plugins = ["nodefixtures"]


@pytest.fixture(autouse=True, scope="session")
def _engine_cache(tmp_path_factory):
    """The engine choices (cxrviewer.inference.choice) go to a folder of the test session's own,
    never the user's cache; subprocesses inherit it."""
    old = os.environ.get("CXRVIEWER_CACHE_DIR")
    os.environ["CXRVIEWER_CACHE_DIR"] = str(tmp_path_factory.mktemp("engine-cache"))
    yield
    if old is None:
        os.environ.pop("CXRVIEWER_CACHE_DIR", None)
    else:
        os.environ["CXRVIEWER_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` from the repository root, for tests that only add cases from it; no
    test may depend on it to run (issue #13): those that take it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not here")
    return SHARED_DATA


@pytest.fixture(scope="session")
def nih_samples() -> list[Path]:
    """The six real NIH films of ``resources/samples/`` (always in the repository)."""
    films = sorted(SAMPLES.glob("*.png"))
    assert len(films) == 6, f"resources/samples/ should hold 6 NIH films, found {len(films)}"
    return films


@pytest.fixture(scope="session")
def nih_images(nih_samples) -> list[Path]:
    """The NIH samples first, then the other NIH films of ``../shared/data`` where present."""
    names = {p.name for p in nih_samples}
    shared = sorted((SHARED_DATA / "nih" / "images").glob("*.png")) if SHARED_DATA.is_dir() else []
    return nih_samples + [p for p in shared if p.name not in names]


@pytest.fixture(scope="session")
def generated_dicoms(tmp_path_factory) -> DicomCorpus:
    """One DICOM per property of the real files, made from the NIH samples (see dicomfactory)."""
    return DicomCorpus("generated", make_generated_corpus(tmp_path_factory.mktemp("generated-dicoms")))


@pytest.fixture(scope="session")
def dicom_corpora(generated_dicoms) -> dict[str, DicomCorpus]:
    """kind → corpus: the generated one always, the real one where ``../shared/data`` is present
    (tests take ``(kind, role)`` from :func:`dicomfactory.corpus_cases`)."""
    return {kind: generated_dicoms if kind == "generated" else shared_corpus() for kind in CORPORA}


@pytest.fixture(scope="session", params=CORPORA)
def dicom_corpus(request, dicom_corpora) -> DicomCorpus:
    """Each corpus in turn: the generated DICOMs, then the real ones as an extra case."""
    return dicom_corpora[request.param]


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
