"""The node's result objects, made in less CPU with the same content.

- The Presentation State is the one the code made before it was made cheaper: a golden copy
  (tests/data/gsps_golden.json, written by the code of commit bbc8487) of a fixed film and
  prediction, compared UIDs, dates and software version aside.
- A scoring process of the node writes the results this process writes for the same film.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicomfactory import CR_IMAGE, build_dicom
from tinymodel import tiny_info

from cxrviewer.dicom import build_gsps
from cxrviewer.errors import CxrError
from cxrviewer.io import read_film
from cxrviewer.node.outputs import write_results
from cxrviewer.types import Prediction

GOLDEN = Path(__file__).parent / "data" / "gsps_golden.json"
# what differs between two builds of the same result: new UIDs (not the standard's own, such as
# SOP classes: PS3.6 annex A), the day and time, the software version
_DATES = {"DA", "TM", "DT"}
_SOFTWARE_VERSIONS = "00181020"
_STANDARD_UID = "1.2.840.10008."


def _varies(tag: str, elem: dict) -> bool:
    if elem.get("vr") == "UI":
        return not all(str(v).startswith(_STANDARD_UID) for v in elem["Value"])
    return elem.get("vr") in _DATES or tag == _SOFTWARE_VERSIONS


def single_precision(values: list) -> list[float]:
    """FL values as the file holds them (single precision, PS3.5 6.2): a value set as a Python
    float and the same value read back from its encoding are one number in the file."""
    return [float(np.float32(v)) for v in values]


def _golden() -> dict:
    def walk(node: dict) -> dict:
        for elem in node.values():
            if elem.get("vr") == "FL" and "Value" in elem:
                elem["Value"] = single_precision(elem["Value"])
            elif elem.get("vr") == "SQ":
                for item in elem.get("Value", []):
                    walk(item)
        return node

    return walk(json.loads(GOLDEN.read_text()))


def canonical(ds: pydicom.Dataset) -> dict:
    """``ds`` as DICOM JSON (PS3.18 F.2) with its own UIDs, dates, times and software version
    blanked, and its FL values as the file holds them."""

    def walk(node: dict) -> dict:
        out = {}
        for tag, elem in node.items():
            elem = dict(elem)
            if "Value" in elem and _varies(tag, elem):
                elem["Value"] = ["<varies>"]
            elif elem.get("vr") == "FL" and "Value" in elem:
                elem["Value"] = single_precision(elem["Value"])
            elif elem.get("vr") == "SQ":
                elem["Value"] = [walk(item) for item in elem.get("Value", [])]
            out[tag] = elem
        return out

    return walk(ds.to_json_dict(bulk_data_threshold=1 << 30))


def _film(folder: Path, photometric: str = "MONOCHROME1"):
    """A 300 x 240 CR film with a window: the same pixels every time (a gradient and a disc)."""
    y, x = np.mgrid[0:300, 0:240]
    px = (x * 8 + y * 4 + 2000 * ((x - 150) ** 2 + (y - 120) ** 2 < 40**2)).astype(np.uint16) % 4096
    path = build_dicom(folder / f"film-{photometric}.dcm", px, bits_stored=12, sop_class=CR_IMAGE,
                       modality="CR", photometric=photometric, window=(2048, 4000),
                       BodyPartExamined="CHEST", ViewPosition="PA")
    return read_film(path)


def _prediction(info) -> Prediction:
    """Fixed probabilities (three findings over their 0.5 threshold) and class maps with one
    bright blob each, where the positives get their regions."""
    n = len(info.labels)
    probabilities = np.linspace(0.05, 0.9, n).astype(np.float32)
    maps = np.zeros((n, 10, 8), np.float32)
    for i in range(n):
        maps[i, 1 + i % 6 : 4 + i % 6, 1 + i % 4 : 4 + i % 4] = 1.0 + i
    return Prediction(info.labels, probabilities, maps, tuple(info.thresholds[label] for label in info.labels),
                      info.model_version, features=np.linspace(0, 1, 16, dtype=np.float32))


@pytest.fixture
def case(tmp_path):
    info = tiny_info()
    return _film(tmp_path), _prediction(info), info


def test_the_presentation_state_is_the_one_made_before(case):
    film, prediction, info = case
    assert prediction.positives, "the golden case has findings with regions"
    got = canonical(build_gsps(film, prediction, info))
    if os.environ.get("CXR_WRITE_GOLDEN"):  # only to record it again on purpose
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    assert got == _golden()


def test_presentation_states_of_one_model_keep_their_own_findings(tmp_path, case):
    """Parts made once per model are shared: each film's own findings still come out its own."""
    film, prediction, info = case
    other = _film(tmp_path, "MONOCHROME2")
    flipped = Prediction(prediction.labels, prediction.probabilities[::-1].copy(), prediction.class_maps,
                         prediction.thresholds, prediction.model_version)
    first = canonical(build_gsps(film, prediction, info))
    canonical(build_gsps(other, flipped, info))
    assert canonical(build_gsps(film, prediction, info)) == first
    a, b = build_gsps(film, prediction, info), build_gsps(other, flipped, info)
    layers = lambda ds: [(item.GraphicLayer, item.GraphicLayerDescription) for item in ds.GraphicLayerSequence]
    assert layers(a) != layers(b)
    assert a.PresentationLUTShape == "INVERSE" and b.PresentationLUTShape == "IDENTITY"


