"""DICOM films read from a URL get the DICOM results (SR, Presentation State, SC) the same files
get when read from a folder, with either engine and into a folder or a URL; a resumed run redoes
a result removed since; the header is read from the URL without its pixel data; a film whose
object is gone by the time its results are written gets an error row. Films: the sample films of
``resources/samples`` as PNGs and DICOMs (tests/exportfilms.py), at ``memory://`` URLs (fsspec's
in-memory store, this process only) and at ``file://`` URLs (pyarrow's LocalFileSystem)."""

from __future__ import annotations

import functools
import os
import uuid
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pyarrow")
fsspec = pytest.importorskip("fsspec")

from dicomfactory import CR_IMAGE, build_dicom
from exportfilms import files_under, make_films, same_dicom
from fsspec.implementations.memory import MemoryFileSystem
from helpers import REPO

from cxrviewer.batch import ExportPlan, ExportTally, export_film, handed_on, score_films, score_to_csv
from cxrviewer.dicom.folder import dicom_uids
from cxrviewer.dicom.source import read_source_header
from cxrviewer.io import read_film, read_url
from cxrviewer.results import read_results

RESULTS = 3  # SR, Presentation State, Secondary Capture of each DICOM film
PNGS, DICOMS = 2, 2


@pytest.fixture(scope="module")
def films(tmp_path_factory) -> list[Path]:
    """Two PNGs (of one stem, in two folders), two DICOMs and a broken PNG, in input order."""
    return make_films(tmp_path_factory.mktemp("films"), pngs=PNGS, dicoms=DICOMS)


@pytest.fixture(scope="module")
def local_results(films, classifier, tmp_path_factory) -> tuple[Path, tuple[int, ...]]:
    """The DICOM results of the films read from their folder, and the run's export counts."""
    out = tmp_path_factory.mktemp("local")
    tally = ExportTally()
    s = score_to_csv(films, classifier, out / "r.csv", exports=ExportPlan(None, out / "dcm"), tally=tally, workers=2)
    assert (s.scored, s.failed) == (len(films) - 1, 1)
    assert tally.counts() == (0, DICOMS * RESULTS, PNGS, 0, 0, 0)  # none failed, none stale
    return out / "dcm", tally.counts()


@pytest.fixture
def memory_root():
    """A fresh prefix of fsspec's in-memory store, removed afterwards."""
    root = f"memory://cxr-urldicom-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        yield root
    finally:
        store = fsspec.filesystem("memory")
        if store.exists(root.split("://", 1)[1]):
            store.rm(root.split("://", 1)[1], recursive=True)


def film_urls(films: list[Path], scheme: str, memory_root: str) -> list[str]:
    """The films as URLs: ``file://`` names the very files; ``memory://`` gets a copy of each, under
    the same relative name (the SC draws the file name)."""
    if scheme == "file":
        return [f"file://{p}" for p in films]
    store = fsspec.filesystem("memory")
    base = Path(os.path.commonpath([p.parent for p in films]))
    urls = []
    for p in films:
        url = f"{memory_root}/films/{p.relative_to(base).as_posix()}"
        store.pipe(url.split("://", 1)[1], p.read_bytes())
        urls.append(url)
    return urls


def fetched(url_root: str, into: Path) -> dict[str, Path]:
    """The objects under a ``memory://`` prefix, copied into a folder: relative name → file."""
    store = fsspec.filesystem("memory")
    prefix = url_root.split("://", 1)[1].strip("/")
    for key in store.find(prefix):
        target = into / key.strip("/")[len(prefix):].lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(store.cat_file(key))
    return files_under(into)


