"""The applicability gate (issue 26 point 2): DICOM films the model does not read by their header
are ``not_applicable`` in `score` (CSV and Parquet), not failures, not retried; ``--score-all``
scores them with their rows marked; a frontal chest film is scored exactly as before."""

from __future__ import annotations

import csv
import json

import numpy as np
import onnx
import pytest

from cxrviewer.applicability import NOT_APPLICABLE, OUTSIDE_USE, check, check_header
from cxrviewer.batch import score_films, score_to_csv
from cxrviewer.cli import main
from cxrviewer.contract import from_metadata, to_metadata
from cxrviewer.errors import ModelError
from cxrviewer.io import read_film
from cxrviewer.model import Classifier
from cxrviewer.results import read_results
from cxrviewer.types import ANY, Applicability
from gatefilms import LATERAL_REASON, TIBIA_REASON, frontal_chest, lateral_chest, tibia_cr
from helpers import SHARED_DATA
from tinymodel import LABELS, build_tiny_model, tiny_info

DICOM = {"format": "dicom", "modality": "CR"}


# ---------------------------------------------------------------------------- the rule
@pytest.mark.parametrize("meta, reason", [
    ({"view_position": "LL"}, LATERAL_REASON),
    ({"view_position": "RL"}, "lateral view (View Position RL): the model reads frontal chest films"),
    ({"view_position": "LLD"}, "decubitus view (View Position LLD): the model reads frontal chest films"),
    ({"body_part": "TIBIA"}, TIBIA_REASON),
    ({"body_part": "LEG"}, "body part LEG: the model reads chest films"),
    ({"modality": "MR"}, "modality MR: the model reads chest radiographs (CR, DX, DR, or a secondary capture of one)"),
    ({"modality": None}, "no Modality in the header: the model reads chest radiographs (CR, DX, DR, or a secondary capture of one)"),
    ({"modality": "OT", "sop_class_uid": "1.2.840.10008.5.1.4.1.1.7"},
     "modality OT (a secondary capture of unknown origin): the model reads chest radiographs (CR, DX, DR, or a "
     "secondary capture of one)"),
    ({"patient_orientation": ("P", "F")}, "lateral view (Patient Orientation P\\F): the model reads frontal chest films"),
    ({"patient_orientation": ("A", "FR")}, "lateral view (Patient Orientation A\\FR): the model reads frontal chest films"),
])
def test_films_the_model_does_not_read_get_a_reason(meta, reason):
    verdict = check_header({**DICOM, **meta})
    assert (verdict.applicable, verdict.reason) == (False, reason)


def test_image_laterality_decides_only_where_a_card_says_so():
    assert check_header({**DICOM, "laterality": "R"}).applicable
    verdict = check_header({**DICOM, "laterality": "R"}, Applicability(lateralities=("B", "U")))
    reason = "one side only, the right (Image Laterality R): the model reads frontal chest films"
    assert (verdict.applicable, verdict.reason) == (False, reason)


@pytest.mark.parametrize("meta", [
    {},  # body part, view, orientation and laterality absent
    {"body_part": "CHEST", "view_position": "PA", "patient_orientation": ("L", "F"), "laterality": "B"},
    {"modality": "DX", "view_position": "AP", "patient_orientation": ("R", "F")},  # shown mirrored: still frontal
    {"modality": "DR", "patient_orientation": ("F", "L")},  # turned a quarter: rows H/F, columns L/R
    {"modality": "dx", "body_part": " chest ", "view_position": "pa", "laterality": "U"},
    # a secondary capture of a CR (its SC Equipment Modality, PS3.3 C.8.6.1)
    {"modality": "CR", "sop_class_uid": "1.2.840.10008.5.1.4.1.1.7", "body_part": "CHEST"},
    {"patient_orientation": ("LP", "F")},  # oblique, L dominant
    {"modality": None, "sop_class_uid": "1.2.840.10008.5.1.4.1.1.1"},  # no Modality: a CR by its SOP class
    {"modality": "", "sop_class_uid": "1.2.840.10008.5.1.4.1.1.1.1"},  # a DX for presentation
])
def test_frontal_chest_films_pass(meta):
    assert check_header({**DICOM, **meta}).applicable


def test_films_without_a_header_always_pass(synthetic_film):
    assert check_header({"format": "png", "width": 3}).applicable
    assert check(synthetic_film).applicable


