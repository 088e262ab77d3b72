"""Results at archive scale: Parquet shard folders, a resume that holds no rows, URL and bytes input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pyarrow")

from helpers import REPO, synthetic_pixels, write_png
from tinymodel import LABELS

from cxrviewer.batch import ScoreResult, score_to_csv
from cxrviewer.cli import main
from cxrviewer.errors import OutputError
from cxrviewer.io import list_films, read_film
from cxrviewer.results import (
    KeyIndex,
    ResultsCsv,
    ResultsDir,
    file_key,
    key_hash,
    read_results,
)

ENV = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}"}


@pytest.fixture
def films(tmp_path) -> Path:
    d = tmp_path / "films"
    d.mkdir()
    for i in range(6):
        write_png(d / f"f{i}.png", synthetic_pixels(96, 80, disc=(0.3 + 0.06 * i, 0.5, 0.12)))
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return d


def score(inputs, out, model, *extra: str) -> int:
    return main(["score", *map(str, inputs), "--out", str(out), "--model", str(model), "--no-progress", *extra])


def cells(rows: list[dict]) -> list[dict]:
    """Rows without the timing, by path: what two runs of the same films must agree on."""
    return sorted(({k: v for k, v in r.items() if k != "seconds"} for r in rows), key=lambda r: r["path"])


# ------------------------------------------------------------------------ the folder
def test_a_folder_output_holds_the_csv_rows_cell_for_cell(films, tiny_model, tmp_path):
    assert score([films], tmp_path / "r.csv", tiny_model) == 1  # the broken film
    assert score([films], f"{tmp_path / 'shards'}/", tiny_model) == 1
    shards = tmp_path / "shards"
    assert cells(read_results(shards)) == cells(read_results(tmp_path / "r.csv"))
    manifest = json.loads((shards / "_manifest.json").read_text())
    assert manifest["format"] == "cxrviewer-results" and manifest["rows"] == 7
    assert [s["file"] for s in manifest["shards"]] == ["part-000000.parquet"]
    assert manifest["columns"][:2] == ["path", "status"] and manifest["labels"] == list(LABELS)
    assert not [n for n in os.listdir(shards) if n.endswith((".tmp", ".lock"))]


def test_a_folder_resumes_by_file_and_retries_error_rows(films, tiny_model, tmp_path, classifier):
    out = tmp_path / "shards"
    first = score_to_csv(list_films([films]), classifier, f"{out}/")
    assert (first.scored, first.failed) == (6, 1)
    write_png(films / "f9.png", synthetic_pixels(96, 80))  # a new film
    (films / "f2.png").touch()  # a changed one: another mtime
    again = score_to_csv(list_films([films]), classifier, out)  # an existing folder: no slash needed
    assert again.skipped == 5 and again.scored == 2 and again.failed == 1
    rows = read_results(out)
    assert len(rows) == 7 + 3 and len(os.listdir(out)) == 3  # two shards and the manifest
    assert json.loads((out / "_manifest.json").read_text())["rows"] == 10


def test_a_killed_run_loses_only_the_shard_being_filled(tmp_path):
    out = tmp_path / "shards"
    film = tmp_path / "a.png"
    write_png(film, synthetic_pixels(40, 40))
    code = (
        "import os, sys; from pathlib import Path; from cxrviewer.results import ResultsDir;"
        "from cxrviewer.batch import ScoreResult; from tinymodel import LABELS;"
        "d = ResultsDir(Path(sys.argv[1]), LABELS, 'v', rows_per_shard=2);"
        "films = [Path(sys.argv[2]).with_name(f'f{i}.png') for i in range(5)];"
        "[d.write([ScoreResult(f, error='x', error_type='E', key=(str(f), 1, i))]) for i, f in enumerate(films)];"
        "open(Path(sys.argv[1]) / '.part-000009.parquet.tmp', 'wb').write(b'half a shard');"
        "os._exit(9)"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(out), str(film)], env=ENV, capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    left = sorted(n for n in os.listdir(out) if not n.endswith(".lock"))  # the OS dropped the lock itself
    assert left == [".part-000009.parquet.tmp", "_manifest.json", "part-000000.parquet", "part-000001.parquet"]
    with ResultsDir(out, LABELS, "v") as d:  # resumes: the stale temporary shard is cleared
        assert d._next == 2
    assert len(read_results(out)) == 4 and ".part-000009.parquet.tmp" not in os.listdir(out)


def test_a_folder_of_other_files_or_another_model_is_left_alone(tmp_path):
    other = tmp_path / "holiday"
    other.mkdir()
    (other / "photo.jpg").write_bytes(b"x")
    with pytest.raises(OutputError) as exc:
        ResultsDir(other, LABELS, "v")
    assert "not a results folder" in str(exc.value) and "--" not in str(exc.value)
    assert os.listdir(other) == ["photo.jpg"]
    ResultsDir(tmp_path / "ours", LABELS, "v").close()
    with pytest.raises(OutputError, match="other columns"):
        ResultsDir(tmp_path / "ours", LABELS[:3], "v")
    afile = tmp_path / "r.csv"
    afile.write_text("")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        ResultsDir(afile, LABELS, "v")


# ------------------------------------------------------------------------ the index
def test_the_index_keeps_the_last_row_of_each_file():
    index = KeyIndex()
    index.add("/a.png", "ok", "10", "1")
    index.add("/b.png", "ok", "20", "2")
    index.add("/b.png", "error", "20", "2")  # scored again and failed: to retry
    index.add("/c.png", "error", "30", "3")
    index.add("/c.png", "ok", "30", "3")  # failed, then scored
    index.add("/d.png", "ok", "", "")  # no size or time: never skipped
    done = index.freeze()
    assert len(done) == 2
    assert ("/a.png", 10, 1) in done and ("/c.png", 30, 3) in done
    assert ("/b.png", 20, 2) not in done and ("/a.png", 10, 2) not in done and ("/a.png", 11, 1) not in done
    assert key_hash(("/a.png", 10, 1)) != key_hash(("/a.png", 1, 10))


RESUME_RSS = """
import resource, sys, time
from pathlib import Path
from cxrviewer.results import ResultsCsv
from tinymodel import LABELS
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
with ResultsCsv(Path(sys.argv[1]), LABELS, 'tiny-test-1') as f:
    seconds = time.perf_counter() - t0
    print(len(f._done), (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024, seconds)
"""


@pytest.mark.slow
def test_resuming_a_big_csv_holds_no_rows_in_memory(films, tiny_model, tmp_path):
    out = tmp_path / "r.csv"
    assert score([films], out, tiny_model) == 1
    head, *body = out.read_bytes().splitlines(keepends=True)
    n = 60_000
    with open(out, "wb") as fh:  # the real rows again and again, each under its own name
        fh.write(head)
        fh.writelines(b"".join(row.replace(b"films/", f"films/{i}/".encode()) for row in body) for i in range(n // len(body)))
    proc = subprocess.run([sys.executable, "-c", RESUME_RSS, str(out)], env=ENV, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    done, grown_mb, seconds = proc.stdout.split()
    assert int(done) == n // len(body) * 6  # the broken film's rows are errors: not done
    # a set of the keys took ~4 kB a row (240 MB here); the index takes 16 bytes a row while read
    assert float(grown_mb) < 30, grown_mb


# --------------------------------------------------------------- URLs and bytes
def test_a_film_read_from_bytes_is_the_film_read_from_its_path(nih_images, dicom_corpus):
    for path in (nih_images[0], dicom_corpus["no_preamble_chest"], dicom_corpus["j2k_mono1"]):
        a, b = read_film(path), read_film(f"s3://bucket/{path.name}", path.read_bytes())
        assert np.array_equal(a.pixels, b.pixels) and b.name == path.name


def test_a_bad_object_gets_the_same_message_as_a_bad_file(tmp_path):
    from cxrviewer.errors import UnreadableImageError

    with pytest.raises(UnreadableImageError, match="empty"):
        read_film("s3://bucket/a.png", b"")
    with pytest.raises(UnreadableImageError, match="not a PNG image"):
        read_film("s3://bucket/a.png", b"just text, not an image at all")


def test_films_named_by_url_are_listed_scored_and_resumed(films, tiny_model, tmp_path, capsys):
    (films / "sub").mkdir()
    write_png(films / "sub" / "deep.png", synthetic_pixels(60, 50))
    url = films.as_uri() + "/"
    listed = list_films([url])
    assert listed == sorted(f"{films.as_uri()}/{n}" for n in ("broken.png", *(f"f{i}.png" for i in range(6))))
    assert len(list_films([url], recursive=True)) == 8
    assert file_key(listed[1]) == (listed[1], os.path.getsize(films / "f0.png"), os.stat(films / "f0.png").st_mtime_ns)
    out = tmp_path / "r.csv"
    assert score([url], out, tiny_model) == 1
    by_url = cells(read_results(out))
    assert score([films], tmp_path / "local.csv", tiny_model) == 1
    local = cells(read_results(tmp_path / "local.csv"))
    for a, b in zip(by_url, local):  # the same numbers whether read from a path or a URL
        assert a["path"].startswith("file://") and a["path"].endswith(Path(b["path"]).name)
        assert {k: v for k, v in a.items() if k not in ("path", "error")} == {k: v for k, v in b.items() if k not in ("path", "error")}
    capsys.readouterr()
    assert score([url], out, tiny_model) == 1
    assert "6 already done" in capsys.readouterr().err


def test_results_csv_and_folder_take_rows_made_elsewhere(tmp_path):
    from cxrviewer.results import result_row

    rows = [result_row(ScoreResult(tmp_path / "x.png", error="bad", error_type="E", key=(str(tmp_path / "x.png"), 3, 4)), LABELS, "v")]
    with ResultsCsv(tmp_path / "r.csv", LABELS, "v") as f:
        f.write_rows(rows)
    with ResultsDir(tmp_path / "d", LABELS, "v") as d:
        d.write_rows(rows)
    assert read_results(tmp_path / "r.csv") == read_results(tmp_path / "d") == rows


def test_ray_options_go_with_the_ray_engine(films, tiny_model, tmp_path, capsys):
    for extra in (("--ray-address", "auto"), ("--gpus-per-worker", "0.5")):
        with pytest.raises(SystemExit) as exc:
            score([films], tmp_path / "r.csv", tiny_model, *extra)
        assert exc.value.code == 2
        assert "--engine ray" in capsys.readouterr().err
    assert not (tmp_path / "r.csv").exists()
