"""Labels files as real sites write them (review): a spreadsheet's semicolon CSV, CheXpert's paths
whose file names repeat, and a PNG beside a DICOM of the same stem."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinymodel import LABELS

from cxrviewer.validate.labels import read_labels
from cxrviewer.validate.site import match_films


def test_a_semicolon_csv_with_bom_and_crlf_is_read(tmp_path):
    # Excel in a locale whose decimal separator is the comma saves "CSV" with semicolons
    path = tmp_path / "labels.csv"
    path.write_bytes("\ufeffImage Index;Finding Labels;Patient ID;View Position;OriginalImage[Width,Height]\r\n"
                     "a.png;Mass|Edema;1;PA;2500,2048\r\nb.png;No Finding;2;AP;2500,2048\r\n".encode("utf-8"))
    table = read_labels(path, LABELS)
    assert table.layout == "nih" and table.names == ("a.png", "b.png")
    assert table.values[0, LABELS.index("Mass")] == 1 and table.views == ("PA", "AP") and table.has_patients


def test_rows_of_the_same_file_name_in_other_folders_are_told_apart_by_their_path(tmp_path, monkeypatch):
    # CheXpert names every frontal film view1_frontal.jpg: the folders say which film a row is
    path = tmp_path / "valid.csv"
    path.write_text("Path,Mass,Edema\n"
                    "CheXpert-v1.0-small/valid/patient1/study1/view1_frontal.jpg,1,0\n"
                    "CheXpert-v1.0-small/valid/patient2/study1/view1_frontal.jpg,0,1\n"
                    "CheXpert-v1.0-small/valid/patient2/study1/view1_frontal.jpg,1,1\n")
    table = read_labels(path, LABELS)
    assert len(table) == 2 and table.duplicate_rows == 1  # only the same path twice is a duplicate
    films = [Path("/data/chexpert/valid/patient2/study1/view1_frontal.jpg"),
             Path("/data/chexpert/valid/patient1/study1/view1_frontal.jpg"),
             Path("/data/other/view1_frontal.jpg")]  # shares no folder with either row: not guessed
    matched, unlisted = match_films(films, table)
    assert matched == [(films[0], 1), (films[1], 0)] and unlisted == [films[2]]
    assert table.values[1, LABELS.index("Edema")] == 1 and table.values[1, LABELS.index("Mass")] == 0
    # a film named relative to the working folder: its folders are those of the working folder
    study = tmp_path / "valid" / "patient2" / "study1"
    study.mkdir(parents=True)
    monkeypatch.chdir(study)
    assert table.row_for(Path("view1_frontal.jpg")) == 1


def test_a_film_named_exactly_keeps_its_row_from_a_film_of_the_same_stem(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("Image Index,Finding Labels\n00000003_001.png,Hernia\n")
    table = read_labels(path, LABELS)
    films = [Path("/f/00000003_001.dcm"), Path("/f/00000003_001.png")]  # the DICOM sorts first
    matched, unlisted = match_films(films, table)
    assert matched == [(films[1], 0)] and unlisted == [films[0]]


def test_a_report_inside_the_films_folder_is_not_read_as_films_by_the_rerun(tmp_path, tiny_model, nih_samples):
    import json
    import shutil

    from cxrviewer.cli import main

    films = tmp_path / "films"
    (films / "a").mkdir(parents=True)
    for f in nih_samples[:3]:
        shutil.copy(f, films / "a" / f.name)
    labels = tmp_path / "labels.csv"
    labels.write_text("Image Index,Finding Labels\n" + "".join(
        f"{f.name},{'Mass' if i else 'No Finding'}\n" for i, f in enumerate(nih_samples[:3])))
    report = films / "report"  # beside the films, inside the folder given with -r
    args = ["validate", str(films), "-r", "--labels", str(labels), "--report", str(report), "--model", str(tiny_model),
            "--bootstrap", "0", "--no-progress"]
    assert main(args) == 0
    assert (report / "roc.png").is_file()
    assert main(args) == 0
    doc = json.loads((report / "metrics.json").read_text())
    assert doc["films"]["inputs"] == 3 and doc["films"]["not_in_labels_file"] == 0, doc["films"]


def test_a_labels_file_with_none_of_the_models_findings_is_refused_before_scoring(tmp_path, tiny_model, nih_samples,
                                                                                  capsys):
    from cxrviewer.cli import main

    labels = tmp_path / "labels.csv"
    labels.write_text("file,Lung Lesion,Fracture\n" + "".join(f"{f.name},{i % 2},0\n" for i, f in enumerate(nih_samples)))
    report = tmp_path / "rep"
    code = main(["validate", *map(str, nih_samples), "--labels", str(labels), "--report", str(report),
                 "--model", str(tiny_model), "--bootstrap", "0", "--no-figures", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "none of the model's findings" in err and "Lung Lesion" in err and "(--labels)" in err
    assert not (report / "results.csv").exists()  # refused before hours of scoring


def test_finding_labels_separated_by_commas_or_semicolons_are_each_read(tmp_path):
    # a site's own export of the NIH layout: "Mass, Edema" or "mass;edema" in place of "Mass|Edema"
    path = tmp_path / "labels.csv"
    path.write_text('Image Index,Finding Labels\na.png,"Mass, Edema"\nb.png,mass;pleural_thickening\nc.png,No Finding\n')
    table = read_labels(path, LABELS)
    assert table.unknown_labels == {}
    assert table.values[0, LABELS.index("Mass")] == 1 and table.values[0, LABELS.index("Edema")] == 1
    assert table.values[1, LABELS.index("Pleural_Thickening")] == 1 and table.values[2].sum() == 0


def test_chexperts_pleural_effusion_is_the_nih_models_effusion(tmp_path):
    path = tmp_path / "chexpert.csv"
    path.write_text("Path,Pleural Effusion,Edema\na/1.jpg,1,0\nb/2.jpg,0,1\n")
    table = read_labels(path, LABELS)
    effusion = LABELS.index("Effusion")
    assert list(table.values[:, effusion]) == [1, 0] and "Pleural Effusion" not in table.unknown_labels
    assert "Effusion" not in table.absent_labels
    nih = tmp_path / "nih.csv"
    nih.write_text("Image Index,Finding Labels\na.png,Pleural Effusion|Mass\n")
    assert read_labels(nih, LABELS).values[0, effusion] == 1


def test_films_the_labels_file_says_are_laterals_are_left_out_as_not_applicable(tmp_path, tiny_model, nih_samples):
    # CheXpert's valid.csv: "Frontal/Lateral" says Lateral where "AP/PA" is empty; a frontal model's
    # figures must not mix laterals in (a JPEG has no header for the gate to read)
    import json

    from cxrviewer.cli import main

    films = nih_samples[:4]
    labels = tmp_path / "valid.csv"
    labels.write_text("Path,Sex,Frontal/Lateral,AP/PA,Mass\n" + "".join(
        f"CheXpert-v1.0-small/valid/patient{i}/study1/{f.name},Male,{'Lateral' if i == 3 else 'Frontal'},"
        f"{'' if i == 3 else 'PA'},{i % 2}\n" for i, f in enumerate(films)))
    report = tmp_path / "rep"
    assert main(["validate", *map(str, films), "--labels", str(labels), "--report", str(report), "--model",
                 str(tiny_model), "--bootstrap", "0", "--no-figures", "--no-progress"]) == 0
    doc = json.loads((report / "metrics.json").read_text())
    assert doc["films"]["labelled"] == 4 and doc["films"]["evaluated"] == 3, doc["films"]
    assert doc["films"]["not_applicable"] == 1 and doc["films"]["failed"] == 0
    assert doc["findings"]["Mass"]["n"] == 3
    rows = (report / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + 3  # the lateral was not scored


def test_matching_many_rows_of_one_file_name_is_fast(tmp_path):
    # CheXpert's train.csv: ~190,000 rows named view1_frontal.jpg; each film is matched by look-ups
    import time

    n = 60_000
    path = tmp_path / "train.csv"
    path.write_text("Path,Mass\n" + "".join(f"CheXpert-v1.0/train/patient{i:05d}/study1/view1_frontal.jpg,{i % 2}\n"
                                            for i in range(n)))
    table = read_labels(path, LABELS)
    films = [Path(f"/data/train/patient{i:05d}/study1/view1_frontal.jpg") for i in range(0, n, 7)]
    t0 = time.perf_counter()
    matched, unlisted = match_films(films, table)
    assert time.perf_counter() - t0 < 5  # was minutes: every film walked every row of its name
    assert not unlisted and all(row == i * 7 for i, (_, row) in enumerate(matched))


@pytest.mark.parametrize("command", ["score", "validate"])
def test_no_films_found_in_a_folder_of_sub_folders_names_recursive(tmp_path, tiny_model, nih_samples, capsys, command):
    import shutil

    from cxrviewer.cli import main

    films = tmp_path / "films"
    (films / "2024").mkdir(parents=True)
    shutil.copy(nih_samples[0], films / "2024" / nih_samples[0].name)
    labels = tmp_path / "labels.csv"
    labels.write_text(f"Image Index,Finding Labels\n{nih_samples[0].name},Mass\n")
    args = {"score": ["score", str(films), "--out", str(tmp_path / "r.csv")],
            "validate": ["validate", str(films), "--labels", str(labels), "--report", str(tmp_path / "rep")]}[command]
    assert main([*args, "--model", str(tiny_model), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "No films found" in err and "--recursive" in err, err