@pytest.mark.parametrize(("scheme", "destination"), [
    ("memory", "folder"), ("memory", "memory"), ("file", "folder"), ("file", "file"),
])
@pytest.mark.slow
def test_dicom_films_at_urls_get_the_results_of_the_same_files_in_a_folder(
        films, classifier, local_results, tmp_path, memory_root, scheme, destination):
    want, want_counts = local_results
    dest = {"folder": tmp_path / "dcm", "memory": f"{memory_root}/dcm", "file": f"file://{tmp_path}/dcm"}[destination]
    tally = ExportTally()
    s = score_to_csv(film_urls(films, scheme, memory_root), classifier, tmp_path / "r.csv",
                     exports=ExportPlan(None, dest), tally=tally, workers=2)
    assert (s.scored, s.failed) == (len(films) - 1, 1)
    # the same counts: each DICOM film its three results, each PNG counted as not DICOM
    assert tally.counts() == want_counts
    got = fetched(dest, tmp_path / "fetched") if destination == "memory" else files_under(tmp_path / "dcm")
    assert sorted(got) == sorted(files_under(want)) and len(got) == DICOMS * RESULTS
    for name, p in files_under(want).items():
        same_dicom(got[name], p)  # pixels and coded content; only new UIDs and times differ


def test_a_resumed_run_redoes_the_removed_result_of_a_url_film(films, classifier, tmp_path, memory_root):
    urls = film_urls(films, "memory", memory_root)
    plan = ExportPlan(None, tmp_path / "dcm")
    score_to_csv(urls, classifier, tmp_path / "r.csv", exports=plan, workers=2)
    results = files_under(tmp_path / "dcm")
    assert len(results) == DICOMS * RESULTS
    gone = min(results)
    stamp = {n: p.stat().st_mtime_ns for n, p in results.items() if n != gone}
    results[gone].unlink()
    tally = ExportTally()
    s = score_to_csv(urls, classifier, tmp_path / "r.csv", exports=plan, tally=tally, workers=2)
    # the film that lost a result is scored again (the broken film is tried again too), and
    # only the missing result is written
    assert (s.scored, s.failed, s.skipped, tally.dicom) == (1, 1, len(films) - 2, 1)
    again = files_under(tmp_path / "dcm")
    assert sorted(again) == sorted(results)
    assert {n: p.stat().st_mtime_ns for n, p in again.items() if n != gone} == stamp
    rows = read_results(tmp_path / "r.csv")
    assert [r["path"] for r in rows if r["status"] == "ok"][-1] in urls


def test_a_url_film_whose_object_is_gone_gets_an_error_row(films, classifier, tmp_path, memory_root):
    """Read and scored, then its object removed before its results are written: the film's row
    says the header could not be read again, as it does for a local file."""
    dicom = next(p for p in films if p.suffix == ".dcm")
    url, = film_urls([dicom], "memory", memory_root)
    gone = tmp_path / dicom.name
    gone.write_bytes(dicom.read_bytes())
    plan = ExportPlan(None, tmp_path / "dcm")
    rows = {}
    for where in (url, gone):
        (result,) = score_films([where], classifier, keep_films=True)
        assert result.ok
        if where == url:
            fsspec.filesystem("memory").rm(url.split("://", 1)[1])
        else:
            gone.unlink()
        tally = ExportTally()
        rows[where] = handed_on(result, functools.partial(export_film, plan=plan, info=classifier.info, name=None,
                                                          tally=tally))
        assert tally.counts() == (0, 0, 0, 0, 0, 0)
    for row in rows.values():
        assert (row.ok, row.error_type) == (False, "ExportFailed")
        assert row.error.startswith(f"Export failed: Cannot re-read the DICOM header of {dicom.name} ("), row.error
    assert not (tmp_path / "dcm").exists() or files_under(tmp_path / "dcm") == {}


class CountingMemoryFS(MemoryFileSystem):
    """fsspec's in-memory store that counts the bytes read from it (as a bill for an object store
    would): the store itself, under a scheme of its own."""

    protocol = "cxrcount"
    read = 0

    def _open(self, path, mode="rb", **kwargs):
        f = super()._open(path, mode, **kwargs)
        if "r" in mode:
            plain = f.read

            def counted(*args):
                data = plain(*args)
                CountingMemoryFS.read += len(data)
                return data

            f.read = counted
        return f


