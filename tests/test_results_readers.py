"""A results folder is read by the documented calls (docs/scale.md): pandas, pyarrow's datasets,
DuckDB and Ray Data read the folder itself, as a Parquet dataset, and see every row the CSV
writer would write. Its manifest is ``_manifest.json``, a name Parquet readers skip (with
``manifest.json`` beside the shards they failed: "Could not read schema"); an older folder with
``manifest.json`` still resumes, and is readable after that run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest.importorskip("pyarrow")

from helpers import synthetic_pixels, write_png

from cxrviewer.batch import score_to_csv
from cxrviewer.io import list_films
from cxrviewer.results import read_results
from cxrviewer.results.shards import MANIFEST, OLD_MANIFEST

FILMS = 5


@pytest.fixture
def results(tmp_path, classifier) -> Path:
    """A results folder of two shards (3 + 3 rows: five films and a broken one), kept as a run
    leaves it (its manifest beside the shards)."""
    films = tmp_path / "films"
    films.mkdir()
    for i in range(FILMS):
        write_png(films / f"f{i}.png", synthetic_pixels(64, 56, disc=(0.3 + 0.06 * i, 0.5, 0.12)))
    (films / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "results"
    paths = list_films([films])
    first = score_to_csv([p for p in paths if p.name in ("f0.png", "f1.png", "f2.png")], classifier, f"{out}/")
    assert first.scored == 3
    again = score_to_csv(paths, classifier, out)  # resumes: a second shard of the rest
    assert (again.skipped, again.scored, again.failed) == (3, FILMS - 3, 1)
    assert sorted(os.listdir(out)) == [MANIFEST, "part-000000.parquet", "part-000001.parquet"]
    return out


def _paths(values) -> list[str]:
    return sorted(str(v) for v in values)


def test_pandas_reads_the_folder(results):
    import pandas

    frame = pandas.read_parquet(results)
    assert _paths(frame["path"]) == _paths(r["path"] for r in read_results(results))
    assert list(frame.columns) == list(read_results(results)[0])


def test_pyarrow_dataset_reads_the_folder(results):
    import pyarrow.dataset

    table = pyarrow.dataset.dataset(results).to_table()
    assert table.num_rows == FILMS + 1
    assert _paths(table.column("path").to_pylist()) == _paths(r["path"] for r in read_results(results))


def test_duckdb_reads_the_shards(results):
    duckdb = pytest.importorskip("duckdb")

    rows = duckdb.sql(f"SELECT path, status FROM read_parquet('{results}/*.parquet')").fetchall()
    assert sorted(rows) == sorted((r["path"], r["status"]) for r in read_results(results))


@pytest.mark.slow
def test_ray_data_reads_the_folder(results):
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)  # never a running cluster
    try:
        rows = ray.data.read_parquet(str(results)).take_all()
    finally:
        ray.shutdown()
    assert _paths(r["path"] for r in rows) == _paths(r["path"] for r in read_results(results))


def test_a_folder_with_the_old_manifest_resumes_and_becomes_readable(results, classifier):
    """A folder written before the manifest was renamed: its manifest.json is read (another
    model's folder is still refused), the run resumes from its shards, and leaves _manifest.json."""
    import pandas
    import pyarrow

    (results / MANIFEST).rename(results / OLD_MANIFEST)
    with pytest.raises(pyarrow.ArrowInvalid):  # what the documented call did with such a folder
        pandas.read_parquet(results)
    films = sorted({Path(r["path"]).parent for r in read_results(results)})
    again = score_to_csv(list_films(films), classifier, results)
    assert (again.skipped, again.scored, again.failed) == (FILMS, 0, 1)  # only the broken film again
    assert OLD_MANIFEST not in os.listdir(results)
    manifest = json.loads((results / MANIFEST).read_text())
    assert manifest["format"] == "cxrviewer-results" and manifest["rows"] == FILMS + 2
    assert len(pandas.read_parquet(results)) == FILMS + 2


def test_an_old_manifest_of_another_model_is_still_refused(results, classifier):
    from cxrviewer.errors import UnknownResultsFileError
    from cxrviewer.results import ResultsDir

    doc = json.loads((results / MANIFEST).read_text())
    (results / MANIFEST).unlink()
    (results / OLD_MANIFEST).write_text(json.dumps({**doc, "columns": ["other"]}))
    with pytest.raises(UnknownResultsFileError, match="other columns"):
        ResultsDir(results, classifier.info.labels, "v")
    assert OLD_MANIFEST in os.listdir(results)  # left as it is