def test_a_model_card_may_widen_or_narrow_the_rule():
    lateral_model = Applicability(view_positions=("LL", "RL"))
    assert check_header({**DICOM, "view_position": "LL", "patient_orientation": ("P", "F")}, lateral_model).applicable
    frontal = check_header({**DICOM, "view_position": "PA"}, lateral_model)
    assert frontal.reason == "frontal view (View Position PA): the model reads lateral chest films"
    # a lateral film without a View Position is still told by its orientation
    assert not check_header({**DICOM, "patient_orientation": ("L", "F")}, lateral_model).applicable
    both = Applicability(view_positions=("PA", "AP", "LL", "RL"))
    assert check_header({**DICOM, "patient_orientation": ("P", "F")}, both).applicable
    anything = Applicability(modalities=ANY, body_parts=ANY, view_positions=ANY, lateralities=ANY)
    assert check_header({"format": "dicom", "modality": "MR", "body_part": "KNEE", "view_position": "LL",
                         "patient_orientation": ("A", "F"), "laterality": "L"}, anything).applicable
    pa_only = Applicability(view_positions=("PA",))
    assert check_header({**DICOM, "view_position": "AP"}, pa_only).reason == (
        "frontal view (View Position AP): the model reads frontal chest films")


def test_the_card_key_round_trips_and_is_checked(tiny_model):
    info = Classifier.load(tiny_model, device="cpu").info
    assert info.applicable == Applicability()
    props = to_metadata(info)
    assert "cxr.applicable" not in props  # the default is written as absent: files stay as they were
    import dataclasses

    wide = dataclasses.replace(info, applicable=Applicability(view_positions=("pa", "LL"), body_parts=ANY))
    props = to_metadata(wide)
    assert json.loads(props["cxr.applicable"]) == {
        "modalities": ["CR", "DX", "DR"], "body_parts": "any", "view_positions": ["PA", "LL"], "lateralities": "any"}
    assert from_metadata(props).applicable == wide.applicable
    # keys are optional: the rest keep their default
    assert from_metadata({**props, "cxr.applicable": '{"view_positions": ["LL"]}'}).applicable == Applicability(
        view_positions=("LL",))
    for bad in ('["PA"]', '{"views": ["PA"]}', '{"view_positions": []}', '{"body_parts": "CHEST"}'):
        with pytest.raises(ModelError, match="cxr.applicable is malformed"):
            from_metadata({**props, "cxr.applicable": bad})


# ---------------------------------------------------------------------- the header facts
def test_the_reader_records_the_header_facts_the_gate_needs(tmp_path):
    lateral = read_film(lateral_chest(tmp_path))
    assert lateral.metadata["view_position"] == "LL"
    assert lateral.metadata["patient_orientation"] == ("P", "F")
    assert lateral.metadata["body_part"] == "CHEST"
    assert lateral.metadata["sop_class_uid"].startswith("1.2.840.10008.5.1.4.1.1.")
    assert read_film(tibia_cr(tmp_path)).metadata["body_part"] == "TIBIA"
    assert check(lateral).reason == LATERAL_REASON


# --------------------------------------------------------------------------- scoring
@pytest.fixture
def gate_films(tmp_path, nih_samples):
    folder = tmp_path / "films"
    films = {"lateral": lateral_chest(folder), "tibia": tibia_cr(folder), "frontal": frontal_chest(folder)}
    png = folder / nih_samples[0].name
    png.write_bytes(nih_samples[0].read_bytes())
    films["png"] = png
    return films