@pytest.mark.slow
def test_a_worker_process_scores_a_film_as_this_process_does(tmp_path, tiny_model):
    """The node's scoring processes (cxrviewer.node.workers) run the one path: the results a
    spawned worker writes for a film in the spool are the ones written here; what comes back is
    the files, the findings and the CPU of each stage, with the process's start-up once; an
    unreadable film comes back as a failure, and the worker goes on."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from cxrviewer.model import Classifier
    from cxrviewer.node import workers

    film = _film(tmp_path)
    clf = Classifier.load(tiny_model, device="cpu", threads=1)
    prediction = clf.predict_one(film)
    asked = ("sr", "gsps")
    here, errors = write_results(tmp_path / "here", film, prediction, clf.info, asked)
    assert not errors
    with pytest.raises(RuntimeError, match="init"):
        workers.score_film(film.source, tmp_path / "unset", asked, False)  # not a worker process
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=workers.init,
                             initargs=(os.getpid(), str(tiny_model), "cpu", 1)) as pool:
        first = pool.submit(workers.score_film, film.source, tmp_path / "there", asked, False).result()
        broken = pool.submit(workers.score_film, tmp_path / "missing.dcm", tmp_path / "none", asked, False).result()
        again = pool.submit(workers.score_film, film.source, tmp_path / "again", ("sr",), False).result()
    assert first.failure is None and not first.errors and first.positives == tuple(prediction.positives)
    assert {k: canonical(pydicom.dcmread(p)) for k, p in first.written.items()} == \
        {k: canonical(pydicom.dcmread(p)) for k, p in here.items()}
    assert set(first.stages) == {"worker: start-up (once a process)", "worker: read", "worker: infer",
                                 "worker: build sr", "worker: build gsps"}
    assert broken.failure and "missing.dcm" in broken.failure and not broken.written
    assert again.failure is None and set(again.written) == {"sr"}
    assert set(again.stages) == {"worker: read", "worker: infer", "worker: build sr"}


# ----------------------------------------------------- a film's source, once for its results
def _films(generated_dicoms) -> list[Path]:
    """The generated DICOMs (one per property of the real ones, always here) and, where
    ``../shared/data`` is present, every real DICOM there."""
    from helpers import SHARED_DATA

    films = sorted(set(generated_dicoms.files.values()))
    if SHARED_DATA.is_dir():
        films += sorted((SHARED_DATA / "dicom").glob("*.dcm"))
    return films


def _count_header_reads(monkeypatch) -> list:
    """The source header reads the results make (the real reader runs; each call is noted)."""
    from cxrviewer.dicom import source

    reads = []
    real = source.read_source_header

    def counted(film):
        reads.append(film.source)
        return real(film)

    monkeypatch.setattr(source, "read_source_header", counted)
    return reads


@pytest.mark.slow
def test_write_results_reads_a_films_source_once(tmp_path, generated_dicoms, monkeypatch):
    from cxrviewer.dicom import DicomResultsFolder, export_dicom_sr
    from cxrviewer.dicom.folder import dicom_uids
    from cxrviewer.render import RenderOptions

    info = tiny_info()
    film = read_film(generated_dicoms["jpeg_baseline_chest"])
    prediction = _prediction(info)
    reads = _count_header_reads(monkeypatch)
    written, errors = write_results(tmp_path / "node", film, prediction, info, ("sr", "gsps"))
    assert not errors and set(written) == {"sr", "gsps"}
    assert len(reads) == 1, f"the source was read {len(reads)} times for one film's SR and Presentation State"
    # `score --dicom-out`'s writer too
    uids = dicom_uids(film.source)
    reads.clear()
    DicomResultsFolder(tmp_path / "score", ("sr", "gsps")).write(
        uids, film, prediction, info, RenderOptions(classes=prediction.positives))
    assert len(reads) == 1
    # one result on its own reads it for itself, as before
    reads.clear()
    export_dicom_sr(tmp_path / "one.dcm", film, prediction, info)
    assert len(reads) == 1


def _decoded(path: Path) -> str:
    from helpers import decoded_result

    return decoded_result(pydicom.dcmread(path))


@pytest.mark.slow
@pytest.mark.parametrize("anonymize", [False, True], ids=["identified", "anonymized"])
def test_results_sharing_a_source_are_the_ones_made_one_at_a_time(tmp_path, generated_dicoms, anonymize):
    """Every DICOM, generated and real (chest films, LUT sequences, a file without a preamble): the SR and the
    Presentation State written together from one source decode to the files written one at a
    time, each reading its source itself (UIDs numbered in order, times aside)."""
    from cxrviewer.dicom import write_result
    from cxrviewer.render import RenderOptions

    info = tiny_info()
    prediction = _prediction(info)
    options = RenderOptions(classes=prediction.positives)
    compared = 0
    films = _films(generated_dicoms)
    for path in films:
        film = read_film(path)
        together, errors = write_results(tmp_path / "together" / path.stem, film, prediction, info,
                                         ("sr", "gsps"), anonymize=anonymize)
        for kind in ("sr", "gsps"):
            alone = tmp_path / "alone" / path.stem / f"{kind}.dcm"
            alone.parent.mkdir(parents=True, exist_ok=True)
            try:
                write_result(kind, alone, film, prediction, info, options, anonymize=anonymize)
            except CxrError as exc:  # refused alone (a colour image's state): refused together, the same way
                assert errors.get(kind) == str(exc)
                continue
            assert kind in together, errors
            assert _decoded(together[kind]) == _decoded(alone), f"{path.name} {kind}"
            compared += 1
    assert compared >= len(films)  # an SR for each film at least
