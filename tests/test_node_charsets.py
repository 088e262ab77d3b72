"""The DICOM node and films in ISO 2022 character sets, against a real PACS (Debian's Orthanc).

Before issue 25 a Japanese (``\\ISO 2022 IR 87``), Korean (``\\ISO 2022 IR 149``), lone
``ISO 2022 IR 100`` or empty-charset film got no SR and no Presentation State from the node
(highdicom refused the copied Specific Character Set). Now every result reaches the PACS, in
UTF-8, with the patient's name as the film has it. Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import time
from pathlib import Path

import pydicom
import pytest
from orthancserver import LOOPBACK, available, free_port, referenced_uids, running_orthanc

from test_dicom_charsets import CHARSETS, charset_film, dciodvfy_errors

pytest.importorskip("pynetdicom")
pytestmark = pytest.mark.skipif(not available(), reason="Orthanc is not installed (apt-get install orthanc)")

NODE_AET = "CXRVIEWER"
KINDS = {"1.2.840.10008.5.1.4.1.1.88.34": "sr", "1.2.840.10008.5.1.4.1.1.11.1": "gsps", "1.2.840.10008.5.1.4.1.1.7": "sc"}
CASES = ("japanese_iso2022", "korean_iso2022", "lone_iso2022_ir100", "empty")


@pytest.mark.slow
def test_the_node_sends_every_result_of_films_in_iso2022_and_empty_character_sets(tmp_path, tiny_model):
    from pynetdicom import AE

    from cxrviewer.model import Classifier
    from cxrviewer.dimse import parse_destination
    from cxrviewer.node import NodeConfig
    from cxrviewer.node.service import Node

    films = {case: charset_film(tmp_path / f"{case}.dcm", *CHARSETS[case]) for case in CASES}
    port = free_port()
    with running_orthanc(tmp_path / "orthanc", {"cxrviewer": (NODE_AET, port)}) as pacs:
        config = NodeConfig(ae_title=NODE_AET, host=LOOPBACK, port=port, spool=tmp_path / "spool",
                            outputs=("sr", "gsps", "sc"), destinations=(parse_destination(pacs.destination),))
        node = Node(config, Classifier.load(tiny_model, device="cpu", threads=1), workers=1, drain_seconds=5)
        node.start()
        try:
            ae = AE(ae_title="MODALITY")
            for path in films.values():
                ds = pydicom.dcmread(path, stop_before_pixels=True)
                ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
            assoc = ae.associate(LOOPBACK, port, ae_title=NODE_AET)
            assert assoc.is_established
            try:
                assert [assoc.send_c_store(p).Status for p in films.values()] == [0] * len(films)
            finally:
                assoc.release()
            pacs.wait_count(3 * len(films), timeout=90)
            time.sleep(0.3)
            assert node.wait_idle(30)
            files = {i: pacs.get(f"/instances/{i}/file") for i in pacs.instance_ids()}  # as stored
        finally:
            node.stop()
    by_source: dict[str, dict[str, Path]] = {}
    for i, data in files.items():
        out = tmp_path / f"{i}.dcm"
        out.write_bytes(data)
        ds = pydicom.dcmread(out)
        if str(ds.SOPClassUID) in KINDS:
            for uid in referenced_uids(ds):
                by_source.setdefault(uid, {})[KINDS[str(ds.SOPClassUID)]] = out
    for case, path in films.items():
        src = pydicom.dcmread(path, stop_before_pixels=True)
        got = by_source.get(src.SOPInstanceUID, {})
        assert sorted(got) == ["gsps", "sc", "sr"], (case, sorted(got))
        name = CHARSETS[case][1]
        for kind, out in got.items():
            ds = pydicom.dcmread(out)
            assert str(ds.PatientName) == name and ds.get("SpecificCharacterSet") in ("ISO_IR 192", None), (case, kind)
            assert dciodvfy_errors(out) == [], (case, kind, dciodvfy_errors(out))