def _rows(out) -> dict[str, dict]:
    return {r["path"].rsplit("/", 1)[-1]: r for r in read_results(out)}


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_score_marks_films_the_model_does_not_read(tmp_path, gate_films, tiny_model, capsys, kind):
    out = tmp_path / ("results.csv" if kind == "csv" else "results/")
    dicom_out = tmp_path / "dicom-results"
    code = main(["score", str(gate_films["lateral"].parent), "--out", str(out), "--model", str(tiny_model),
                 "--no-progress", "--dicom-out", str(dicom_out)])
    assert code == 0  # not applicable is not a failure
    err = capsys.readouterr().err
    assert "2 scored, 0 failed, 2 not applicable of 4 files" in err
    rows = _rows(out)
    for name, reason in (("lateral.dcm", LATERAL_REASON), ("tibia.dcm", TIBIA_REASON)):
        row = rows[name]
        assert (row["status"], row["error"]) == (NOT_APPLICABLE, reason)
        assert all(row[label] == "" for label in LABELS)  # no probabilities
        assert row["positives"] == row["regions"] == row["ood_score"] == ""
    assert rows["frontal.dcm"]["status"] == rows[gate_films["png"].name]["status"] == "ok"
    assert rows["frontal.dcm"]["error"] == ""
    # DICOM results (SR, GSPS, SC) for the frontal film only
    written = sorted(p.name for p in dicom_out.rglob("*.dcm"))
    assert len(written) == 3 and all(name.startswith(_sop_uid(gate_films["frontal"])) for name in written)

    # resume: the films the model does not read are done, not tried again (their DICOM results
    # are not "missing": they have none)
    assert main(["score", str(gate_films["lateral"].parent), "--out", str(out), "--model", str(tiny_model),
                 "--no-progress", "--dicom-out", str(dicom_out)]) == 0
    assert "0 scored, 0 failed, 4 already done of 4 files" in capsys.readouterr().err

    # --score-all scores them now (resuming the same results), each row marked
    assert main(["score", str(gate_films["lateral"].parent), "--out", str(out), "--model", str(tiny_model),
                 "--no-progress", "--score-all"]) == 0
    assert "2 scored (2 outside the model's use), 0 failed, 2 already done of 4 files" in capsys.readouterr().err
    rows = _rows(out)
    for name, reason in (("lateral.dcm", LATERAL_REASON), ("tibia.dcm", TIBIA_REASON)):
        assert (rows[name]["status"], rows[name]["error"]) == ("ok", OUTSIDE_USE + reason)
        assert all(0.0 <= float(rows[name][label]) <= 1.0 for label in LABELS)


def _sop_uid(path) -> str:
    import pydicom

    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def test_a_run_of_only_films_the_model_does_not_read_exits_0(tmp_path, gate_films, tiny_model, capsys):
    out = tmp_path / "r.csv"
    assert main(["score", str(gate_films["lateral"]), str(gate_films["tibia"]), "--out", str(out),
                 "--model", str(tiny_model), "--no-progress"]) == 0
    assert "0 scored, 0 failed, 2 not applicable of 2 files" in capsys.readouterr().err
    with open(out, newline="", encoding="utf-8") as fh:
        assert [r["status"] for r in csv.DictReader(fh)] == [NOT_APPLICABLE, NOT_APPLICABLE]


def test_frontal_chest_films_are_scored_exactly_as_before(tmp_path, gate_films, tiny_model, generated_dicoms):
    """The gate adds no step to a film it passes: the probabilities are the model's on the film as
    read (``Classifier.predict_one(read_film(...))``, the path untouched by the gate) ≤ 1e-6,
    through score_films and through the CSV (6 decimals)."""
    clf = Classifier.load(tiny_model, device="cpu")
    films = [gate_films["frontal"], gate_films["png"], generated_dicoms["nih_dx"], generated_dicoms["no_preamble_chest"]]
    if SHARED_DATA.is_dir():
        films += [SHARED_DATA / "dicom" / n for n in ("torchxrayvision_siim_cr_chest.dcm", "nccid_nih_cxr14_gcp_dx.dcm",
                                                       "dcmfx_fo-dicom_CR-MONO1-10-chest.dcm")]
    direct = {str(f): clf.predict_one(read_film(f)).probabilities for f in films}
    results = score_films(list(films), clf)
    assert [r.status for r in results] == ["ok"] * len(films)
    assert all(r.outside_use is None for r in results)
    for r in results:
        assert np.abs(r.prediction.probabilities - direct[str(r.path)]).max() <= 1e-6
    out = tmp_path / "frontal.csv"
    summary = score_to_csv(films, clf, out, workers=1)
    assert (summary.scored, summary.not_applicable, summary.failed) == (len(films), 0, 0)
    for row in read_results(out):
        got = np.array([float(row[label]) for label in clf.info.labels])
        assert np.abs(got - direct[row["path"]]).max() <= 1e-6


def test_score_films_keeps_the_reason_with_score_all(gate_films, tiny_model):
    clf = Classifier.load(tiny_model, device="cpu")
    gated, scored = score_films([gate_films["lateral"]], clf)[0], score_films([gate_films["lateral"]], clf, score_all=True)[0]
    assert (gated.status, gated.error, gated.outside_use, gated.prediction) == (
        NOT_APPLICABLE, LATERAL_REASON, LATERAL_REASON, None)
    assert (scored.status, scored.error, scored.outside_use) == ("ok", None, LATERAL_REASON)
    # scored anyway, the film gets the model's own answer on it
    np.testing.assert_allclose(scored.prediction.probabilities,
                               clf.predict_one(read_film(gate_films["lateral"])).probabilities, atol=1e-6)


