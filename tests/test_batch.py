import csv
import os
import threading

import pytest

from cxrviewer.batch import iter_scores, score_to_csv
from cxrviewer.results import ResultsCsv
from cxrviewer.errors import OutputError
from helpers import synthetic_pixels, write_png
from tinymodel import LABELS


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "films"
    d.mkdir()
    for i in range(11):
        write_png(d / f"f{i:02d}.png", synthetic_pixels(128, 128, disc=(0.2 + 0.05 * i, 0.5, 0.1)))
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return d


def rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_iter_scores_keeps_order_and_reports_errors(folder, classifier):
    paths = sorted(folder.iterdir())
    results = list(iter_scores(paths, classifier, batch_size=4, workers=2))
    assert [r.path for r in results] == paths
    bad = [r for r in results if not r.ok]
    assert [r.path.name for r in bad] == ["broken.png"]
    assert bad[0].error and bad[0].error_type


def test_same_results_as_predict(folder, classifier):
    from cxrviewer.io import read_film

    paths = sorted(folder.glob("f*.png"))
    batch = list(iter_scores(paths, classifier, batch_size=3))
    direct = classifier.predict([read_film(p) for p in paths])
    for r, p in zip(batch, direct):
        assert r.prediction.probabilities.tolist() == pytest.approx(p.probabilities.tolist(), rel=1e-5)


def test_csv_rows_and_resume(folder, classifier, tmp_path):
    out = tmp_path / "r.csv"
    paths = sorted(folder.iterdir())
    s = score_to_csv(paths, classifier, out, batch_size=4)
    assert (s.scored, s.failed, s.exit_code) == (11, 1, 1)
    got = rows(out)
    assert len(got) == 12
    assert set(LABELS) <= set(got[0])
    assert {r["status"] for r in got} == {"ok", "error"}
    again = score_to_csv(paths, classifier, out, batch_size=4)
    # the broken film is tried again (its new error row is the one that counts); the others are done
    assert (again.skipped, again.scored, again.failed) == (11, 0, 1)
    assert len(rows(out)) == 13


def test_resume_repairs_a_partial_last_line(folder, classifier, tmp_path):
    out = tmp_path / "r.csv"
    paths = sorted(folder.glob("f*.png"))
    score_to_csv(paths[:5], classifier, out)
    with open(out, "ab") as f:
        f.write(b"/some/half/writ")  # what SIGKILL mid-write leaves
    score_to_csv(paths, classifier, out)
    got = rows(out)
    assert sorted(r["path"] for r in got) == sorted(str(p) for p in paths)


def test_changed_file_is_scored_again(folder, classifier, tmp_path):
    out = tmp_path / "r.csv"
    p = sorted(folder.glob("f*.png"))[0]
    score_to_csv([p], classifier, out)
    os.utime(p, ns=(1, 1))
    s = score_to_csv([p], classifier, out)
    assert s.scored == 1


def test_cancel_stops_early(folder, classifier, tmp_path):
    ev = threading.Event()
    seen = []

    def progress(result, done, total):
        seen.append(done)
        if done >= 2:
            ev.set()

    s = score_to_csv(sorted(folder.iterdir()), classifier, tmp_path / "r.csv", batch_size=2, cancel=ev, progress=progress)
    assert s.cancelled and s.scored + s.failed < 12
    assert len(rows(tmp_path / "r.csv")) == s.scored + s.failed


def test_other_model_columns_are_refused(folder, classifier, tmp_path):
    out = tmp_path / "r.csv"
    out.write_text("path,status,something\n")
    with pytest.raises(OutputError, match="other columns"):
        ResultsCsv(out, LABELS, "v")
    with pytest.raises(OutputError, match="is a folder"):
        ResultsCsv(tmp_path, LABELS, "v")
