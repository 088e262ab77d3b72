"""A batch run that is killed loses nothing on rerun; inputs are never modified."""

from __future__ import annotations

import csv
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cxrviewer.cli import main
from helpers import REPO, synthetic_pixels, write_png


def rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def data_lines(path: Path) -> int:
    return max(0, path.read_bytes().count(b"\n") - 1) if path.exists() else 0


SCORE_ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def score_cmd(films: Path, model: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "cxrviewer", "score", str(films), "--out", str(out),
            "--model", str(model), "--batch-size", "4", "--workers", "1", "--no-progress"]


def start_and_wait_for_rows(cmd: list[str], out: Path, rows_wanted: int = 8) -> subprocess.Popen:
    """Start a real `cxrviewer score` and return once ``rows_wanted`` rows are on disk."""
    proc = subprocess.Popen(cmd, cwd=REPO, env=SCORE_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while data_lines(out) < rows_wanted and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.005)
    return proc


@pytest.fixture(scope="module")
def many_films(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("many")
    rng = np.random.default_rng(0)
    base = synthetic_pixels(1024, 1024)
    for i in range(160):
        write_png(d / f"film{i:03d}.png", np.clip(base + rng.normal(0, 0.02, base.shape), 0, 1))
    (d / "zz-broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    return d


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_scores_every_file_once(many_films, tiny_model, tmp_path):
    out = tmp_path / "r.csv"
    cmd = score_cmd(many_films, tiny_model, out)
    proc = start_and_wait_for_rows(cmd, out)
    assert proc.poll() is None, "the run finished before it could be killed; give it more films"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = data_lines(out)
    assert 0 < partial < 161
    rerun = subprocess.run(cmd, cwd=REPO, env=SCORE_ENV, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 1, rerun.stderr  # the broken film
    assert "Traceback" not in rerun.stderr
    got = rows(out)
    names = [Path(r["path"]).name for r in got]
    expected = sorted(p.name for p in many_films.iterdir())
    assert sorted(names) == expected, "every file exactly once"
    assert "already done" in rerun.stderr


def _hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_inputs_are_never_modified(tmp_path, tiny_model, dicom_corpus, nih_images):
    import shutil

    src = tmp_path / "inputs"
    src.mkdir()
    for p in sorted(dicom_corpus.files.values()) + nih_images[:3]:
        shutil.copy2(p, src / p.name)
    before = _hashes(src)
    mtimes = {p.name: p.stat().st_mtime_ns for p in src.iterdir()}
    assert main(["score", str(src), "--out", str(tmp_path / "r.csv"), "--model", str(tiny_model),
                 "--export-dir", str(tmp_path / "png"), "--no-progress", "--score-all"]) == 0
    for p in sorted(src.iterdir())[:3]:
        assert main(["export", str(p), "--out", str(tmp_path / f"{p.stem}.png"), "--model", str(tiny_model)]) == 0
    assert _hashes(src) == before
    assert {p.name: p.stat().st_mtime_ns for p in src.iterdir()} == mtimes
    assert len(list((tmp_path / "png").glob("*.png"))) == len(before)


def test_unwritable_output_fails_before_any_work(tmp_path, tiny_model, nih_images, capsys):
    if os.geteuid() == 0:
        target = Path("/proc/cxrviewer-cannot-write/r.csv")
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        target = locked / "r.csv"
    t0 = time.perf_counter()
    code = main(["score", str(nih_images[0].parent), "--out", str(target), "--model", str(tiny_model), "--no-progress"])
    assert code == 3  # the exit code of output faults
    assert "Cannot write" in capsys.readouterr().err
    assert time.perf_counter() - t0 < 5


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_with_a_summary_and_a_readable_csv(many_films, tiny_model, tmp_path):
    out = tmp_path / "r.csv"
    cmd = score_cmd(many_films, tiny_model, out)
    proc = start_and_wait_for_rows(cmd, out)
    assert proc.poll() is None, "the run finished before it could be interrupted; give it more films"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)  # no hang: reader threads must not keep it alive
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "interrupted" in err and "run the same command again to resume" in err
    got = rows(out)  # every line a CSV reader accepts, none half-written
    assert 0 < len(got) < 161
    assert all(r["status"] in ("ok", "error") and r["model_version"] for r in got)
    assert len({r["path"] for r in got}) == len(got)


@pytest.mark.slow
def test_sigterm_stops_like_the_first_ctrl_c(many_films, tiny_model, tmp_path):
    """systemd, `docker stop` and `timeout` send SIGTERM: finish the films in hand, write their
    rows, print the summary, exit 143."""
    out = tmp_path / "r.csv"
    proc = start_and_wait_for_rows(score_cmd(many_films, tiny_model, out), out)
    assert proc.poll() is None, "the run finished before it could be stopped; give it more films"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    assert " scored, " in err and "run the same command again to resume" in err
    got = rows(out)
    assert 0 < len(got) < 161 and out.read_bytes().endswith(b"\n")
    assert len({r["path"] for r in got}) == len(got)
    assert not (tmp_path / "r.csv.lock").exists()


@pytest.mark.slow
def test_two_runs_on_one_new_file_one_is_refused_and_no_row_is_lost(many_films, tiny_model, tmp_path):
    out = tmp_path / "r.csv"
    cmd = score_cmd(many_films, tiny_model, out)
    first = start_and_wait_for_rows(cmd, out, rows_wanted=1)
    assert first.poll() is None
    second = subprocess.run(cmd, cwd=REPO, env=SCORE_ENV, capture_output=True, text=True, timeout=60)
    assert second.returncode == 3, second.stderr
    assert f"pid {first.pid}" in second.stderr and "another run" in second.stderr
    assert "Traceback" not in second.stderr
    _, err = first.communicate(timeout=120)
    assert first.returncode == 1, err  # the broken film
    names = sorted(Path(r["path"]).name for r in rows(out))
    assert names == sorted(p.name for p in many_films.iterdir()), "every file exactly once"
