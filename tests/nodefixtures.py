"""The fixtures every DICOM node test module shares: the node's port and a real Orthanc (one per
module, emptied for each test) that knows the node as the modality ``CXRVIEWER``.

tests/conftest.py loads them as a plugin, so every test module has them; one may define its own.
"""

from __future__ import annotations

import pytest

from orthancserver import available, free_port, running_orthanc

NODE_AET = "CXRVIEWER"


@pytest.fixture(scope="module")
def node_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory, node_port):
    if not available():
        pytest.skip("Orthanc is not installed (apt-get install orthanc)")
    with running_orthanc(tmp_path_factory.mktemp("orthanc"), {"cxrviewer": (NODE_AET, node_port)}) as server:
        yield server


@pytest.fixture
def pacs(orthanc):
    """The module's Orthanc, emptied for each test."""
    orthanc.clear()
    return orthanc
