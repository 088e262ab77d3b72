"""Fixtures for the training tests: real NIH films and one tiny model trained once per session.

The session's model is trained by the CLI exactly as the README says (`cxr-train fit ...
--input-size 64 --epochs 1` then `cxr-train export RUN`), on the 74 real NIH films, with two
steps of four films, so every export/parity/Grad-CAM test shares one ~1.5-minute training.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SIZE = 64


@pytest.fixture(scope="session")
def nih(shared_data) -> Path:
    return shared_data / "nih"


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, nih) -> Path:
    pytest.importorskip("tensorflow")
    pytest.importorskip("tf2onnx")
    from training import cli

    run = tmp_path_factory.mktemp("train") / "run"
    rc = cli.main([
        "-q", "fit", "--labels-csv", str(nih / "labels.csv"), "--images", str(nih / "images"),
        "--out", str(run), "--input-size", str(SIZE), "--epochs", "1", "--batch-size", "4",
        "--steps-per-epoch", "2", "--val-frac", "0.2", "--test-frac", "0.1", "--seed", "1",
        "--demo", "--model-version", "test-64", "--no-export",
    ])
    assert rc == 0
    assert not (run / "model.onnx").exists()
    assert cli.main(["-q", "export", str(run)]) == 0
    return run


@pytest.fixture(scope="session")
def keras_model(trained_run):
    from training.model import load_model

    return load_model(trained_run / "model.keras")


@pytest.fixture(scope="session")
def export_model(keras_model):
    from training.model import build_export_model

    return build_export_model(keras_model)


def copy_films(nih: Path, dest: Path, names: list[str]) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for n in names:
        out.append(Path(shutil.copy(nih / "images" / n, dest / n)))
    return out
