"""The listening side: a Storage SCP for chest films and a Verification SCP (C-ECHO).

Built on pynetdicom. Storage presentation contexts are accepted for every storage SOP class,
so a PACS that sends a whole study learns per instance, by a C-STORE status, what is refused:
only CR, DX (for presentation and for processing) and grayscale Secondary Capture images are
taken; everything else gets 0x0122 "SOP Class not supported" (PS3.7 C.4.2.1.4, PS3.4 B.2.3).
Transfer syntaxes: the uncompressed ones and every compressed one the installed codecs decode,
the same decoders :func:`cxrviewer.io.read_film` uses. See docs/dicom-node.md.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import shutil
import sqlite3
import ssl
import threading
from collections.abc import Callable

from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from ..errors import NodeConfigError
from .config import NodeConfig, Tls
from .spool import NEW, RESCORE, RESEND, Spool
from .timing import CpuTally

logger = logging.getLogger(__name__)

CR = "1.2.840.10008.5.1.4.1.1.1"  # Computed Radiography Image Storage
DX_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"
DX_PROCESSING = "1.2.840.10008.5.1.4.1.1.1.1.1"
SC = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture Image Storage (grayscale ones only)
SC_GRAY_BYTE = "1.2.840.10008.5.1.4.1.1.7.2"  # Multi-frame Grayscale Byte SC
SC_GRAY_WORD = "1.2.840.10008.5.1.4.1.1.7.3"  # Multi-frame Grayscale Word SC
ACCEPTED_SOP_CLASSES = {
    CR: "Computed Radiography Image Storage",
    DX_PRESENTATION: "Digital X-Ray Image Storage - For Presentation",
    DX_PROCESSING: "Digital X-Ray Image Storage - For Processing",
    SC: "Secondary Capture Image Storage (grayscale)",
    SC_GRAY_BYTE: "Multi-frame Grayscale Byte Secondary Capture Image Storage",
    SC_GRAY_WORD: "Multi-frame Grayscale Word Secondary Capture Image Storage",
}

MAX_PDU = 1024 * 1024

# C-STORE statuses (PS3.4 table B.2-1, PS3.7 annex C).
SUCCESS = 0x0000
SOP_CLASS_NOT_SUPPORTED = 0x0122
INVALID_SOP_INSTANCE = 0x0117
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000

# A-ASSOCIATE-RJ: rejected-permanent, by the service user, calling AE title not recognised (PS3.8 9.3.4)
_REJECTED_PERMANENT, _SERVICE_USER, _CALLING_AE_NOT_RECOGNIZED = 0x01, 0x01, 0x03

#: Room kept for a film's results when it arrives, beyond the film itself: an SR or a
#: Presentation State holds text and coordinates; a Secondary Capture is the film drawn in RGB
#: (three bytes a pixel, uncompressed).
RESULT_ROOM = {"sr": 256 * 1024, "gsps": 256 * 1024}

# PS3.5 9.1: UID components are digits without leading zeros, at most 64 characters in all.
_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")

# The compressed syntaxes the readers know (cxrviewer.io.dicom), kept when their codec is installed.
_COMPRESSED = (
    "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203", "1.2.840.10008.1.2.5",
)


def transfer_syntaxes() -> list[str]:
    """The transfer syntaxes accepted: uncompressed ones first, then the decodable compressed ones."""
    from pydicom import pixels

    out = [ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian]
    for uid in _COMPRESSED:
        try:
            if pixels.get_decoder(UID(uid)).is_available:
                out.append(uid)
        except NotImplementedError:
            continue
    return [str(u) for u in out]


def valid_uid(uid: str) -> bool:
    return 0 < len(uid) <= 64 and _UID.match(uid) is not None


class StorageScp:
    """The AE that takes films into the spool and hands each new one to ``on_film(uid)``."""

    def __init__(self, config: NodeConfig, spool: Spool, on_film: Callable[[str], None], cpu: CpuTally | None = None) -> None:
        from pynetdicom import AE, evt
        from pynetdicom.presentation import AllStoragePresentationContexts
        from pynetdicom.sop_class import Verification

        self.config = config
        self.spool = spool
        self.on_film = on_film
        self.cpu = cpu or CpuTally()
        self.received = 0
        #: the spool's disk was found too full for a new film (said once in the log until there is room)
        self.disk_full = False
        self._disk_lock = threading.Lock()
        ae = AE(ae_title=config.ae_title)
        ae.maximum_associations = config.max_associations
        # PDUs of up to 1 MiB rather than pynetdicom's 16 kB: a film arrives in tens of PDUs
        # instead of hundreds, each of which costs the SCP a turn of the interpreter lock
        ae.maximum_pdu_size = MAX_PDU
        if config.allowed_aes:
            ae.require_calling_aet = list(config.allowed_aes)
        syntaxes = transfer_syntaxes()
        for cx in AllStoragePresentationContexts:
            ae.add_supported_context(cx.abstract_syntax, syntaxes)
        ae.add_supported_context(Verification)
        self.ae = ae
        self._handlers = [
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_C_ECHO, lambda event: SUCCESS),
            (evt.EVT_REQUESTED, self._on_requested),
        ]
        self._server = None

    def start(self) -> tuple[str, int]:
        """Listen (in background threads); returns the address bound (port 0 picks a free one)."""
        try:
            self._server = self.ae.start_server(
                (self.config.host, self.config.port), block=False, evt_handlers=self._handlers,
                ssl_context=self._ssl_context(),
            )
        except OSError as exc:
            raise NodeConfigError(
                f"Cannot listen on {self.config.host}:{self.config.port}: {exc.strerror or exc}. "
                "Choose another port (ports below 1024 need privileges) or stop what uses it."
            ) from None
        host, port = self._server.server_address[:2]
        logger.info("listening as %s on %s:%d", self.config.ae_title, host, port)
        return host, port

    def stop_listening(self) -> None:
        """No new associations; the ones under way go on."""
        if self._server is not None:
            self._server.shutdown()

    def active(self) -> int:
        return len(self.ae.active_associations)

    def abort_all(self) -> None:
        self.ae.shutdown()

    def _ssl_context(self) -> ssl.SSLContext | None:
        return None if self.config.tls is None else tls_context(self.config.tls)

    # ------------------------------------------------------------------ handlers
    def _on_requested(self, event) -> None:
        """Refuse callers outside the address allow-list before any negotiation, with an
        A-ASSOCIATE-RJ as for a calling AE title not allowed: rejected-permanent, source
        service-user, "calling AE title not recognised" (PS3.8 9.3.4, table 9-21: the closest
        reason the standard has; a permanent rejection tells the sender not to retry).

        As pynetdicom does for ``require_calling_aet`` (``ACSE._negotiate_as_acceptor``): the
        reject goes to the peer, then the association is killed, which waits for the DUL to
        send it and for the peer to close (or the ARTIM timer). Without that wait the acceptor
        closed the socket at once, before the reject left, and the caller saw an abort."""
        allowed = self.config.allowed_hosts
        if not allowed:
            return
        assoc = event.assoc
        address = assoc.requestor.address
        if not _address_allowed(address, allowed):
            logger.warning("refused an association from %s: not in the allowed addresses", address)
            assoc.acse.send_reject(_REJECTED_PERMANENT, _SERVICE_USER, _CALLING_AE_NOT_RECOGNIZED)
            assoc.kill()

    def _on_store(self, event) -> int:
        with self.cpu.thread_cpu("receive (C-STORE handler, spool)"):
            return self._store(event)

    def _store(self, event) -> int:
        request = event.request
        sop_class = str(request.AffectedSOPClassUID)
        uid = str(request.AffectedSOPInstanceUID).strip().rstrip("\x00")
        caller = event.assoc.requestor.ae_title
        if sop_class not in ACCEPTED_SOP_CLASSES:
            logger.info("refused instance %s from %s: SOP class %s is not a chest film class", uid, caller, _class_name(sop_class))
            return SOP_CLASS_NOT_SUPPORTED
        if not valid_uid(uid):
            logger.warning("refused an instance from %s: malformed SOP Instance UID", caller)
            return INVALID_SOP_INSTANCE
        size = request.DataSet.getbuffer().nbytes
        if size > self.config.max_object_bytes:
            logger.warning("refused instance %s from %s: %d bytes, over the limit of %d", uid, caller, size, self.config.max_object_bytes)
            return OUT_OF_RESOURCES
        if sop_class == SC and not self._grayscale(event):
            logger.info("refused instance %s from %s: a colour Secondary Capture (only grayscale films are scored)", uid, caller)
            return SOP_CLASS_NOT_SUPPORTED
        try:
            if self.spool.wants_film(uid) and not self._room_for(uid, size, event):
                return OUT_OF_RESOURCES
            data = event.encoded_dataset(include_meta=True)
            outcome = self.spool.receive(uid, sop_class, data, caller)
        except (OSError, sqlite3.Error) as exc:
            # PS3.4 B.2.3: 0xA7xx "Refused: Out of Resources": the sender keeps the film and retries
            self._full(f"could not store instance {uid}: {getattr(exc, 'strerror', None) or exc}")
            return OUT_OF_RESOURCES
        if outcome in (NEW, RESCORE):
            self.received += 1
            self._room_again()
            if outcome == NEW:
                logger.info("received instance %s (%s) from %s", uid, ACCEPTED_SOP_CLASSES[sop_class], caller)
            else:
                logger.info("instance %s from %s was received before, but its job failed or is incomplete: scoring it "
                            "again (only the results it lacks)", uid, caller)
            self.on_film(uid)
        elif outcome == RESEND:
            logger.info("instance %s from %s was received before and its results are parked: delivering them again",
                        uid, caller)
        else:  # DUPLICATE: complete, or under way
            logger.info("instance %s from %s was received before; not scored again", uid, caller)
        return SUCCESS

    def _room_for(self, uid: str, size: int, event) -> bool:
        """Whether the spool's disk can take this film and its results, with
        ``NodeConfig.min_free_bytes`` to spare. A film accepted is one the node must finish
        (PS3.4 B.2.2), so one that would not fit is refused before, with 0xA700."""
        need = size + self.config.min_free_bytes
        for kind in self.config.outputs:
            need += RESULT_ROOM.get(kind) or self._drawn_size(event, size)
        free = shutil.disk_usage(self.spool.root).free
        if free >= need:
            return True
        self._full(f"the spool's disk has {free / 2**20:.1f} MB free, not enough for instance {uid} and its results "
                   f"with {self.config.min_free_bytes / 2**20:.0f} MB to spare ({need / 2**20:.1f} MB)")
        return False

    @staticmethod
    def _drawn_size(event, size: int) -> int:
        """Room for a Secondary Capture of the film: RGB, 8 bits a sample."""
        try:
            ds = event.dataset
            return int(ds.Rows) * int(ds.Columns) * 3 + 64 * 1024
        except Exception:  # noqa: BLE001 - an undecodable header: the reader will say why
            return 4 * size

    def _full(self, why: str) -> None:
        """Say once that new films are refused for want of room, not once a film."""
        with self._disk_lock:
            first, self.disk_full = not self.disk_full, True
        if first:
            logger.error("%s; refusing new films (C-STORE status 0xA700, out of resources) until there is room. "
                         "Films already taken are kept and finished.", why)
        else:
            logger.debug("%s; refused (0xA700)", why)

    def _room_again(self) -> None:
        with self._disk_lock:
            was, self.disk_full = self.disk_full, False
        if was:
            logger.warning("the spool has room again; taking new films")

    @staticmethod
    def _grayscale(event) -> bool:
        try:
            photometric = str(event.dataset.get("PhotometricInterpretation", "")).strip()
        except Exception:  # noqa: BLE001 - an undecodable header: the reader will say why
            return True
        return photometric in ("MONOCHROME1", "MONOCHROME2", "")


def tls_context(tls: Tls) -> ssl.SSLContext:
    """The listening port's TLS (PS3.15 B.1, Basic TLS Secure Transport): the node's certificate
    and key, and with ``tls.ca`` callers must show a certificate that CA signed."""
    try:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(tls.ca) if tls.ca else None)
        ctx.load_cert_chain(str(tls.cert), str(tls.key))
    except (OSError, ssl.SSLError) as exc:
        raise NodeConfigError(f"Cannot set up TLS with {tls.cert} and {tls.key}: {exc}. Check the certificate and key files.") from None
    if tls.ca:
        ctx.verify_mode = ssl.CERT_REQUIRED  # callers must show a certificate the CA signed
    return ctx


def _address_allowed(address: str, allowed: tuple[str, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for entry in allowed:
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def _class_name(uid: str) -> str:
    try:
        name = UID(uid).name
    except Exception:  # noqa: BLE001
        name = uid
    return name or uid
