"""Fixtures for the training tests: real NIH films and one tiny model trained once per session.

``nih`` is a folder laid out as ``../shared/data/nih`` but made from the six NIH samples of
``resources/samples/`` (each also mirrored left-right, as a film of the same patient, so a
patient-level split has films to split): ``images/``, their official ``labels.csv`` rows, and
label files in the other formats (the full official file, the course's one-hot CSVs) listing
films that are not there too. Tests that check golden numbers of the real set take ``nih_set``
and run on ``../shared/data/nih`` as an extra case where it is present.

The session's model is trained by the CLI exactly as the README says (`cxr-train fit ...
--input-size 64 --epochs 1` then `cxr-train export RUN`), on the twelve films, with two steps
of four films, so every export/parity/Grad-CAM test shares one training. Its test split takes
two of the six patients, so the int8 parity check has a label with positive and negative films.
"""

from __future__ import annotations

import csv
import gzip
import os
import shutil
from pathlib import Path

import pytest
from helpers import SAMPLES, SHARED_DATA

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SIZE = 64
#: The NIH label sets a ``nih_set`` test runs on: the samples always, the real 74 films where present.
NIH_SETS = ("samples", "shared") if (SHARED_DATA / "nih").is_dir() else ("samples",)
#: The course's one-hot column order (PatientId sits between Nodule and Pleural_Thickening).
COURSE_COLUMNS = ["Image", "Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion", "Emphysema",
                  "Fibrosis", "Hernia", "Infiltration", "Mass", "Nodule", "PatientId", "Pleural_Thickening",
                  "Pneumonia", "Pneumothorax"]
#: Films the made-up label files list that are not in ``images/`` (a loader must skip them).
MISSING = [f"{90000 + i:08d}_000.png" for i in range(40)]


def mirrored_name(name: str) -> str:
    """``00000022_000.png`` → ``00000022_900.png``: the same patient, another follow-up."""
    patient, follow = Path(name).stem.split("_")
    return f"{patient}_{900 + int(follow):03d}.png"


def make_nih_folder(folder: Path) -> Path:
    import cv2

    images = folder / "images"
    images.mkdir(parents=True)
    rows = list(csv.reader((SAMPLES / "labels.csv").open(newline="")))
    header, samples = rows[0], rows[1:]
    for row in samples:
        shutil.copy(SAMPLES / row[0], images / row[0])
        flipped = cv2.flip(cv2.imread(str(SAMPLES / row[0]), cv2.IMREAD_GRAYSCALE), 1)
        assert cv2.imwrite(str(images / mirrored_name(row[0])), flipped)
    films = samples + [[mirrored_name(r[0]), *r[1:]] for r in samples]
    with (folder / "labels.csv").open("w", newline="") as f:
        csv.writer(f).writerows([header, *films])
    absent = [[name, "Mass", "0", name[:8].lstrip("0"), "50", "F", "PA", "2048", "2048", "0.14", "0.14"]
              for name in MISSING]
    with gzip.open(folder / "Data_Entry_2017_v2020.csv.gz", "wt", newline="") as f:
        csv.writer(f).writerows([header, *absent[:20], *films, *absent[20:]])

    def onehot(row: list[str]) -> list[str]:
        found = row[1].split("|")
        return [row[0], *("1" if c in found else "0" if c != "PatientId" else str(int(row[0][:8]))
                          for c in COURSE_COLUMNS[1:])]

    # train: eight films and 30 absent ones; valid: the other four and 10 absent ones. As in the
    # course's files, patients leak: 1153 and 1232 have a film in each.
    for name, chosen, absent_rows in (("train-small.csv", films[:5] + films[6:9], MISSING[:30]),
                                      ("valid-small.csv", films[5:6] + films[9:], MISSING[30:])):
        with (folder / name).open("w", newline="") as f:
            csv.writer(f).writerows([COURSE_COLUMNS, *map(onehot, chosen),
                                     *(onehot([n, "Mass"]) for n in absent_rows)])
    return folder


@pytest.fixture(scope="session")
def nih(tmp_path_factory) -> Path:
    """The NIH sample set in ``../shared/data/nih``'s layout (see the module's docstring)."""
    return make_nih_folder(tmp_path_factory.mktemp("nih-samples") / "nih")


@pytest.fixture(scope="session", params=NIH_SETS)
def nih_set(request, nih) -> tuple[str, Path]:
    """(kind, folder): the sample set, then the real ``../shared/data/nih`` where present."""
    return request.param, nih if request.param == "samples" else SHARED_DATA / "nih"


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, nih) -> Path:
    pytest.importorskip("tensorflow")
    pytest.importorskip("tf2onnx")
    from training import cli

    run = tmp_path_factory.mktemp("train") / "run"
    rc = cli.main([
        "-q", "fit", "--labels-csv", str(nih / "labels.csv"), "--images", str(nih / "images"),
        "--out", str(run), "--input-size", str(SIZE), "--epochs", "1", "--batch-size", "4",
        "--steps-per-epoch", "2", "--val-frac", "0.2", "--test-frac", "0.3", "--seed", "1",
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
