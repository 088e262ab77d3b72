"""A real PACS for the node's tests: Debian's Orthanc, started on free loopback ports.

Each server gets a temporary configuration and storage, never the system service's. Orthanc
1.10 has no option to bind its DICOM port to one address, so it is told to take C-STORE and
C-ECHO only from the modalities it names, each checked by address (127.0.0.1), and its HTTP
port refuses remote access. DICOMweb (STOW-RS, QIDO-RS, WADO-RS) is there when Debian's orthanc-dicomweb plugin is.
With ``query_retrieve`` any caller on loopback may query (C-FIND) and C-GET; C-MOVE sends only
to the named modalities.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pydicom

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"


def dcmtk(tool: str) -> str:
    """dcmtk's ``tool`` (``storescu``, ``echoscu``): pynetdicom installs apps of the same names
    with other options into the virtual environment's bin, which comes first on PATH when the
    environment is activated (as in CI)."""
    import os

    for folder in os.environ.get("PATH", os.defpath).split(os.pathsep):
        exe = Path(folder) / tool
        if not (exe.is_file() and os.access(exe, os.X_OK)):
            continue
        version = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=30)
        if "dcmtk" in (version.stdout + version.stderr):
            return str(exe)
    raise FileNotFoundError(f"dcmtk's {tool} is not installed (apt-get install dcmtk)")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def available() -> bool:
    return Path(ORTHANC).is_file()


@dataclass
class Orthanc:
    root: Path
    http_port: int
    dicom_port: int
    aet: str = "ORTHANC"
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"

    @property
    def dicomweb(self) -> str | None:
        return f"{self.url}/dicom-web" if DICOMWEB_PLUGIN.is_file() else None

    @property
    def destination(self) -> str:
        return f"{self.aet}@{LOOPBACK}:{self.dicom_port}"

    # ------------------------------------------------------------------ REST
    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            return r.read()

    def get_json(self, path: str):
        return json.loads(self.get(path))

    def post(self, path: str, body: bytes | str, content_type: str = "application/json"):
        data = body.encode() if isinstance(body, str) else body
        req = urllib.request.Request(self.url + path, data=data, method="POST", headers={"Content-Type": content_type})
        with urllib.request.urlopen(req, timeout=60) as r:
            out = r.read()
        return json.loads(out) if out else None

    def delete(self, path: str) -> None:
        req = urllib.request.Request(self.url + path, method="DELETE")
        urllib.request.urlopen(req, timeout=30).read()

    def upload(self, path: Path) -> str:
        return self.post("/instances", path.read_bytes(), "application/dicom")["ID"]

    def instance_ids(self) -> list[str]:
        return self.get_json("/instances")

    def datasets(self) -> list[pydicom.Dataset]:
        """Every instance stored, read back as pydicom data sets (without pixel data)."""
        return [
            pydicom.dcmread(io.BytesIO(self.get(f"/instances/{i}/file")), stop_before_pixels=True)
            for i in self.instance_ids()
        ]

    def clear(self) -> None:
        for pid in self.get_json("/patients"):
            self.delete(f"/patients/{pid}")

    def wait_count(self, n: int, timeout: float = 60.0, predicate=None) -> list[str]:
        """Wait until at least ``n`` instances are stored; returns their ids."""
        deadline = time.monotonic() + timeout
        ids: list[str] = []
        while time.monotonic() < deadline:
            ids = self.instance_ids()
            if len(ids) >= n:
                return ids
            time.sleep(0.2)
        return ids

    # ------------------------------------------------------------- lifecycle
    def start(self, modalities: dict[str, tuple[str, int]], query_retrieve: bool = False, extra: dict | None = None) -> None:
        """Start on ``modalities`` ({name: (AE title, port)}); with ``query_retrieve`` any caller
        on loopback may C-FIND and C-GET (it then also accepts associations from AE titles it
        does not list, which the node's tests want refused); ``extra`` adds configuration
        options (e.g. DICOM TLS)."""
        (self.root / "storage").mkdir(parents=True, exist_ok=True)
        config = {
            "Name": "cxrviewer-test-pacs",
            "StorageDirectory": str(self.root / "storage"),
            "IndexDirectory": str(self.root / "storage"),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": self.aet,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "Plugins": [str(DICOMWEB_PLUGIN)] if DICOMWEB_PLUGIN.is_file() else [],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            # Only the named modalities, from their own address, may store or echo; with
            # query_retrieve anyone on loopback may query and C-GET (cxrviewer's query/retrieve
            # tests); a C-MOVE goes only to a named modality (its AE title, address and port).
            "DicomAlwaysAllowStore": False,
            "DicomAlwaysAllowEcho": False,
            "DicomAlwaysAllowFind": query_retrieve,
            "DicomAlwaysAllowGet": query_retrieve,
            "DicomCheckModalityHost": True,
            "DicomModalities": {name: [aet, LOOPBACK, port] for name, (aet, port) in modalities.items()},
            "StableAge": 1,
            "HttpTimeout": 30,
            **(extra or {}),
        }
        cfg = self.root / "orthanc.json"
        cfg.write_text(json.dumps(config, indent=1))
        log = open(self.root / "orthanc.log", "wb")
        self.process = subprocess.Popen([ORTHANC, str(cfg)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited: {(self.root / 'orthanc.log').read_text()[-2000:]}")
            try:
                self.get_json("/system")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("Orthanc did not start within 30 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None


def referenced_uids(ds: pydicom.Dataset) -> set[str]:
    """Every ReferencedSOPInstanceUID anywhere in ``ds`` (an SR's evidence, a GSPS's image
    references, an SC's source image sequence)."""
    out: set[str] = set()
    for elem in ds.iterall():
        if elem.keyword == "ReferencedSOPInstanceUID":
            out.add(str(elem.value))
    return out


@contextlib.contextmanager
def running_orthanc(folder: Path, peers: dict, query_retrieve: bool = False, extra: dict | None = None):
    """A real Orthanc in ``folder`` on free loopback ports, knowing ``peers``
    ({name: (AE title, port)}), stopped on leaving; ``query_retrieve``: see :meth:`Orthanc.start`."""
    server = Orthanc(folder, free_port(), free_port())
    server.start(peers, query_retrieve, extra)
    try:
        yield server
    finally:
        server.stop()
