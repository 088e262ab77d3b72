"""`cxr-train export RUN --int8`: the quantized copy, its metadata, its parity check and its report."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from dataclasses import replace

import numpy as np
import pytest

# slow: a trained run and its int8 calibration
pytestmark = [pytest.mark.training, pytest.mark.slow]
pytest.importorskip("tensorflow")

from cxrviewer import contract  # noqa: E402
from cxrviewer.io import read_film  # noqa: E402
from cxrviewer.model import Classifier  # noqa: E402
from cxrviewer.preprocess import model_input  # noqa: E402
from training import cli  # noqa: E402
from training.report import INT8_HEADING, render_report  # noqa: E402
from training.run import INT8_JSON  # noqa: E402

FILMS = ["00000022_000.png", "00000103_000.png", "00000468_014.png", "00001153_004.png"]


def _copy_run(trained_run, dest):
    shutil.copytree(trained_run, dest, ignore=shutil.ignore_patterns("*.png", "model.int8*", INT8_JSON))
    return dest


def _cli(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(argv)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def int8_run(trained_run, tmp_path_factory):
    """One accepted `export --int8` (16 calibration films) on a copy of the session's run."""
    run = _copy_run(trained_run, tmp_path_factory.mktemp("int8") / "run")
    rc, out, err = _cli(["-q", "export", str(run), "--int8", "--calibration-films", "16"])
    assert rc == 0, err
    return run, out


@pytest.fixture(scope="module")
def models(int8_run):
    run, _ = int8_run
    return Classifier.load(run / "model.onnx", device="cpu"), Classifier.load(run / "model.int8.onnx", device="cpu")


def test_int8_model_is_written_next_to_fp32_and_loads(int8_run, models):
    run, out = int8_run
    fp32, int8 = models
    assert (run / "model.int8.onnx").is_file() and not list(run.glob("*.candidate*"))
    assert "accepted: mean AUROC drop" in out and "films/s" in out
    assert fp32.info.precision == "fp32" and int8.info.precision == "int8"
    assert (run / "model.int8.onnx").stat().st_size < 0.5 * (run / "model.onnx").stat().st_size  # int8 weights


def test_int8_keeps_every_metadata_key(int8_run, models):
    import onnx

    run, _ = int8_run
    props = {m: {p.key: p.value for p in onnx.load(str(run / m), load_external_data=False).metadata_props}
             for m in ("model.onnx", "model.int8.onnx")}
    fp32, int8 = props["model.onnx"], props["model.int8.onnx"]
    assert contract.PRECISION_KEY not in fp32  # fp32 exports are as before
    assert int8 == {**fp32, contract.PRECISION_KEY: '"int8"'}
    assert models[1].info == replace(models[0].info, precision="int8")


def test_int8_outputs_are_float_and_close_to_fp32(nih, models):
    fp32, int8 = models
    info = fp32.info
    x = np.stack([model_input(read_film(nih / "images" / n).pixels, info.input_size, info.mean, info.std) for n in FILMS])
    a, b = fp32.run(x), int8.run(x)
    for name in ("probs", "cams", "features"):
        u, v = getattr(a, name), getattr(b, name)
        assert v.dtype == np.float32 and v.shape == u.shape, name
    assert {o.name: o.type for o in int8.session.get_outputs()} == {n: "tensor(float)" for n in contract.OUTPUT_NAMES}
    assert float(np.max(np.abs(a.probs - b.probs))) < 0.05
    # the head is float: probabilities are not rounded to 8-bit steps
    assert len(np.unique(b.probs)) == b.probs.size
    # the whole app path works on the int8 file
    films = [read_film(nih / "images" / n) for n in FILMS]
    assert all(np.isfinite(p.ood_score) for p in int8.predict(films))


def test_parity_report_is_written(int8_run):
    from training.run import Run

    run, _ = int8_run
    r = json.loads((run / INT8_JSON).read_text())
    assert r["accepted"] is True and r["held_out_split"] == "test"
    train_films = len(Run.open(run).splits()["train"])  # 16 asked for; the run may have fewer
    assert r["quantization"]["calibration_films"] == min(16, train_films) and r["quantization"]["format"] == "QDQ"
    p = r["parity"]
    print("int8 parity:", {k: p[k] for k in ("films", "labels_scored", "mean_auroc_drop", "max_abs_delta_prob")}, r["speed"])
    assert p["films"] >= 1 and p["labels_scored"] and p["mean_auroc_drop"] <= r["max_auroc_drop"] == 0.005
    assert set(p["auroc_int8"]) == set(p["labels_scored"])
    assert 0 <= p["max_abs_delta_prob"] < 0.05
    s = r["speed"]
    assert s["threads"] == 1 and s["fp32_films_per_s"] > 0 and s["int8_films_per_s"] > 0
    report = (run / "report.md").read_text()
    assert "Demo model" in report and report.count(INT8_HEADING + "\n") == 1 and "**accepted**" in report
    # `cxr-train evaluate` rewrites report.md: the int8 section survives it
    metrics = json.loads((run / "metrics.json").read_text())
    assert "**accepted**" in render_report(Run.open(run), metrics)


def test_info_shows_precision(int8_run, capsys):
    from cxrviewer.cli import main

    run, _ = int8_run
    assert main(["info", "--model", str(run / "model.int8.onnx")]) == 0
    assert "precision:     int8" in capsys.readouterr().out
    assert main(["info", "--model", str(run / "model.int8.onnx"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["precision"] == "int8"


def test_failed_parity_exits_nonzero_and_keeps_no_int8_file(int8_run, tmp_path, monkeypatch):
    accepted, _ = int8_run
    run = _copy_run(accepted, tmp_path / "run")
    shutil.copy(accepted / "model.int8.onnx", run / "model.int8.onnx")  # an older, accepted int8 file
    # the fp32 export is the one the fixture made (re-exporting it costs ~15 s of tf2onnx, tested elsewhere)
    monkeypatch.setattr("training.export.export_run", lambda run_dir, out=None, *a, **k: run_dir / "model.onnx")
    rc, _, err = _cli(["-q", "export", str(run), "--int8", "--calibration-films", "8", "--max-auroc-drop", "-1"])
    assert rc == 2
    line = err.strip().splitlines()[-1]
    assert line.startswith("cxr-train: error: The int8 model was rejected: mean AUROC drop")
    assert "> the limit -1" in line and "fp32 model" in line and "report.md" in line
    assert not (run / "model.int8.onnx").exists() and not list(run.glob("*.candidate*"))
    assert (run / "model.onnx").is_file()
    r = json.loads((run / INT8_JSON).read_text())
    assert r["accepted"] is False and r.get("removed_previous") is True
    assert "**REJECTED**" in (run / "report.md").read_text()
