import csv
import json
import subprocess
import sys

import pytest

from cxrviewer.cli import main
from helpers import REPO, synthetic_pixels, write_png
from tinymodel import LABELS


def rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_score_real_films_one_row_each_exit_0(tmp_path, tiny_model, nih_images, dicom_corpus):
    out = tmp_path / "r.csv"
    folders = sorted({p.parent for p in nih_images}) + [dicom_corpus["nih_dx"].parent]
    # every film, also those the model does not read by their header (a tibia, test patterns)
    code = main(["score", *map(str, folders), "--out", str(out), "--model", str(tiny_model), "--no-progress",
                 "--score-all"])
    got = rows(out)
    n_files = sum(len([p for p in f.iterdir() if p.suffix in (".png", ".dcm")]) for f in folders)
    assert code == 0, [r["error"] for r in got if r["status"] != "ok"]
    assert len(got) == n_files
    assert all(r["status"] == "ok" for r in got)
    assert [c for c in got[0] if c in LABELS] == list(LABELS)


def test_broken_file_exits_1_and_keeps_other_rows(tmp_path, tiny_model, capsys):
    d = tmp_path / "in"
    d.mkdir()
    for i in range(3):
        write_png(d / f"ok{i}.png", synthetic_pixels())
    (d / "bad.dcm").write_text("not a dicom at all")
    out = tmp_path / "r.csv"
    code = main(["score", str(d), "--out", str(out), "--model", str(tiny_model), "--no-progress"])
    assert code == 1
    got = {r["path"].split("/")[-1]: r for r in rows(out)}
    assert len(got) == 4 and got["bad.dcm"]["status"] == "error" and got["bad.dcm"]["error"]
    err = capsys.readouterr().err
    assert "Traceback" not in err and "3 scored, 1 failed" in err


def test_export_cli_equals_api_bytes(tmp_path, tiny_model, nih_images):
    from cxrviewer.export import export_png
    from cxrviewer.io import read_film
    from cxrviewer.model import Classifier
    from cxrviewer.render import RenderOptions

    src = nih_images[0]
    out_cli = tmp_path / "cli.png"
    assert main(["export", str(src), "--out", str(out_cli), "--model", str(tiny_model),
                 "--classes", "Mass,Effusion", "--alpha", "0.5", "--colormap", "turbo"]) == 0
    clf = Classifier.load(tiny_model)
    film = read_film(src)
    out_api = export_png(tmp_path / "api.png", film, clf.predict_one(film), clf.info,
                         RenderOptions(("Mass", "Effusion"), 0.5, "turbo"))
    assert out_cli.read_bytes() == out_api.read_bytes()


def test_export_unknown_class_is_a_clear_error(tmp_path, tiny_model, nih_images, capsys):
    code = main(["export", str(nih_images[0]), "--out", str(tmp_path / "x.png"), "--model", str(tiny_model), "--classes", "Lung cancer"])
    assert code == 2
    err = capsys.readouterr().err
    assert "Unknown finding 'Lung cancer'" in err and "Pleural Thickening" in err
    assert err.rstrip().endswith("(--classes)") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()


def test_score_refuses_an_unknown_class_before_scoring(tmp_path, tiny_model, nih_images, capsys):
    out = tmp_path / "r.csv"
    code = main(["score", str(nih_images[0]), "--out", str(out), "--model", str(tiny_model), "--no-progress",
                 "--export-dir", str(tmp_path / "pics"), "--classes", "Mas"])
    assert code == 2
    assert "Unknown finding 'Mas'" in capsys.readouterr().err
    assert not out.exists()


def test_a_finding_is_named_by_its_label_or_its_display_name(tmp_path, tiny_model, nih_images):
    by_label, by_name = tmp_path / "a.png", tmp_path / "b.png"
    base = [str(nih_images[0]), "--model", str(tiny_model), "--mode", "contour"]
    assert main(["export", *base, "--out", str(by_label), "--classes", "Pleural_Thickening,mass"]) == 0
    assert main(["export", *base, "--out", str(by_name), "--classes", "pleural thickening, Mass"]) == 0
    assert by_label.read_bytes() == by_name.read_bytes()


def test_every_option_says_what_it_is_and_its_default():
    from cxrviewer.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, cmd in sub.choices.items():
        assert cmd.description, name
        for action in cmd._actions:
            if action.dest in ("help",):
                continue
            assert action.help, (name, action.dest)
            if not action.required and action.option_strings and action.nargs != 0:
                assert "default" in action.help, (name, action.dest)


def test_info_json(tiny_model, capsys):
    assert main(["info", "--model", str(tiny_model), "--json"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["labels"] == list(LABELS) and card["demo"] is True
    assert card["provider"] == "CPUExecutionProvider"


def test_missing_model_and_bad_output_are_one_line_errors(tmp_path, nih_images, capsys):
    assert main(["info", "--model", str(tmp_path / "none.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cxrviewer: error: Model file not found") and "\n" not in err


def test_usage_errors_exit_2(tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["score", "x.png", "--out", "r.csv", "--alpha", "3"])
    assert exc.value.code == 2


def test_python_dash_m_runs(tiny_model):
    proc = subprocess.run([sys.executable, "-m", "cxrviewer", "info", "--model", str(tiny_model)],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "tiny-test-1" in proc.stdout
    assert "for a real model see docs/models.md" in proc.stdout  # the tiny model is a demo
    assert "maps:          Grad-CAM of the class score (format version 2)" in proc.stdout
