"""The results file never loses or corrupts data: what it refuses, what it resumes, odd paths."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from cxrviewer.batch import ResultsCsv, score_to_csv
from cxrviewer.cli import main
from cxrviewer.errors import OutputError
from helpers import REPO, synthetic_pixels, write_png
from tinymodel import LABELS

ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def films(tmp_path) -> Path:
    d = tmp_path / "films"
    d.mkdir()
    for i in range(5):
        write_png(d / f"f{i}.png", synthetic_pixels(96, 80, disc=(0.3 + 0.08 * i, 0.5, 0.12)))
    return d


def score(films: Path, out: Path, model: Path, *extra: str) -> int:
    return main(["score", str(films), "--out", str(out), "--model", str(model), "--no-progress", *extra])


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("cxrviewer: error:")]
    assert len(lines) == 1, err
    return lines[0]


# ------------------------------------------------------------- 1. files that are not ours
def test_a_file_that_is_not_a_results_file_is_left_alone(films, tiny_model, tmp_path, capsys):
    out = tmp_path / "notes.txt"
    content = b"my notes\nline two\nno newline at the end"
    out.write_bytes(content)
    assert score(films, out, tiny_model) == 3
    assert out.read_bytes() == content  # not cut back to its last newline
    line = one_line_error(capsys)
    assert "choose another results file, or start this one afresh" in line.lower()
    assert line.endswith("(--out / --overwrite)")


def test_the_refusal_names_no_flag_for_the_gui(tmp_path):
    out = tmp_path / "other.csv"
    out.write_text("path,status,error,model_version,Other\n/x.png,ok,,v,0.5\n")
    before = out.read_bytes()
    with pytest.raises(OutputError) as exc:
        ResultsCsv(out, LABELS, "v")
    assert "--" not in str(exc.value) and "other columns" in str(exc.value)
    assert out.read_bytes() == before


def test_an_excel_resaved_csv_with_a_bom_is_resumed(films, tiny_model, tmp_path, capsys):
    out = tmp_path / "r.csv"
    assert score(films, out, tiny_model) == 0
    data = out.read_bytes()
    out.write_bytes(b"\xef\xbb\xbf" + data.replace(b"\n", b"\r\n"))  # "CSV UTF-8" from Excel
    capsys.readouterr()
    assert score(films, out, tiny_model) == 0
    assert "5 already done" in capsys.readouterr().err
    assert len(rows(out)) == 5


# ------------------------------------------------------------ 2. an output that is an input
def test_export_over_its_own_input_is_refused(films, tiny_model, capsys):
    src = films / "f0.png"
    before = src.read_bytes()
    assert main(["export", str(src), "--out", str(src), "--model", str(tiny_model)]) == 2
    assert src.read_bytes() == before
    assert "one of the films" in one_line_error(capsys)


def test_score_out_naming_a_film_is_refused_even_with_overwrite(films, tiny_model, capsys):
    film = films / "f3.png"
    before = film.read_bytes()
    for extra in ((), ("--overwrite",)):
        assert score(films, film, tiny_model, *extra) == 2
        assert film.read_bytes() == before
        assert "one of the films" in one_line_error(capsys)


def test_export_dir_over_the_films_is_refused(films, tiny_model, tmp_path, capsys):
    before = {p.name: p.read_bytes() for p in films.iterdir()}
    assert score(films, tmp_path / "r.csv", tiny_model, "--export-dir", str(films)) == 2
    assert {p.name: p.read_bytes() for p in films.iterdir()} == before
    assert "holds films being scored" in one_line_error(capsys)


# -------------------------------------------------------------------- 3. one run a file
HOLD = (
    "import sys, time; from pathlib import Path; from cxrviewer.batch import ResultsCsv;"
    "from tinymodel import LABELS; f = ResultsCsv(Path(sys.argv[1]), LABELS, 'tiny-test-1');"
    "print('holding', flush=True); time.sleep(120)"
)


def hold_lock(out: Path) -> subprocess.Popen:
    env = {**ENV, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}"}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "holding"
    return proc


def test_a_second_run_on_the_same_file_is_refused_and_a_killed_one_leaves_no_lock(films, tiny_model, tmp_path, capsys):
    out = tmp_path / "r.csv"
    holder = hold_lock(out)
    try:
        assert score(films, out, tiny_model) == 3
        line = one_line_error(capsys)
        assert f"pid {holder.pid}" in line and "started" in line and "another run" in line
        assert rows(out) == []  # the holder's file was not written by the refused run
    finally:
        holder.kill()  # SIGKILL: the OS drops the lock with the process
        holder.wait()
    assert score(films, out, tiny_model) == 0
    assert len(rows(out)) == 5
    assert not (tmp_path / "r.csv.lock").exists()


# ------------------------------------------------------------------ 4. non-UTF-8 names
LATIN1 = b"M\xfcller.png"


def write_png_bytes_path(folder: Path, name: bytes, pixels: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", np.clip(np.rint(pixels * 255), 0, 255).astype(np.uint8))
    path = os.path.join(os.fsencode(folder), name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(buf.tobytes())
    return path


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file names are bytes")
def test_latin1_file_names_are_scored_and_resumed_losslessly(films, tiny_model, tmp_path, capsys):
    from cxrviewer.results import path_from_cell

    raw = write_png_bytes_path(films, LATIN1, synthetic_pixels(90, 90))
    write_png_bytes_path(films, b"back\\slash.png", synthetic_pixels(90, 90))
    out = tmp_path / "r.csv"
    assert score(films, out, tiny_model) == 0
    got = rows(out)  # valid UTF-8 throughout
    assert len(got) == 7 and all(r["status"] == "ok" for r in got)
    cells = {r["path"] for r in got}
    latin = [c for c in cells if "ller.png" in c]
    assert latin == [os.fsdecode(os.path.join(os.fsencode(films), b"M\\xfcller.png"))]
    assert os.fsencode(path_from_cell(latin[0])) == raw
    slash = [c for c in cells if "slash" in c][0]
    assert slash.endswith("back\\\\slash.png") and path_from_cell(slash).endswith("back\\slash.png")
    capsys.readouterr()
    assert score(films, out, tiny_model) == 0
    assert "7 already done" in capsys.readouterr().err


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file names are bytes")
def test_latin1_films_get_safe_picture_names(films, tiny_model, tmp_path):
    write_png_bytes_path(films, LATIN1, synthetic_pixels(90, 90))
    pics = tmp_path / "pics"
    proc = run_cli(["score", str(films), "--out", str(tmp_path / "r.csv"), "--model", str(tiny_model),
                    "--no-progress", "--export-dir", str(pics)])
    assert proc.returncode == 0, proc.stderr
    assert (pics / "M%FCller.png").is_file()


def test_export_names_are_safe():
    from cxrviewer.results import safe_file_stem

    assert safe_file_stem(os.fsdecode(b"M\xfcller")) == "M%FCller"
    assert safe_file_stem("Müller") == "Müller"
    assert safe_file_stem("a\nb") == "a_b"
    assert len(safe_file_stem("1.2.840." + "9" * 300).encode()) <= 200


# --------------------------------------------------------------------- 5. odd outputs
def run_cli(args: list[str], timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cxrviewer", *args], cwd=REPO, env=ENV, capture_output=True,
                          text=True, timeout=timeout, **kw)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX pipes")
def test_a_fifo_as_output_does_not_hang(films, tiny_model, tmp_path):
    fifo = tmp_path / "r.csv"
    os.mkfifo(fifo)
    proc = run_cli(["score", str(films), "--out", str(fifo), "--model", str(tiny_model), "--no-progress"], timeout=30)
    assert proc.returncode == 3, proc.stderr
    assert "not a regular file" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("device", ["/dev/null", "/dev/full"])
def test_a_device_as_output_is_refused(films, tiny_model, device, capsys):
    if not os.path.exists(device):
        pytest.skip(f"no {device}")
    assert score(films, Path(device), tiny_model) == 3
    assert "not a regular file" in one_line_error(capsys)


def test_odd_output_names(films, tiny_model, tmp_path, capsys):
    long_name = tmp_path / ("r" * 300 + ".csv")
    assert score(films, long_name, tiny_model) == 3
    assert "too long" in one_line_error(capsys)
    loop = tmp_path / "loop.csv"
    os.symlink(loop, loop)
    assert score(films, loop, tiny_model) == 3
    assert "loops back" in one_line_error(capsys)
    dangling = tmp_path / "dangling.csv"
    os.symlink(tmp_path / "elsewhere" / "x.csv", dangling)
    assert score(films, dangling, tiny_model) == 3
    assert "broken symbolic link" in one_line_error(capsys)
    assert not (tmp_path / "elsewhere").exists()


def test_odd_inputs_are_usage_errors_before_any_work(films, tiny_model, tmp_path, capsys):
    out = tmp_path / "r.csv"
    assert score(films / ("x" * 300 + ".png"), out, tiny_model) == 2
    assert "too long" in one_line_error(capsys)
    assert main(["score", str(films), str(tmp_path / "typo"), "--out", str(out), "--model", str(tiny_model), "--no-progress"]) == 2
    assert "no such file or folder" in one_line_error(capsys)
    assert not out.exists()


def test_a_very_deep_tree_is_listed(tmp_path):
    from cxrviewer.io import list_films

    top = tmp_path / "deep"
    d = os.fspath(top)
    os.mkdir(d)
    for _ in range(1200):  # deeper than Python's recursion limit
        d = os.path.join(d, "a")
        os.mkdir(d)
    write_png(Path(d) / "deep.png", synthetic_pixels(32, 32))
    os.symlink(top, os.path.join(d, "loop"))  # a link back to the top: not followed
    try:
        found = list_films([top], recursive=True)
        assert [p.name for p in found] == ["deep.png"]
    finally:  # pytest's own clean-up recurses: take the tree down here, bottom up
        os.unlink(os.path.join(d, "loop"))
        os.unlink(os.path.join(d, "deep.png"))
        while d != os.fspath(tmp_path):
            os.rmdir(d)
            d = os.path.dirname(d)


def test_a_huge_cell_does_not_stop_a_resume(films, tiny_model, tmp_path, capsys):
    out = tmp_path / "r.csv"
    assert score(films, out, tiny_model) == 0
    got = rows(out)
    with open(out, "a", newline="", encoding="utf-8") as f:
        big = dict(got[0], path="/elsewhere/big.png", status="error", error="x" * 200_000)
        csv.DictWriter(f, fieldnames=list(got[0]), lineterminator="\n").writerow(big)
    capsys.readouterr()
    assert score(films, out, tiny_model) == 0
    assert "5 already done" in capsys.readouterr().err


def _limit_file_size(n: int):
    def set_limit():
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (n, n))

    return set_limit


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_a_write_that_fails_mid_run_ends_with_exit_3_and_a_resumable_file(films, tiny_model, tmp_path):
    """The file system refuses to grow the file (EFBIG from RLIMIT_FSIZE: a real failed write,
    like a full disk) after the first rows: one line, exit 3, whole rows only; a rerun finishes."""
    for i in range(5, 40):
        write_png(films / f"g{i}.png", synthetic_pixels(64, 64, disc=(0.5, 0.5, 0.01 * i)))
    out = tmp_path / "r.csv"
    args = ["score", str(films), "--out", str(out), "--model", str(tiny_model), "--no-progress", "--workers", "1"]
    proc = run_cli(args, preexec_fn=_limit_file_size(12000))
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr and "Cannot write" in proc.stderr
    assert out.read_bytes().endswith(b"\n")
    first = rows(out)
    assert 0 < len(first) < 40 and all(r["status"] == "ok" for r in first)
    again = run_cli(args)
    assert again.returncode == 0, again.stderr
    got = rows(out)
    assert sorted(Path(r["path"]).name for r in got) == sorted(p.name for p in films.iterdir())


@pytest.mark.skipif(sys.platform != "linux", reason="mounts a tmpfs")
def test_a_full_disk_mid_run(films, tiny_model, tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12k", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        for i in range(5, 80):
            write_png(films / f"g{i}.png", synthetic_pixels(64, 64, disc=(0.5, 0.5, 0.005 * i)))
        out = mnt / "r.csv"
        args = ["score", str(films), "--out", str(out), "--model", str(tiny_model), "--no-progress", "--workers", "1"]
        proc = run_cli(args)
        assert proc.returncode == 3, proc.stderr
        assert "disk is full" in proc.stderr and "Traceback" not in proc.stderr
        assert out.read_bytes().endswith(b"\n") and 0 < len(rows(out)) < 80
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


# ----------------------------------------------------------------------- 7. honest resume
def test_the_key_is_the_file_as_it_was_read(films, classifier, tmp_path):
    out = tmp_path / "r.csv"
    target = films / "f0.png"
    size_read = target.stat().st_size

    def replace_after_reading(result):
        if result.path == target:  # read and scored; the row is not written yet
            write_png(target, synthetic_pixels(300, 300))
            os.utime(target, ns=(1, 1))

    score_to_csv(sorted(films.iterdir()), classifier, out, on_result=replace_after_reading)
    row = [r for r in rows(out) if r["path"] == str(target)][0]
    assert int(row["file_size"]) == size_read and row["file_mtime_ns"] != "1"
    again = score_to_csv(sorted(films.iterdir()), classifier, out)
    assert again.scored == 1  # the new film is scored, not taken as done


def test_failed_films_are_tried_again_and_the_last_row_wins(films, classifier, tmp_path):
    out = tmp_path / "r.csv"
    bad = films / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    s = score_to_csv(sorted(films.iterdir()), classifier, out)
    assert (s.scored, s.failed) == (5, 1)
    again = score_to_csv(sorted(films.iterdir()), classifier, out)
    assert (again.skipped, again.failed) == (5, 1)  # the failed film is tried again
    # an error row then an ok row for the same file: done; an ok row then an error row: not done
    got = rows(out)
    ok = [r for r in got if r["status"] == "ok"][0]
    with open(out, "a", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(ok), lineterminator="\n")
        w.writerow(dict(ok, status="error", error="later failure"))
    third = score_to_csv(sorted(films.iterdir()), classifier, out)
    assert (third.skipped, third.scored, third.failed) == (4, 1, 1)


def test_a_failed_export_makes_an_error_row_and_the_batch_goes_on(films, tiny_model, tmp_path, capsys):
    out = tmp_path / "r.csv"
    pics = tmp_path / "pics"
    (pics / "f2.png").mkdir(parents=True)  # the picture of f2 cannot be written there
    assert score(films, out, tiny_model, "--export-dir", str(pics)) == 1
    got = {Path(r["path"]).name: r for r in rows(out)}
    assert got["f2.png"]["status"] == "error" and got["f2.png"]["error"].startswith("Export failed")
    assert sum(r["status"] == "ok" for r in got.values()) == 4
    assert {p.name for p in pics.glob("*.png") if p.is_file()} == {"f0.png", "f1.png", "f3.png", "f4.png"}
    (pics / "f2.png").rmdir()
    capsys.readouterr()
    assert score(films, out, tiny_model, "--export-dir", str(pics)) == 0
    assert (pics / "f2.png").is_file()
    assert "1 scored, 0 failed, 4 already done" in capsys.readouterr().err


def test_a_kill_inside_a_quoted_path_is_cut_by_parsing(films, classifier, tmp_path):
    out = tmp_path / "r.csv"
    paths = sorted(films.iterdir())
    score_to_csv(paths[:2], classifier, out)
    with open(out, "ab") as f:
        f.write(b'"/films/new\nline')  # a kill inside a quoted path holding a newline
    s = score_to_csv(paths, classifier, out)
    assert (s.skipped, s.scored) == (2, 3)
    assert sorted(r["path"] for r in rows(out)) == sorted(str(p) for p in paths)


def test_a_stray_quote_in_the_middle_loses_no_later_rows(films, classifier, tmp_path):
    out = tmp_path / "r.csv"
    paths = sorted(films.iterdir())
    score_to_csv(paths[:2], classifier, out)
    with open(out, "ab") as f:
        f.write(b'"hand edited, unterminated\n')
    score_to_csv(paths[2:], classifier, out)
    size = out.stat().st_size
    s = score_to_csv(paths, classifier, out)
    assert (s.skipped, s.scored) == (5, 0)
    assert out.stat().st_size == size  # nothing cut


def test_a_path_with_a_newline_is_one_record(tmp_path, classifier):
    d = tmp_path / "odd\nfolder"
    d.mkdir()
    p = write_png(d / "a.png", synthetic_pixels(64, 64))
    out = tmp_path / "r.csv"
    score_to_csv([p], classifier, out)
    s = score_to_csv([p], classifier, out)
    assert s.skipped == 1
    assert [r["path"] for r in rows(out)] == [str(p)]


# -------------------------------------------------------------- one format for regions
def test_the_csv_regions_cell_is_the_json_files_regions_without_outlines(tmp_path, tiny_model, nih_images):
    film_path = nih_images[0]
    out = tmp_path / "r.csv"
    assert main(["score", str(film_path), "--out", str(out), "--model", str(tiny_model), "--no-progress"]) == 0
    row = rows(out)[0]
    positives = row["positives"].split("|") if row["positives"] else []
    assert main(["export", str(film_path), "--out", str(tmp_path / "a.png"), "--model", str(tiny_model),
                 "--classes", ",".join(positives) or "none", "--regions", str(tmp_path / "r.json")]) == 0
    doc = json.loads((tmp_path / "r.json").read_text())
    from_json = [{k: v for k, v in r.items() if k != "contour"} for r in doc["regions"]]
    assert json.loads(row["regions"] or "[]") == from_json
    assert all("contour" in r for r in doc["regions"])
