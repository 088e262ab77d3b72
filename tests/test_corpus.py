"""Every bad file gets its own clear error row; every good file beside it is scored."""

from __future__ import annotations

import csv
import logging
from collections import Counter
from pathlib import Path

import pytest

from badcorpus import make_corpus
from cxrviewer.cli import main
from cxrviewer.errors import CxrError
from cxrviewer.io import read_film


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, nih_samples, generated_dicoms):
    folder = tmp_path_factory.mktemp("corpus") / "hospital folder"
    bad, good = make_corpus(folder, nih_samples[0], generated_dicoms["nih_dx"])
    return folder, bad, good


def test_read_film_gives_a_specific_cxr_error_for_each_bad_file(corpus):
    _, bad, _ = corpus
    for path, words in bad.items():
        with pytest.raises(CxrError) as exc:
            read_film(path)
        msg = str(exc.value)
        for w in words:
            assert w.lower() in msg.lower(), f"{path.name}: {msg!r} should mention {w!r}"


def test_score_corpus_folder(corpus, tiny_model, tmp_path, capsys, caplog):
    folder, bad, good = corpus
    out = tmp_path / "r.csv"
    caplog.set_level(logging.DEBUG)
    # the folder itself, plus a broken symlink named explicitly (a scan skips it; a named file
    # always gets its row). A folder named "a folder.png" is a folder: scanned, never a film.
    inputs = [str(folder), str(folder / "gone.png")]
    bad = {p: w for p, w in bad.items() if not p.is_dir()}
    code = main(["score", *inputs, "--out", str(out), "--model", str(tiny_model), "--no-progress"])
    err = capsys.readouterr().err
    with open(out, newline="", encoding="utf-8") as f:
        rows = {Path(r["path"]).name: r for r in csv.DictReader(f)}
    assert code == 1
    assert "Traceback" not in err
    for p in good:
        assert rows[p.name]["status"] == "ok", (p.name, rows[p.name]["error"])
    for p in bad:
        assert rows[p.name]["status"] == "error" and rows[p.name]["error"], p.name
    assert len(rows) == len(bad) + len(good)
    assert Counter(r["status"] for r in rows.values()) == {"error": len(bad), "ok": len(good)}
    # no PHI of the generated DICOMs anywhere in logs or output
    text = caplog.text + err + out.read_text(encoding="utf-8")
    for phi in ("Doe^Jane", "Doe", "SECRET-ID-123", "19450317"):
        assert phi not in text
