"""The DICOM results built and encoded in less CPU (the node's CPU per film, bench/bench_node.py),
with the same content: the encoder resolves the ambiguous VRs of a result's tree once instead of
once per nesting level; highdicom's IOD table lookups are remembered; an SR's model constants
are built once per model.
"""

from __future__ import annotations

import copy
import dataclasses
import io

import numpy as np
import pydicom
import pytest
from dicomfactory import CR_IMAGE, dicom_dataset, lut_item, write_dicom
from pydicom import filewriter

from cxrviewer.dicom import build_gsps, build_sr
from cxrviewer.dicom.output import encode


@pytest.fixture(scope="module")
def demo():
    from cxrviewer.model import Classifier
    from cxrviewer.paths import default_model_path

    return Classifier.load(default_model_path(), device="cpu")


def _film(folder, preamble: bool):
    """A CR film with a VOI LUT item (a sequence read from the file into the results'
    references), written with a file meta (Explicit VR) or as a bare Implicit VR data set."""
    from cxrviewer.io import read_film

    ds = dicom_dataset(
        (np.arange(128 * 96, dtype=np.uint16) % 4096).reshape(128, 96), bits_stored=12,
        sop_class=CR_IMAGE, modality="CR", voi_lut=lut_item(list(range(0, 4096, 16)), 0, 12),
    )
    return read_film(write_dicom(folder / f"film-{preamble}.dcm", ds, preamble=preamble))


def _pydicom_bytes(ds) -> bytes:
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


@pytest.mark.parametrize("preamble", [True, False], ids=["explicit-vr-source", "implicit-vr-source"])
@pytest.mark.parametrize("build", [build_sr, build_gsps], ids=["sr", "gsps"])
def test_encode_writes_pydicoms_bytes(tmp_path, demo, build, preamble):
    film = _film(tmp_path, preamble)
    pred = demo.predict_one(film)
    # every label's regions: the largest tree a film can give
    ds = build(film, pred, demo.info, region_labels=pred.labels)
    expected = _pydicom_bytes(copy.deepcopy(ds))
    assert encode(ds, "test") == expected
    again = pydicom.dcmread(io.BytesIO(expected))
    assert again.SOPInstanceUID == ds.SOPInstanceUID


def test_encode_leaves_pydicom_no_walk_of_the_tree(tmp_path, demo, monkeypatch):
    """pydicom walked a built SR's whole subtree again for each of its ~1000 items, and its walk
    from the top decodes every frozen part (cxrviewer.dicom.stamp): encode walks the tree
    itself, once, and pydicom's writer none of it (the bytes are pydicom's: the test above)."""
    film = _film(tmp_path, True)
    pred = demo.predict_one(film)
    ds = build_sr(film, pred, demo.info, region_labels=pred.labels)
    walks = []
    real = filewriter.correct_ambiguous_vr

    def counting(ds, is_little_endian, ancestors=None):
        # a walk from the top of a tree (its recursion passes ancestors); not the file meta's
        if ancestors is None and not isinstance(ds, pydicom.dataset.FileMetaDataset):
            walks.append(ds)
        return real(ds, is_little_endian, ancestors)

    monkeypatch.setattr(filewriter, "correct_ambiguous_vr", counting)
    encode(ds, "test")
    assert walks == [], f"{len(walks)} walks of the tree"


def test_highdicoms_iod_lookups_are_remembered_with_the_same_answers():
    """highdicom scans the standard's module tables each time it references an image (~2 ms,
    15 times for one Presentation State): cxrviewer.dicom has it look each up once."""
    import highdicom._standard_utils as standard
    import highdicom.base
    import highdicom.sr.content

    import cxrviewer.dicom  # noqa: F401 - what puts the remembered lookup in place

    lookup = standard.is_attribute_in_iod
    assert getattr(lookup, "_cxr_remembered", False)
    assert highdicom.base.is_attribute_in_iod is lookup and highdicom.sr.content.is_attribute_in_iod is lookup
    original = lookup.__wrapped__
    for sop_class in (CR_IMAGE, "1.2.840.10008.5.1.4.1.1.1.1", "1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.88.34"):
        for attribute, exclude in (("PixelData", ["IconImageSequence"]), ("NumberOfFrames", None), ("ContentDate", None)):
            for _ in range(2):
                assert lookup(attribute, sop_class, exclude) == original(attribute, sop_class, exclude)
    with pytest.raises(KeyError):  # an unknown SOP class is still refused, every time
        lookup("PixelData", "1.2.3.4")


def _groups(sr_bytes: bytes) -> dict[str, dict[str, object]]:
    """label -> its measurement group's probability, threshold and evaluation, as written."""
    import highdicom as hd

    report = hd.sr.srread(io.BytesIO(sr_bytes)).content
    out = {}
    for group in report.get_image_measurement_groups():
        label = group.tracking_identifier
        if label == "out-of-distribution check":
            continue
        values = {str(m.name.value): m.value for m in group.get_measurements()}
        (evaluation,) = group.get_qualitative_evaluations()
        out[label] = {"probability": values["122157"], "threshold": values["122411"],
                      "evaluation": evaluation.value.value, "finding": group.finding_type.value}
    return out


def test_srs_of_one_model_share_its_constants_and_keep_their_own_findings(tmp_path, demo):
    """Two films, two SRs: the model's parts (algorithm, thresholds, evaluations) are built once
    and shared, and each SR still says its own film's probabilities, present or absent."""
    from cxrviewer.dicom import sr as sr_module
    from cxrviewer.dicom.codes import ABSENT, PRESENT, finding_code

    films = [_film(tmp_path, True), _film(tmp_path, False)]
    preds = [demo.predict_one(f) for f in films]
    # a second prediction with other probabilities, so that present / absent differ
    flipped = dataclasses.replace(preds[1], probabilities=1.0 - np.asarray(preds[1].probabilities))
    datasets = [build_sr(films[0], preds[0], demo.info), build_sr(films[1], flipped, demo.info)]
    parts = sr_module._model_parts(demo.info, preds[0])
    assert sr_module._model_parts(demo.info, flipped) is parts  # built once for the model
    assert sr_module._parts_of.cache_info().hits >= 2
    for ds, pred in zip(datasets, (preds[0], flipped)):
        groups = _groups(encode(ds, "test"))
        assert set(groups) == set(pred.labels)
        for label, p, t in zip(pred.labels, pred.probabilities, pred.thresholds):
            g = groups[label]
            assert g["probability"] == pytest.approx(float(f"{float(p):.6f}"))
            assert g["threshold"] == pytest.approx(float(f"{float(t):.6f}"))
            assert g["evaluation"] == (PRESENT if float(p) >= float(t) else ABSENT).value
            assert g["finding"] == finding_code(label).value
