"""``cxrviewer validate``: the figures against scikit-learn on real NIH films, the bootstrap, the
labels layouts and their counts, the tuned model copy, resuming, errors and exit codes."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, SAMPLES, SHARED_DATA, synthetic_pixels, write_png
from tinymodel import LABELS

from cxrviewer.cli import main
from cxrviewer.validate.labels import parse_age, read_labels
from cxrviewer.validate.stats import Bootstrap, bootstrap_aurocs, weighted_auroc

metrics_mod = pytest.importorskip("sklearn.metrics")


def _key(name: str) -> str:
    return " ".join(name.replace("_", " ").split()).casefold()


def _nih_truth(labels_csv: Path) -> dict[str, dict]:
    """file name → {label: 0/1, patient} read here, independently of cxrviewer."""
    out = {}
    keys = {_key(label): label for label in LABELS}
    with open(labels_csv, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            found = {keys[_key(n)] for n in row["Finding Labels"].split("|") if _key(n) in keys}
            out[row["Image Index"]] = {"y": {label: int(label in found) for label in LABELS}, "patient": row["Patient ID"],
                                       "view": row["View Position"], "sex": row["Patient Gender"]}
    return out


def _scores(results_csv: Path) -> dict[str, dict[str, float]]:
    with open(results_csv, newline="", encoding="utf-8") as f:
        return {Path(r["path"]).name: {label: float(r[label]) for label in LABELS}
                for r in csv.DictReader(f) if r["status"] == "ok"}


def _run(*argv: str) -> int:
    return main(["validate", *argv, "--no-progress"])


@pytest.fixture(scope="module")
def nih_set() -> tuple[list[Path], Path]:
    """The real NIH films and their Data_Entry_2017 rows: ../shared/data's 74 where present, else
    the six samples of the repository."""
    shared = SHARED_DATA / "nih"
    if (shared / "labels.csv").is_file():
        films = sorted((shared / "images").glob("*.png"))
        return films, shared / "labels.csv"
    return sorted(SAMPLES.glob("*.png")), SAMPLES / "labels.csv"


@pytest.fixture(scope="module")
def nih_report(tmp_path_factory, tiny_model, nih_set):
    films, labels = nih_set
    report = tmp_path_factory.mktemp("report")
    code = _run(*map(str, films), "--labels", str(labels), "--report", str(report), "--model", str(tiny_model))
    return code, report, films, labels


@pytest.mark.slow  # scores the real NIH films (74 where ../shared is present)
def test_real_nih_films_aurocs_equal_scikit_learn(nih_report):
    code, report, films, labels = nih_report
    assert code == 0
    doc = json.loads((report / "metrics.json").read_text())
    truth = _nih_truth(labels)
    scores = _scores(report / "results.csv")
    names = [f.name for f in films if f.name in truth]
    assert sorted(scores) == sorted(names) and doc["films"]["evaluated"] == len(names)
    expected = [label for label in LABELS if 0 < sum(truth[n]["y"][label] for n in names) < len(names)]
    assert list(doc["findings"]) == expected and expected  # every label with both classes, and only those
    for label, m in doc["findings"].items():
        y = np.array([truth[n]["y"][label] for n in names])
        s = np.array([scores[n][label] for n in names])
        assert m["n"] == len(names) and m["positives"] == int(y.sum())
        assert m["auroc"] == pytest.approx(metrics_mod.roc_auc_score(y, s), abs=1e-12)
        assert m["brier"] == pytest.approx(metrics_mod.brier_score_loss(y, s), abs=1e-12)
        pred = s >= m["threshold"]
        assert m["sensitivity"] == pytest.approx(np.sum(pred & (y == 1)) / y.sum())
        assert m["specificity"] == pytest.approx(np.sum(~pred & (y == 0)) / (y == 0).sum())
        bins = np.minimum((s * 10).astype(int), 9)
        ece = sum(np.mean(bins == b) * abs(y[bins == b].mean() - s[bins == b].mean()) for b in range(10) if (bins == b).any())
        assert m["ece"] == pytest.approx(ece, abs=1e-12)
        lo, hi = m["auroc_ci"]
        assert 0.0 <= lo <= m["auroc"] <= hi <= 1.0
    assert doc["bootstrap"]["unit"] == "patient"
    assert doc["bootstrap"]["clusters"] == len({truth[n]["patient"] for n in names})
    # subgroups: each view position and sex the data give, with counts that add up
    assert set(doc["subgroups"]["view_position"]) == {truth[n]["view"] for n in names}
    assert sum(g["films"] for g in doc["subgroups"]["sex"].values()) == len(names)
    for grouping, key in (("sex", "sex"), ("view_position", "view")):
        for value, group in doc["subgroups"][grouping].items():
            members = [n for n in names if truth[n][key] == value]
            assert group["films"] == len(members)
            for label, m in group["findings"].items():
                y = np.array([truth[n]["y"][label] for n in members])
                s = np.array([scores[n][label] for n in members])
                assert m["auroc"] == pytest.approx(metrics_mod.roc_auc_score(y, s), abs=1e-12)
                assert m["auroc_ci"][0] <= m["auroc"] <= m["auroc_ci"][1]
            both = [label for label in LABELS if 0 < sum(truth[n]["y"][label] for n in members) < len(members)]
            assert list(group["findings"]) == both


@pytest.mark.slow  # scores the real NIH films (74 where ../shared is present)
def test_report_page_is_offline_and_its_figures_exist(nih_report):
    _, report, _, _ = nih_report
    page = (report / "index.html").read_text(encoding="utf-8")
    assert "DEMO" in page and "<table" in page
    links = re.findall(r'(?:src|href)="([^"#]+)"', page)
    assert links and not [u for u in links if re.match(r"[a-z]+:", u)]  # only relative links
    assert not re.search(r"https?://", page)
    for link in links:
        assert (report / link).is_file(), link
    pngs = [u for u in links if u.endswith(".png")]
    doc = json.loads((report / "metrics.json").read_text())
    assert len(pngs) == len(doc["findings"]) + 1  # one per finding and the ROC overview
    assert all((report / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


@pytest.mark.slow  # scores the real NIH films (74 where ../shared is present)
def test_rerun_resumes_and_gives_the_same_figures(nih_report, tiny_model):
    _, report, films, labels = nih_report
    before = json.loads((report / "metrics.json").read_text())
    assert _run(*map(str, films), "--labels", str(labels), "--report", str(report), "--model", str(tiny_model),
                "--no-figures") == 0
    after = json.loads((report / "metrics.json").read_text())
    assert after["films"]["scored_now"] == 0 and after["films"]["already_scored"] == before["films"]["evaluated"]
    assert after["findings"] == before["findings"]


def test_weighted_auroc_is_the_auroc_of_the_resampled_set():
    rng = np.random.default_rng(3)
    y = rng.random(60) < 0.3
    s = np.round(rng.random(60), 1)  # many ties
    w = rng.integers(0, 4, size=(20, 60))
    got = weighted_auroc(y, s, w)
    for r in range(20):
        yy, ss = np.repeat(y, w[r]), np.repeat(s, w[r])
        if yy.all() or not yy.any():
            assert np.isnan(got[r])
        else:
            assert got[r] == pytest.approx(metrics_mod.roc_auc_score(yy, ss), abs=1e-12)


def test_patient_bootstrap_draws_patients_not_films():
    """Ten identical films per patient: resampling patients is resampling the patients' one film
    each (the same draws give the same AUROCs); resampling films would make the interval too narrow."""
    rng = np.random.default_rng(5)
    k = 30
    y1 = (np.arange(k) % 3 == 0).astype(int)
    s1 = rng.random(k)
    y10, s10, patients = np.repeat(y1, 10), np.repeat(s1, 10), np.repeat(np.arange(k), 10)
    boot = Bootstrap(400, 7)
    by_patient = bootstrap_aurocs(y10, s10, patients, boot, boot.rng("x"))
    one_each = bootstrap_aurocs(y1, s1, np.arange(k), boot, boot.rng("x"))
    np.testing.assert_allclose(by_patient, one_each, atol=1e-12)
    by_film = bootstrap_aurocs(y10, s10, np.arange(10 * k), boot, boot.rng("x"))
    assert np.nanstd(by_film) < 0.6 * np.nanstd(by_patient)


def _write_one_hot(path: Path, truth: dict, names: list[str], extra_rows=(), with_patients=True) -> Path:
    columns = ["Image", *[label.replace("_", " ") for label in LABELS], "Lung Opacity", "PatientId"]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(columns if with_patients else columns[:-1])
        for n in names:
            row = [n, *[truth[n]["y"][label] for label in LABELS], 1, truth[n]["patient"]]
            w.writerow(row if with_patients else row[:-1])
        for row in extra_rows:
            w.writerow(row)
    return path


@pytest.mark.slow  # scores the real NIH films (74 where ../shared is present)
def test_one_hot_labels_give_the_nih_layouts_figures(tmp_path, nih_report, tiny_model):
    _, report, films, labels = nih_report
    truth = _nih_truth(labels)
    names = [f.name for f in films if f.name in truth]
    one_hot = _write_one_hot(tmp_path / "onehot.csv", truth, names)
    out = tmp_path / "rep"
    out.mkdir()
    shutil.copy(report / "results.csv", out / "results.csv")  # the same scores: resumed, not scored again
    assert _run(*map(str, films), "--labels", str(one_hot), "--report", str(out), "--model", str(tiny_model),
                "--no-figures") == 0
    doc = json.loads((out / "metrics.json").read_text())
    nih = json.loads((report / "metrics.json").read_text())
    assert doc["labels_file"]["layout"] == "one-hot"
    assert doc["labels_file"]["unknown_labels"] == {"Lung Opacity": len(names)}
    assert doc["films"]["scored_now"] == 0
    assert {k: v["auroc"] for k, v in doc["findings"].items()} == {k: v["auroc"] for k, v in nih["findings"].items()}
    assert doc["findings"].keys() == nih["findings"].keys()


def test_missing_films_and_unknown_labels_are_counted(tmp_path, tiny_model, nih_samples):
    labels = tmp_path / "Data_Entry_2017.csv"
    header = "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position\n"
    rows = [f"{nih_samples[0].name},Mass|Infiltrate,0,1,058Y,M,PA",  # Infiltrate: the BBox list's spelling
            f"{nih_samples[1].name},No Finding,0,2,412,F,AP",  # an impossible age: unknown
            f"{nih_samples[2].name},Lung Opacity|Atelectasis,0,3,30,F,PA",
            f"{nih_samples[3].name},Atelectasis,0,4,85,M,PA",
            f"{nih_samples[3].name},Mass,0,4,85,M,PA",  # listed twice: the first row counts
            "99999999_000.png,Mass,0,9,40,M,PA", "99999999_001.png,No Finding,0,9,40,M,PA"]
    labels.write_text(header + "\n".join(rows) + "\n")
    unlisted = tmp_path / "films" / "not-labelled.png"
    unlisted.parent.mkdir()
    write_png(unlisted, synthetic_pixels())
    report = tmp_path / "rep"
    code = _run(*map(str, nih_samples[:4]), str(unlisted), "--labels", str(labels), "--report", str(report),
                "--model", str(tiny_model), "--no-figures")
    assert code == 0
    doc = json.loads((report / "metrics.json").read_text())
    assert doc["films"]["inputs"] == 5 and doc["films"]["labelled"] == 4
    assert doc["films"]["not_in_labels_file"] == 1 and doc["films"]["labels_without_film"] == 2
    assert doc["films"]["duplicate_label_rows"] == 1 and doc["films"]["evaluated"] == 4
    assert doc["labels_file"]["unknown_labels"] == {"Infiltrate": 1, "Lung Opacity": 1}
    assert list(doc["findings"]) == ["Atelectasis", "Mass"]
    assert doc["findings"]["Mass"]["positives"] == 1 and doc["findings"]["Atelectasis"]["positives"] == 2
    assert set(doc["subgroups"]["age"]) == {"18-39", "40-59", ">=80"}  # the age 412 is unknown
    assert sum(g["films"] for g in doc["subgroups"]["age"].values()) == 3


def test_a_film_that_fails_is_left_out_and_exits_1(tmp_path, tiny_model, nih_samples, capsys):
    films = tmp_path / "films"
    films.mkdir()
    for p in nih_samples:
        shutil.copy(p, films / p.name)
    (films / "00000022_000.png").write_bytes(b"not a png")
    report = tmp_path / "rep"
    code = _run(str(films), "--labels", str(SAMPLES / "labels.csv"), "--report", str(report),
                "--model", str(tiny_model), "--no-figures")
    assert code == 1
    doc = json.loads((report / "metrics.json").read_text())
    assert doc["films"]["failed"] == 1 and doc["films"]["evaluated"] == 5
    assert all(m["n"] == 5 for m in doc["findings"].values())
    assert "1 failed" in capsys.readouterr().out


def _labelled_set(folder: Path, n_pos: int, n_neg: int) -> tuple[list[Path], Path]:
    """Films whose Mass label follows a bright disc (which the tiny model sees), patients in pairs."""
    folder.mkdir()
    films, lines = [], ["Image Index,Finding Labels,Patient ID,Patient Age,Patient Gender,View Position"]
    rng = np.random.default_rng(11)
    for i in range(n_pos + n_neg):
        pos = i < n_pos
        radius = float(rng.uniform(0.12, 0.3) if pos else rng.uniform(0.0, 0.18))
        films.append(write_png(folder / f"film{i:03d}.png", synthetic_pixels(128, 128, (0.5, 0.5, radius))))
        lines.append(f"film{i:03d}.png,{'Mass' if pos else 'No Finding'},{i // 2},{20 + 3 * i},{'MF'[i % 2]},PA")
    labels = folder.parent / "labels.csv"
    labels.write_text("\n".join(lines) + "\n")
    return films, labels


def test_tuned_thresholds_copy(tmp_path):
    from cxrviewer.model import Classifier
    from tinymodel import build_tiny_model, tiny_info

    films, labels = _labelled_set(tmp_path / "films", 9, 11)
    rule = {"method": "youden", "min_positives": 5, "min_negatives": 5, "default": 0.5, "defaulted": list(LABELS)}
    model = build_tiny_model(tmp_path / "m.onnx", tiny_info(64, trained_on={"data": "none", "thresholds": rule}))
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    out = tmp_path / "m-site.onnx"
    report = tmp_path / "rep"
    assert _run(str(films[0].parent), "--labels", str(labels), "--report", str(report), "--model", str(model),
                "--tune-thresholds", "--out", str(out), "--no-figures") == 0
    assert hashlib.sha256(model.read_bytes()).hexdigest() == digest  # the original is untouched
    original, tuned = Classifier.load(model, device="cpu"), Classifier.load(out, device="cpu")
    # Youden's J on these films, found with scikit-learn: the first of the best cut-offs
    scores = _scores(report / "results.csv")
    names = sorted(scores)
    y = np.array([int(n < f"film{9:03d}.png") for n in names])
    s = np.array([scores[n]["Mass"] for n in names])
    fpr, tpr, thr = metrics_mod.roc_curve(y, s, drop_intermediate=False)
    best = thr[int(np.argmax(tpr - fpr))]
    assert tuned.info.thresholds["Mass"] == pytest.approx(best, abs=1e-6)
    assert tuned.info.thresholds["Mass"] != original.info.thresholds["Mass"]
    # every other label has no positive film here: it keeps the model's own threshold
    assert {k: v for k, v in tuned.info.thresholds.items() if k != "Mass"} == \
           {k: v for k, v in original.info.thresholds.items() if k != "Mass"}
    site = tuned.info.trained_on["site_validation"]
    assert site["films"] == 20 and site["labels_file"] == "labels.csv"
    assert site["thresholds"]["chosen"] == {"Mass": pytest.approx(best, abs=1e-6)}
    assert site["source_model_version"] == original.info.model_version != tuned.info.model_version
    assert tuned.info.labels == original.info.labels
    from cxrviewer.model_card import describe_training, model_card

    card = model_card(tuned)
    assert "Mass" in model_card(original)["default_thresholds"]
    assert set(card["default_thresholds"]) == set(LABELS) - {"Mass"}  # chosen on the site's films: no longer the default
    assert re.search(r"site validation: 20 films of labels.csv on .*thresholds chosen there .* for Mass",
                     describe_training(card["trained_on"]))
    # the probabilities are the original's: only the metadata changed
    x = np.random.default_rng(0).random((1, 64, 64, 3), dtype=np.float32)
    np.testing.assert_array_equal(tuned.run(x).probs, original.run(x).probs)


def test_tuning_needs_five_positives_and_five_negatives(tmp_path, tiny_model):
    from cxrviewer.model import Classifier

    films, labels = _labelled_set(tmp_path / "films", 4, 11)
    out = tmp_path / "m-site.onnx"
    assert _run(str(films[0].parent), "--labels", str(labels), "--report", str(tmp_path / "rep"), "--model",
                str(tiny_model), "--tune-thresholds", "--out", str(out), "--no-figures") == 0
    tuned = Classifier.load(out, device="cpu")
    assert tuned.info.thresholds == Classifier.load(tiny_model, device="cpu").info.thresholds
    assert tuned.info.trained_on["site_validation"]["thresholds"]["chosen"] == {}


def test_usage_errors_exit_2_with_the_flag(tmp_path, tiny_model, nih_samples, capsys):
    other = tmp_path / "other.csv"
    other.write_text("Image Index,Finding Labels\nnobody.png,Mass\n")
    assert _run(str(nih_samples[0]), "--labels", str(other), "--report", str(tmp_path / "r"), "--model", str(tiny_model)) == 2
    err = capsys.readouterr().err
    assert "None of the 1 film(s) is listed" in err and "(--labels)" in err
    assert _run(str(nih_samples[0]), "--labels", str(tmp_path / "missing.csv"), "--report", str(tmp_path / "r")) == 2
    with pytest.raises(SystemExit) as exc:
        _run(str(nih_samples[0]), "--labels", str(other), "--report", str(tmp_path / "r"), "--tune-thresholds")
    assert exc.value.code == 2 and "--out" in capsys.readouterr().err


def test_a_report_folder_that_cannot_be_written_exits_3(tmp_path, tiny_model, nih_samples, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code = _run(*map(str, nih_samples), "--labels", str(SAMPLES / "labels.csv"), "--report", str(blocker / "rep"),
                "--model", str(tiny_model))
    assert code == 3, capsys.readouterr().err


def test_another_models_results_are_not_mixed_in(tmp_path, tiny_model, nih_samples, capsys):
    from tinymodel import build_tiny_model, tiny_info

    other = build_tiny_model(tmp_path / "other.onnx", tiny_info(64, model_version="another-1"), seed=1)
    report = tmp_path / "rep"
    args = [*map(str, nih_samples), "--labels", str(SAMPLES / "labels.csv"), "--report", str(report), "--no-figures"]
    assert _run(*args, "--model", str(tiny_model)) == 0
    assert _run(*args, "--model", str(other)) == 3
    assert "another model" in capsys.readouterr().err
    assert _run(*args, "--model", str(other), "--overwrite") == 0
    assert json.loads((report / "metrics.json").read_text())["model"]["model_version"] == "another-1"


def test_labels_parsing():
    assert parse_age("058Y") == 58 and parse_age("6M") == 0.5 and np.isnan(parse_age("412")) and np.isnan(parse_age(""))
    table = read_labels(SAMPLES / "labels.csv", LABELS)
    assert table.layout == "nih" and len(table) == 6 and table.has_patients
    assert table.row_for(Path("/x/00000022_000.dcm")) == table.row_for("00000022_000.png") is not None
    no_finding = table.values[table.row_for("00000022_000.png")]
    assert (no_finding == 0).all()  # "No Finding": negative for every label


def test_one_hot_uncertain_and_no_finding(tmp_path):
    labels = tmp_path / "chexpert.csv"
    labels.write_text("Path,No Finding,Mass,Edema,Sex,Age,AP/PA\n"
                      "a/1.jpg,1,,,Female,70,AP\n"
                      "b/2.jpg,,-1,1,Male,30,PA\n"
                      "c/3.jpg,,,0,Unknown,x,\n"
                      "c/3.jpg,1,1,1,Male,40,PA\n")
    table = read_labels(labels, LABELS)
    mass, edema = LABELS.index("Mass"), LABELS.index("Edema")
    assert table.layout == "one-hot" and table.names == ("1.jpg", "2.jpg", "3.jpg")
    assert table.values[0, mass] == 0 and table.values[0, edema] == 0  # No Finding: unstated means negative
    assert np.isnan(table.values[1, mass]) and table.values[1, edema] == 1  # uncertain: left out
    assert np.isnan(table.values[2, mass])  # unstated, no "No Finding": left out
    assert table.sexes == ("F", "M", "") and table.views == ("AP", "PA", "")
    assert "Atelectasis" in table.absent_labels and not table.has_patients
    assert table.duplicate_rows == 1  # c/3.jpg again: the first row counts


def test_validate_loads_neither_matplotlib_nor_onnx_until_used():
    code = ("import sys, cxrviewer.validate, cxrviewer.cli;"
            "print(sorted(m for m in ('matplotlib', 'onnx', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_model_itself_as_out_is_refused_before_scoring(tmp_path, tiny_model, nih_samples, capsys):
    model = tmp_path / "m.onnx"
    shutil.copy(tiny_model, model)
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    report = tmp_path / "rep"
    code = _run(*map(str, nih_samples), "--labels", str(SAMPLES / "labels.csv"), "--report", str(report),
                "--model", str(model), "--tune-thresholds", "--out", str(model))
    assert code == 2 and "is the model being validated" in capsys.readouterr().err
    assert not (report / "results.csv").exists()  # refused before any film was scored
    assert hashlib.sha256(model.read_bytes()).hexdigest() == digest


def test_without_matplotlib_the_error_names_the_extra(tmp_path, tiny_model, nih_samples):
    argv = ["validate", *map(str, nih_samples), "--labels", str(SAMPLES / "labels.csv"), "--report",
            str(tmp_path / "rep"), "--model", str(tiny_model), "--no-progress"]
    code = ("import sys; sys.modules['matplotlib'] = None\n"  # as if it were not installed
            "from cxrviewer.cli import main\n"
            f"sys.exit(main({argv!r}))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2 and "pip install 'cxrviewer[validate]'" in proc.stderr
    assert not (tmp_path / "rep" / "results.csv").exists()
    argv.append("--no-figures")  # the tables need no matplotlib
    proc = subprocess.run([sys.executable, "-c", code.replace(repr(argv[:-1]), repr(argv))], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "rep" / "index.html").is_file()


def test_only_ok_rows_are_evaluated_and_not_applicable_is_no_failure():
    from cxrviewer.validate.site import failed_count, gather_rows

    labels = ("Mass", "Edema")
    paths = ["/f/a.png", "/f/b.dcm", "/f/c.png", "/f/d.png", "/f/e.png"]
    matched = [(p, i) for i, p in enumerate(paths)]
    last = {
        "/f/a.png": {"status": "ok", "Mass": "0.25", "Edema": "0.5"},
        "/f/b.dcm": {"status": "not_applicable", "Mass": "", "Edema": "", "error": "lateral view (View Position LL)"},
        "/f/c.png": {"status": "error", "Mass": "", "Edema": ""},
        "/f/d.png": {"status": "ok", "Mass": "", "Edema": "0.1"},  # damaged by hand
    }
    statuses, rows, scores = gather_rows(matched, paths, last, labels)
    assert rows == [0] and scores == [[0.25, 0.5]]
    assert statuses == {"ok": 1, "not_applicable": 1, "error": 1, "unreadable row": 1, "not scored": 1}
    assert failed_count(statuses) == 3


@pytest.mark.slow
def test_sigterm_stops_before_the_report_and_a_rerun_resumes(tmp_path, tiny_model):
    import os
    import signal
    import time

    films = tmp_path / "films"
    films.mkdir()
    rng = np.random.default_rng(0)
    base = synthetic_pixels(1024, 1024)
    lines = ["Image Index,Finding Labels,Patient ID"]
    for i in range(120):
        write_png(films / f"film{i:03d}.png", np.clip(base + rng.normal(0, 0.02, base.shape), 0, 1))
        lines.append(f"film{i:03d}.png,{'Mass' if i % 3 == 0 else 'No Finding'},{i}")
    labels = tmp_path / "labels.csv"
    labels.write_text("\n".join(lines) + "\n")
    report = tmp_path / "rep"
    cmd = [sys.executable, "-m", "cxrviewer", "validate", str(films), "--labels", str(labels), "--report", str(report),
           "--model", str(tiny_model), "--workers", "1", "--batch-size", "4", "--no-figures", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = report / "results.csv"
    deadline = time.monotonic() + 60
    while (not results.exists() or results.read_bytes().count(b"\n") < 9) and time.monotonic() < deadline \
            and proc.poll() is None:
        time.sleep(0.005)
    assert proc.poll() is None, "the run finished before it could be stopped; give it more films"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "interrupted before the report" in err and "Traceback" not in err
    assert not (report / "metrics.json").exists()
    scored = results.read_bytes().count(b"\n") - 1
    assert 0 < scored < 120
    rerun = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    doc = json.loads((report / "metrics.json").read_text())
    assert doc["films"]["already_scored"] == scored and doc["films"]["scored_now"] == 120 - scored
    assert doc["findings"]["Mass"]["n"] == 120 and doc["findings"]["Mass"]["positives"] == 40
