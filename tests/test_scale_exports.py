"""Export destinations named by URL (``file://`` through pyarrow's LocalFileSystem, an fsspec
object store in this process), refusals of schemes nobody serves, and picture names that a
resumed run keeps. The Ray engine's exports are in test_scale_ray.py."""

from __future__ import annotations

import importlib.util
import os
import stat
from pathlib import Path

import pytest

pytest.importorskip("pyarrow")

from exportfilms import files_under, make_films, png_pixels, same_dicom

from cxrviewer.batch import ExportPlan, ExportTally, score_to_csv
from cxrviewer.cli import main
from cxrviewer.errors import OutputError
from cxrviewer.storage import check_writable_dir, write_url
from cxrviewer.results import read_results


@pytest.fixture(scope="module")
def films(tmp_path_factory) -> list[Path]:
    return make_films(tmp_path_factory.mktemp("films"), pngs=4, dicoms=2)


def score(films, tiny_model, out, *extra: str) -> int:
    return main(["score", *map(str, films), "--out", str(out), "--model", str(tiny_model), "--no-progress",
                 "--workers", "2", *extra])


@pytest.mark.slow
def test_file_urls_get_the_files_a_folder_gets(films, classifier, tmp_path):
    """The same films exported to folders and to file:// URLs (pyarrow's LocalFileSystem): the same
    names, pictures and DICOM results, with the modes a plain write gives, no temporary file left."""
    plain, url = ExportPlan(tmp_path / "pics", tmp_path / "dcm"), ExportPlan(
        f"file://{tmp_path}/store/pics", f"file://{tmp_path}/store/dcm")
    for folder in (plain.pictures, plain.dicom, url.pictures, url.dicom):
        check_writable_dir(folder)
    counts = []
    for i, plan in enumerate((plain, url)):
        tally = ExportTally()
        s = score_to_csv(films, classifier, tmp_path / f"r{i}.csv", exports=plan, tally=tally, workers=2)
        assert (s.scored, s.failed) == (len(films) - 1, 1)
        counts.append(tally.counts())
    assert counts[0] == counts[1] == (len(films) - 1, 2 * 3, len(films) - 3, 0, 0, 0)
    pics, url_pics = files_under(tmp_path / "pics"), files_under(tmp_path / "store" / "pics")
    assert sorted(url_pics) == sorted(pics) and {"same.png", "same-2.png", "d00.png"} <= set(pics)
    for name, p in pics.items():
        assert (png_pixels(p) == png_pixels(url_pics[name])).all()
    dcm, url_dcm = files_under(tmp_path / "dcm"), files_under(tmp_path / "store" / "dcm")
    assert sorted(url_dcm) == sorted(dcm) and len(dcm) == 6
    for name, p in dcm.items():
        same_dicom(p, url_dcm[name])
    umask = os.umask(0o022)
    os.umask(umask)
    written = [*url_pics.values(), *url_dcm.values()]
    assert {stat.S_IMODE(p.stat().st_mode) for p in written} == {0o666 & ~umask}
    hidden = [n for _, _, fs in os.walk(tmp_path / "store") for n in fs if n.startswith(".")]
    assert hidden == []


def test_a_rerun_to_a_url_redoes_the_missing_dicom_results(films, classifier, tmp_path):
    plan = ExportPlan(None, f"file://{tmp_path}/dcm")
    score_to_csv(films, classifier, tmp_path / "r.csv", exports=plan, workers=2)
    results = files_under(tmp_path / "dcm")
    gone = min(results)
    results[gone].unlink()
    tally = ExportTally()
    s = score_to_csv(films, classifier, tmp_path / "r.csv", exports=plan, tally=tally, workers=2)
    assert (s.scored, s.skipped, tally.dicom) == (1, len(films) - 2, 1)  # the broken film is tried again too
    assert sorted(files_under(tmp_path / "dcm")) == sorted(results)


def test_an_object_store_gets_each_object_whole_under_its_own_name(films, classifier, tmp_path):
    """fsspec's in-memory store (an object store to pyarrow: no rename, no folders) in this
    process: one object per picture, under its final name, nothing else."""
    fsspec = pytest.importorskip("fsspec")
    store = fsspec.filesystem("memory")
    root = f"memory://cxr-test-{os.getpid()}/pics"
    try:
        check_writable_dir(root)
        s = score_to_csv(films, classifier, tmp_path / "r.csv", exports=ExportPlan(root), workers=2)
        assert s.scored == len(films) - 1
        keys = sorted(k.rsplit("/", 1)[1] for k in store.find(root.split("://", 1)[1]))
        check_writable_dir(tmp_path / "pics")
        score_to_csv(films, classifier, tmp_path / "r2.csv", exports=ExportPlan(tmp_path / "pics"), workers=2)
        assert keys == sorted(files_under(tmp_path / "pics"))  # no probe, no temporary object left
        for name in keys:
            assert store.cat_file(f"{root}/{name}") == (tmp_path / "pics" / name).read_bytes()
        assert write_url(f"{root}/x/y.png", b"abc") == f"{root}/x/y.png"
        assert store.cat_file(f"{root}/x/y.png") == b"abc"
    finally:
        store.rm(root.split("://", 1)[1], recursive=True)


