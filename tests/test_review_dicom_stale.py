"""DICOM results of a film replaced in place by one the model does not read (review): the
results made from the earlier version describe a film that is no longer there; they go."""

from __future__ import annotations

import os
import shutil

import pydicom

from cxrviewer.cli import main
from cxrviewer.dicom.folder import DicomResultsFolder, dicom_uids


def _score(films, out, model, capsys) -> tuple[int, str]:
    code = main(["score", str(films), "--out", str(out / "results.csv"), "--dicom-out", str(out / "dicom"),
                 "--model", str(model), "--no-progress", "--workers", "1"])
    return code, capsys.readouterr().err


def test_results_of_a_film_replaced_by_a_lateral_are_removed(tmp_path, dicom_corpus, tiny_model, capsys, caplog):
    films = tmp_path / "films"
    films.mkdir()
    film = shutil.copy2(dicom_corpus["nih_dx"], films / "film.dcm")
    out = tmp_path / "out"
    code, err = _score(films, out, tiny_model, capsys)
    assert code == 0 and "wrote 3 DICOM result(s)" in err, err
    paths = DicomResultsFolder(out / "dicom").paths(dicom_uids(film))
    assert all(p.is_file() for p in paths.values())

    ds = pydicom.dcmread(film)  # the same UIDs, now a lateral view
    ds.ViewPosition = "LL"
    ds.save_as(film)
    st = film.stat()
    os.utime(film, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    code, err = _score(films, out, tiny_model, capsys)
    assert code == 0 and "1 not applicable" in err, err
    assert not any(p.exists() for p in paths.values()), err  # no findings left on a film the model does not read
    assert "removed its DICOM results (sr, gsps, sc)" in caplog.text
    caplog.clear()

    # a third run: nothing to do, nothing removed
    code, err = _score(films, out, tiny_model, capsys)
    assert code == 0 and "1 already done" in err and "removed" not in caplog.text, err


def test_results_of_a_film_that_has_not_changed_are_kept(tmp_path, dicom_corpus, tiny_model, capsys):
    # scored with --score-all, then a run without it: the film is the same, its results stay
    films = tmp_path / "films"
    films.mkdir()
    film = shutil.copy2(dicom_corpus["nih_dx"], films / "film.dcm")
    ds = pydicom.dcmread(film)
    ds.ViewPosition = "LL"
    ds.save_as(film)
    out = tmp_path / "out"
    code = main(["score", str(films), "--out", str(out / "results.csv"), "--dicom-out", str(out / "dicom"),
                 "--model", str(tiny_model), "--no-progress", "--workers", "1", "--score-all"])
    assert code == 0
    capsys.readouterr()
    paths = DicomResultsFolder(out / "dicom").paths(dicom_uids(film))
    assert all(p.is_file() for p in paths.values())
    (out / "results.csv").unlink()  # scored afresh without --score-all: not_applicable
    code, err = _score(films, out, tiny_model, capsys)
    assert code == 0 and "1 not applicable" in err, err
    assert all(p.is_file() for p in paths.values()), err