def test_the_model_card_decides(tmp_path, gate_films):
    """A model whose card reads lateral chest films scores the lateral film and refuses the frontal one."""
    model = build_tiny_model(tmp_path / "lateral.onnx", tiny_info(64))
    m = onnx.load(str(model))
    m.metadata_props.add(key="cxr.applicable", value=json.dumps({"view_positions": ["LL", "RL"]}))
    onnx.save(m, str(model))
    clf = Classifier.load(model, device="cpu")
    lateral, frontal = score_films([gate_films["lateral"], gate_films["frontal"]], clf)
    assert lateral.status == "ok" and lateral.outside_use is None
    assert frontal.status == NOT_APPLICABLE
    assert frontal.error == "frontal view (View Position PA): the model reads lateral chest films"


@pytest.mark.slow
def test_the_ray_engine_gates_through_the_same_per_film_function(tmp_path, gate_films, tiny_model):
    """Ray's actors run score_films: the same not_applicable rows, cell for cell, as the local
    engine; with score_all the same scored rows."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    from helpers import REPO

    from cxrviewer.scale import RayOptions, score_on_ray

    films = sorted(gate_films.values())
    clf = Classifier.load(tiny_model, device="cpu", threads=1)
    pythonpath = f"{REPO}{__import__('os').pathsep}{REPO / 'tests'}"
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=150 * 1024 * 1024, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": pythonpath}})
    try:
        for score_all in (False, True):
            local, remote = tmp_path / f"local-{score_all}.csv", tmp_path / f"ray-{score_all}/"
            want = score_to_csv(films, clf, local, workers=1, score_all=score_all)
            got = score_on_ray(films, tiny_model, remote, options=RayOptions(workers=1), score_all=score_all)
            assert (got.scored, got.not_applicable, got.failed, got.outside_use) == (
                want.scored, want.not_applicable, want.failed, want.outside_use)
            assert (got.not_applicable, got.outside_use) == ((0, 2) if score_all else (2, 0))

            def cells(out):
                return sorted(({k: v for k, v in r.items() if k != "seconds"} for r in read_results(out)),
                              key=lambda r: r["path"])

            assert cells(remote) == cells(local)
    finally:
        ray.shutdown()


def test_info_shows_which_films_the_model_reads(tiny_model, capsys):
    assert main(["info", "--model", str(tiny_model), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["applicable"] == {
        "modalities": ["CR", "DX", "DR"], "body_parts": ["CHEST"], "view_positions": ["PA", "AP"], "lateralities": "any"}
    assert main(["info", "--model", str(tiny_model)]) == 0
    assert ("reads (DICOM): modalities CR, DX, DR; body parts CHEST; view positions PA, AP; lateralities any"
            in capsys.readouterr().out)


def test_the_resume_index_keeps_not_applicable_films_apart():
    """The last row of a film wins: not_applicable is done (but not scored), error is retried."""
    from cxrviewer.results import KeyIndex

    index = KeyIndex()
    for path, status in (("/f/a.dcm", "not_applicable"), ("/f/b.dcm", "ok"), ("/f/c.dcm", "not_applicable"),
                         ("/f/c.dcm", "error"), ("/f/d.dcm", "error"), ("/f/d.dcm", "not_applicable"),
                         ("/f/e.dcm", "not_applicable"), ("/f/e.dcm", "ok")):
        index.add(path, status, "10", "20")
    done = index.freeze()
    key = {name: (f"/f/{name}.dcm", 10, 20) for name in "abcde"}
    assert [key[n] in done for n in "abcde"] == [True, True, False, True, True]
    assert [done.scored(key[n]) for n in "abcde"] == [False, True, False, False, True]
    assert len(done) == 4


def test_export_of_one_film_says_it_is_outside_the_models_use(tmp_path, gate_films, tiny_model, caplog):
    import logging

    caplog.set_level(logging.WARNING, logger="cxrviewer")
    assert main(["export", str(gate_films["lateral"]), "--out", str(tmp_path / "l.png"), "--model", str(tiny_model)]) == 0
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "outside" in r.getMessage()] == [
        f"lateral.dcm is outside the model's use: {LATERAL_REASON} (cxrviewer score gives such films the status "
        "not_applicable)"]
    caplog.clear()
    assert main(["export", str(gate_films["frontal"]), "--out", str(tmp_path / "f.png"), "--model", str(tiny_model)]) == 0
    assert not [r for r in caplog.records if "outside" in r.getMessage()]
