"""The DICOM results as pydicom writes them: encode() adds nothing to pydicom's writer, for a
source read in either VR encoding; reports of one model each keep their own film's findings.
"""

from __future__ import annotations

import copy
import dataclasses
import io

import numpy as np
import pydicom
import pytest
from dicomfactory import CR_IMAGE, dicom_dataset, lut_item, write_dicom

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


def test_srs_of_one_model_keep_their_own_findings(tmp_path, demo):
    """Two films, two SRs of one model: each says its own film's probabilities, present or absent."""
    from cxrviewer.dicom.codes import ABSENT, PRESENT, finding_code

    films = [_film(tmp_path, True), _film(tmp_path, False)]
    preds = [demo.predict_one(f) for f in films]
    # a second prediction with other probabilities, so that present / absent differ
    flipped = dataclasses.replace(preds[1], probabilities=1.0 - np.asarray(preds[1].probabilities))
    datasets = [build_sr(films[0], preds[0], demo.info), build_sr(films[1], flipped, demo.info)]
    for ds, pred in zip(datasets, (preds[0], flipped)):
        groups = _groups(encode(ds, "test"))
        assert set(groups) == set(pred.labels)
        for label, p, t in zip(pred.labels, pred.probabilities, pred.thresholds):
            g = groups[label]
            assert g["probability"] == pytest.approx(float(f"{float(p):.6f}"))
            assert g["threshold"] == pytest.approx(float(f"{float(t):.6f}"))
            assert g["evaluation"] == (PRESENT if float(p) >= float(t) else ABSENT).value
            assert g["finding"] == finding_code(label).value