def test_the_header_is_read_from_a_url_without_the_pixel_data(tmp_path):
    from cxrviewer.dicom.source import HEADER_CHUNK
    from cxrviewer.io import SOURCE_URL

    fsspec.register_implementation(CountingMemoryFS.protocol, CountingMemoryFS, clobber=True)
    side = 2048  # 8 MiB of pixel data behind a header of a few kB
    pixels = (np.arange(side * side, dtype=np.uint32).reshape(side, side) % 4096).astype(np.uint16)
    local = build_dicom(tmp_path / "big.dcm", pixels, bits_stored=12, sop_class=CR_IMAGE, modality="CR")
    url = f"cxrcount://cxr-urldicom-{os.getpid()}/big.dcm"
    store = fsspec.filesystem(CountingMemoryFS.protocol)
    store.pipe(url.split("://", 1)[1], local.read_bytes())
    try:
        film = read_film(url, read_url(url))
        assert film.metadata[SOURCE_URL] == url  # Film.source, a Path, folds its "//"
        CountingMemoryFS.read = 0
        header = read_source_header(film)
        assert CountingMemoryFS.read <= HEADER_CHUNK < local.stat().st_size // 64
        assert "PixelData" not in header
        assert header.SOPInstanceUID == read_source_header(read_film(local)).SOPInstanceUID
        CountingMemoryFS.read = 0
        uids = dicom_uids(url)
        assert CountingMemoryFS.read <= HEADER_CHUNK
        assert uids == dicom_uids(local) and uids.instance == header.SOPInstanceUID
    finally:
        store.rm(url.split("://", 1)[1])


@pytest.mark.slow
def test_the_ray_engine_gives_url_dicom_films_the_results_of_the_local_engine(
        films, tiny_model, local_results, tmp_path):
    """Ray's actors (other processes) read the films at file:// URLs and write their results to a
    file:// URL; a rerun after a result was removed writes it again."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    from cxrviewer.scale import RayOptions, score_on_ray

    want, want_counts = local_results
    urls = film_urls(films, "file", "")
    plan = ExportPlan(None, f"file://{tmp_path}/dcm")
    path = os.pathsep.join([str(REPO), str(REPO / "tests")])
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=150 * 1024 * 1024, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path}})
    try:
        tally = ExportTally()
        s = score_on_ray(urls, tiny_model, tmp_path / "r.csv", options=RayOptions(workers=2), exports=plan, tally=tally)
        assert (s.scored, s.failed) == (len(films) - 1, 1)
        assert tally.counts() == want_counts
        got = files_under(tmp_path / "dcm")
        assert sorted(got) == sorted(files_under(want))
        for name, p in files_under(want).items():
            same_dicom(got[name], p)
        gone = min(got)
        got[gone].unlink()
        s = score_on_ray(urls, tiny_model, tmp_path / "r.csv", options=RayOptions(workers=2), exports=plan)
        assert (s.scored, s.failed, s.skipped) == (1, 1, len(films) - 2)
        assert sorted(files_under(tmp_path / "dcm")) == sorted(got)
    finally:
        ray.shutdown()


def test_a_film_read_from_a_url_keeps_its_url_and_one_from_a_path_has_none(films, memory_root):
    """read_film records the URL a film came from, whatever its format (a PNG, a DICOM): its
    ``source`` is a Path, which folds the URL's ``//``; a film read from a path has no URL."""
    from cxrviewer.dicom.source import film_location
    from cxrviewer.io import SOURCE_URL

    store = fsspec.filesystem("memory")
    for path in (films[0], films[PNGS]):  # a PNG and a DICOM
        url = f"{memory_root}/{path.name}"
        store.pipe(url.split("://", 1)[1], path.read_bytes())
        film = read_film(url, read_url(url))
        assert film.metadata[SOURCE_URL] == url and "//" not in str(film.source)
        assert film_location(film) == url
        local = read_film(path)
        assert SOURCE_URL not in local.metadata and film_location(local) == path