@pytest.mark.parametrize(("url", "said"), [
    ("nosuchfs://bucket/pics/", "is not a file system pyarrow or fsspec knows"),
    ("sftp://host/pics/", "paramiko"),  # fsspec knows sftp://; the package behind it is not installed
])
def test_a_destination_nobody_serves_is_refused_before_scoring(films, tiny_model, tmp_path, capsys, url, said):
    pytest.importorskip("fsspec")
    if said == "paramiko" and importlib.util.find_spec("paramiko") is not None:
        pytest.skip("paramiko is installed here: sftp:// has a file system")
    for option in ("--export-dir", "--dicom-out"):
        assert score(films, tiny_model, tmp_path / "r.csv", option, url) != 0
        err = capsys.readouterr().err
        assert said in err and "local folder" in err and "Traceback" not in err
        assert not (tmp_path / "r.csv").exists()
    with pytest.raises(OutputError, match="Cannot write to"):
        write_url(url + "x.png", b"")


def test_results_at_a_file_url(films, tiny_model, tmp_path):
    assert score(films, tiny_model, f"file://{tmp_path}/r.csv") == 1  # 1: the broken film
    assert len(read_results(tmp_path / "r.csv")) == len(films)
    assert score(films, tiny_model, f"file://{tmp_path}/shards/") == 1
    assert len(read_results(tmp_path / "shards")) == len(films)


def test_results_on_an_object_store_are_shards_resumed_there(films, classifier, tmp_path):
    """A results folder as objects (fsspec's in-memory store in this process): shards and manifest
    put whole, resumed from there, equal to a local folder's rows; a CSV there is refused."""
    fsspec = pytest.importorskip("fsspec")
    store = fsspec.filesystem("memory")
    root = f"memory://cxr-results-{os.getpid()}/run/"
    try:
        first = score_to_csv(films[:3], classifier, root, workers=2)
        assert first.scored == 3
        names = sorted(k.rsplit("/", 1)[1] for k in store.find(root.split("://", 1)[1]))
        assert names == ["_manifest.json", "part-000000.parquet"]
        again = score_to_csv(films, classifier, root, workers=2)
        assert (again.skipped, again.scored, again.failed) == (3, len(films) - 4, 1)
        local = tmp_path / "local"
        score_to_csv(films, classifier, f"{local}/", workers=2)

        def cells(rows):
            return sorted(({k: v for k, v in r.items() if k != "seconds"} for r in rows), key=lambda r: r["path"])

        assert cells(read_results(root)) == cells(read_results(local))
        with pytest.raises(OutputError, match="end the URL with /"):
            score_to_csv(films, classifier, root + "r.csv", workers=2)
    finally:
        store.rm(root.split("://", 1)[1].rstrip("/").rsplit("/", 1)[0], recursive=True)


def test_results_to_a_scheme_nobody_serves_are_refused(films, tiny_model, tmp_path, capsys):
    assert score(films, tiny_model, "nosuchfs://bucket/results/") != 0
    err = capsys.readouterr().err
    assert "is not a file system pyarrow or fsspec knows" in err and "Traceback" not in err


def test_a_resumed_run_names_each_picture_as_a_fresh_run(films, tiny_model, tmp_path):
    """Two films of one stem: the first run (killed, say, after the first) wrote same.png; the
    rerun must name the second same-2.png, not write it over the first's picture."""
    one, two = [f for f in films if f.name == "same.png"]
    out, pics = tmp_path / "r.csv", tmp_path / "pics"
    assert score([one], tiny_model, out, "--export-dir", str(pics)) == 0
    first = (pics / "same.png").read_bytes()
    assert score([one, two], tiny_model, out, "--export-dir", str(pics)) == 0
    assert sorted(files_under(pics)) == ["same-2.png", "same.png"]
    assert (pics / "same.png").read_bytes() == first


def test_a_file_url_over_the_film_folder_is_refused(films, tiny_model, tmp_path, capsys):
    folder = films[2].parent
    assert score(films, tiny_model, tmp_path / "r.csv", "--export-dir", f"file://{folder}") == 2
    assert "holds films being scored" in capsys.readouterr().err
    assert not any(p.name.endswith(".png") and p.stem.startswith("d") for p in folder.iterdir())
