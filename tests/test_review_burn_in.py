"""A burned-in patient name that the picture's font cannot draw (review): a name wholly in another
script would read "Patient: ?, ??", identifying nobody; the export says so instead."""

from __future__ import annotations

import pytest

from cxrviewer.cli import main
from gatefilms import _edited


@pytest.mark.parametrize("charset, name", [("GB18030", "王^小明"), ("ISO_IR 192", "山田^太郎")])
def test_a_name_the_font_cannot_draw_is_not_burned_in_as_question_marks(tmp_path, tiny_model, capsys, charset, name,
                                                                         dicom_corpus):
    chest = dicom_corpus["nih_dx"]  # generated from a sample; the real DX where ../shared/data is
    film = _edited(chest, tmp_path / "film.dcm", SpecificCharacterSet=charset, PatientName=name)
    out = tmp_path / "sc.dcm"
    code = main(["export", str(film), "--out", str(out), "--format", "dicom-sc", "--burn-in-patient-name",
                 "--model", str(tiny_model)])
    err = capsys.readouterr().err
    assert code != 0 and not out.exists(), err
    assert "cannot draw" in err and name.split("^")[0] not in err  # never the name itself


def test_a_latin_name_is_still_burned_in(tmp_path, tiny_model, capsys, dicom_corpus):
    chest = dicom_corpus["nih_dx"]
    film = _edited(chest, tmp_path / "film.dcm", SpecificCharacterSet="ISO_IR 100", PatientName="Müller^Jürgen")
    out = tmp_path / "sc.dcm"
    assert main(["export", str(film), "--out", str(out), "--format", "dicom-sc", "--burn-in-patient-name",
                 "--model", str(tiny_model)]) == 0
    assert out.is_file()
