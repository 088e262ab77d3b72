"""Each training data source, on real NIH films (no TensorFlow needed): the samples' set always
(tests/training/conftest.py), the real 74 films of ../shared/data as extra cases."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from training.data import (
    NIH_LABELS,
    UNCERTAIN,
    ImageFinder,
    load_folders,
    load_labels_csv,
    load_nih_csv,
    patient_from_name,
    read_pixels,
    targets,
)
from training.errors import DataError

from conftest import MISSING


def _copy(nih: Path, dest: Path, names) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy(nih / "images" / n, dest / n)) for n in names]


# ----------------------------------------------------------------------------- (a) NIH Data_Entry_2017
def test_nih_data_entry_csv_with_its_split_header(nih_set):
    kind, nih = nih_set
    header = (nih / "labels.csv").read_text().splitlines()[0].split(",")
    assert "OriginalImage[Width" in header and "Height]" in header  # the real file's split header
    table = load_labels_csv(nih / "labels.csv", nih / "images")
    assert table.kind == "nih-csv"
    assert table.labels == NIH_LABELS
    by_name = {r.path.name: r for r in table.records}
    assert by_name["00000022_000.png"].values == (0.0,) * 14  # "No Finding"
    counts = dict(zip(NIH_LABELS, table.values().sum(axis=0).astype(int)))
    if kind == "samples":  # six films (and their mirror images), official labels
        assert len(table) == 12 and table.skipped_missing == 0
        assert len({r.patient for r in table.records}) == 6
        four = by_name["00001232_002.png"]
        assert [c for c, v in zip(NIH_LABELS, four.values) if v] == ["Atelectasis", "Cardiomegaly", "Effusion", "Infiltration"]
        assert four.patient == "1232" and by_name["00001232_902.png"].values == four.values
        assert counts == {c: 2 * n for c, n in {
            "Atelectasis": 2, "Cardiomegaly": 2, "Consolidation": 0, "Edema": 0, "Effusion": 1, "Emphysema": 0,
            "Fibrosis": 0, "Hernia": 0, "Infiltration": 1, "Mass": 1, "Nodule": 0, "Pleural_Thickening": 0,
            "Pneumonia": 0, "Pneumothorax": 1}.items()}
        return
    assert len(table) == 74 and table.skipped_missing == 0
    assert len({r.patient for r in table.records}) == 73  # patient 1170 has two films
    hernia = by_name["00000003_001.png"]
    assert hernia.values == tuple(1.0 if c == "Hernia" else 0.0 for c in NIH_LABELS)
    assert hernia.patient == "3"
    two = by_name["00001170_045.png"].values  # Pleural_Thickening|Pneumothorax
    assert [c for c, v in zip(NIH_LABELS, two) if v] == ["Pleural_Thickening", "Pneumothorax"]
    # label frequencies of the 74 films (golden, from the official labels)
    assert counts["Infiltration"] == 13 and counts["Atelectasis"] == 13 and counts["Consolidation"] == 0


def test_nih_full_official_file_skips_missing_films_with_a_count(nih_set, caplog):
    kind, nih = nih_set
    table = load_nih_csv(nih / "Data_Entry_2017_v2020.csv.gz", nih / "images")
    rows, present = (112120, 74) if kind == "shared" else (12 + len(MISSING), 12)
    assert table.rows == rows
    assert len(table) == present
    assert table.skipped_missing == rows - present
    assert f"{rows - present} of {rows} listed films are not in the image folder" in caplog.text


def test_nih_release_tree_is_searched_recursively(nih, tmp_path):
    names = ["00000022_000.png", "00000103_000.png"]
    _copy(nih, tmp_path / "images_001" / "images", names[:1])
    _copy(nih, tmp_path / "images_002" / "images", names[1:])
    rows = [r for r in csv.reader(open(nih / "labels.csv"))]
    csv_path = tmp_path / "Data_Entry_2017.csv"
    with csv_path.open("w", newline="") as fh:
        csv.writer(fh).writerows([rows[0]] + [r for r in rows[1:] if r[0] in names] + [["00099999_000.png", "Mass", "0", "99999", "1", "M", "PA", "1", "1", "0.1", "0.1"]])
    table = load_labels_csv(csv_path, tmp_path)
    assert sorted(r.path.name for r in table.records) == names
    assert table.skipped_missing == 1


def test_nih_unknown_finding_asks_for_labels(nih, tmp_path):
    csv_path = tmp_path / "x.csv"
    csv_path.write_text("Image Index,Finding Labels,Patient ID\n00000022_000.png,Hernia|Covid,22\n")
    with pytest.raises(DataError, match="Covid.*--labels"):
        load_labels_csv(csv_path, nih / "images")
    table = load_labels_csv(csv_path, nih / "images", labels=["Hernia", "Covid"])
    assert table.records[0].values == (1.0, 1.0)


# ----------------------------------------------------------------------------- (b) one-hot CSVs
def test_course_onehot_csv_skips_missing_films_with_a_count(nih_set, caplog):
    kind, nih = nih_set
    table = load_labels_csv(nih / "train-small.csv", nih / "images")
    assert table.kind == "onehot-csv"
    assert table.labels == NIH_LABELS  # PatientId (between Nodule and Pleural_Thickening) is not a label
    rows, present, name, patient, finding = (
        (1000, 51, "00001297_000.png", "1297", "Pleural_Thickening") if kind == "shared"
        else (38, 8, "00000468_914.png", "468", "Pneumothorax"))
    assert table.rows == rows
    assert len(table) == present and table.skipped_missing == rows - present
    assert f"{rows - present} of {rows} listed films are not in the image folder; skipped" in caplog.text
    first = next(r for r in table.records if r.path.name == name)
    assert first.patient == patient
    assert first.values == tuple(1.0 if c == finding else 0.0 for c in NIH_LABELS)


def test_no_film_found_is_a_clear_error(nih, tmp_path):
    with pytest.raises(DataError, match="None of the 38 films.*--images"):
        load_labels_csv(nih / "train-small.csv", tmp_path)
    with pytest.raises(DataError, match="Image folder not found"):
        load_labels_csv(nih / "train-small.csv", tmp_path / "nope")
    with pytest.raises(DataError, match="Labels file not found"):
        load_labels_csv(tmp_path / "nope.csv", nih / "images")


# ----------------------------------------------------------------------------- (d) uncertain labels
def _chexpert(nih: Path, tmp_path: Path) -> Path:
    films = ["00000022_000.png", "00000103_000.png", "00000468_014.png"]
    rel = [f"CheXpert-v1.0-small/train/patient{i:05d}/study1/view1_frontal.png" for i in (1, 1, 2)]
    rel[1] = rel[1].replace("study1", "study2")
    for name, r in zip(films, rel):
        dest = tmp_path / "chexpert" / Path(r).relative_to("CheXpert-v1.0-small")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(nih / "images" / name, dest)
    csv_path = tmp_path / "train.csv"
    csv_path.write_text(
        "Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Atelectasis,Cardiomegaly,Edema\n"
        f"{rel[0]},Female,68,Frontal,AP,,1.0,-1.0,\n"
        f"{rel[1]},Female,68,Frontal,AP,1.0,0.0,,-1.0\n"
        f"{rel[2]},Male,40,Frontal,PA,,-1.0,1.0,0.0\n"
        "CheXpert-v1.0-small/train/patient00003/study1/view1_frontal.png,Male,1,Frontal,PA,,1.0,,\n"
    )
    return csv_path


def test_chexpert_style_uncertain_labels(nih, tmp_path):
    table = load_labels_csv(_chexpert(nih, tmp_path), tmp_path / "chexpert")
    assert table.labels == ("No Finding", "Atelectasis", "Cardiomegaly", "Edema")  # Sex/Age/... are not labels
    assert len(table) == 3 and table.skipped_missing == 1
    assert [r.patient for r in table.records] == ["patient00001", "patient00001", "patient00002"]
    v = table.values()
    np.testing.assert_array_equal(v, [[0, 1, -1, 0], [1, 0, 0, -1], [0, -1, 1, 0]])  # blank = 0 (not mentioned)
    assert "3 uncertain labels (-1)" in table.notes
    # U-Ones with half weight
    y, w = targets(v, uncertain_value=1.0, uncertain_weight=0.5)
    np.testing.assert_array_equal(y, [[0, 1, 1, 0], [1, 0, 0, 1], [0, 1, 1, 0]])
    np.testing.assert_array_equal(w, [[1, 1, 0.5, 1], [1, 1, 1, 0.5], [1, 0.5, 1, 1]])
    # U-Ignore
    y, w = targets(v, uncertain_value=0.0, uncertain_weight=0.0)
    assert w[v == UNCERTAIN].sum() == 0 and y[v == UNCERTAIN].sum() == 0
    # choosing labels
    sub = load_labels_csv(tmp_path / "train.csv", tmp_path / "chexpert", labels=["Edema", "Atelectasis"])
    assert sub.labels == ("Edema", "Atelectasis") and sub.records[0].values == (0.0, 1.0)
    with pytest.raises(DataError, match="not 1/0/-1 labels \\(Sex\\)"):
        load_labels_csv(tmp_path / "train.csv", tmp_path / "chexpert", labels=["Sex"])


# ----------------------------------------------------------------------------- (c) class folders
def test_class_folders_normal_pneumonia(nih, tmp_path):
    root = tmp_path / "chest_xray"
    names = sorted(p.name for p in (nih / "images").glob("*.png"))[:10]
    assert len(names) == 10
    _copy(nih, root / "train" / "NORMAL", names[0:3])
    _copy(nih, root / "train" / "PNEUMONIA", names[3:6])
    _copy(nih, root / "val" / "NORMAL", names[6:7])
    _copy(nih, root / "val" / "PNEUMONIA", names[7:8])
    _copy(nih, root / "test" / "PNEUMONIA", names[8:10])
    (root / "train" / "NORMAL" / "notes.txt").write_text("not a film")
    table = load_folders(root)
    assert table.kind == "folders" and table.labels == ("Pneumonia",)
    assert len(table) == 10
    by_split = {s: sorted((r.path.parent.name, r.values) for r in table.records if r.split == s) for s in ("train", "valid", "test")}
    assert by_split["train"] == [("NORMAL", (0.0,))] * 3 + [("PNEUMONIA", (1.0,))] * 3
    assert by_split["valid"] == [("NORMAL", (0.0,)), ("PNEUMONIA", (1.0,))]
    assert by_split["test"] == [("PNEUMONIA", (1.0,))] * 2
    assert {r.patient for r in table.records if r.path.parent.name == "PNEUMONIA" and r.split == "test"} == {
        names[8].split("_")[0], names[9].split("_")[0]}  # NIH names carry the patient


def test_class_folders_without_splits_and_errors(nih, tmp_path):
    _copy(nih, tmp_path / "x" / "COVID", ["00000022_000.png"])
    _copy(nih, tmp_path / "x" / "PNEUMONIA", ["00000103_000.png"])
    _copy(nih, tmp_path / "x" / "NORMAL", ["00000468_014.png"])
    table = load_folders(tmp_path / "x")
    assert table.labels == ("Covid", "Pneumonia") and all(r.split is None for r in table.records)
    assert sorted(r.values for r in table.records) == [(0.0, 0.0), (0.0, 1.0), (1.0, 0.0)]
    (tmp_path / "empty" / "NORMAL").mkdir(parents=True)
    with pytest.raises(DataError, match="no class folders"):
        load_folders(tmp_path / "empty")


def test_patient_ids_from_file_names():
    assert patient_from_name("CheXpert-v1.0-small/train/patient00042/study1/view1_frontal.jpg") == "patient00042"
    assert patient_from_name("person1_bacteria_1.jpeg") == "person1"
    assert patient_from_name("images_001/images/00000013_005.png") == "00000013"
    assert patient_from_name("IM-0115-0001.jpeg") == "IM-0115"
    assert patient_from_name("NORMAL2-IM-1427-0001.jpeg") == "NORMAL2-IM-1427"
    assert patient_from_name("scan.png") is None


def test_reader_is_the_apps(nih):
    from cxrviewer.io import read_film

    path = nih / "images" / "00000022_000.png"
    px = read_pixels(path)
    np.testing.assert_array_equal(px, read_film(path).pixels)
    assert px.dtype == np.float32 and px.shape == (1024, 1024) and 0 <= px.min() and px.max() <= 1
    assert ImageFinder(nih / "images").find("00000022_000.png") == path
