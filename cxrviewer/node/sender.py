"""Sending results back: C-STORE (pynetdicom) to a DICOM AE, STOW-RS (dicomweb-client) to DICOMweb.

The sender works through the deliveries that are due, in rounds: a destination's due deliveries
are shared among up to ``NodeConfig.send_associations`` associations (or HTTP requests) at once,
at most ``ROUND`` deliveries each. A PACS stores C-STOREs one after the other on an association
(Orthanc here: ~50 ms an object, mostly waiting on its own storage, not on the node), so one
association a round let the results fall ever further behind a burst being scored
(bench/bench_node.py). A delivery that fails waits ``retry_delay`` seconds, doubled after
each failure (at most ``max_retry_delay``), and is parked after ``max_attempts``; ``cxrviewer
listen --status`` lists parked deliveries with their last error.

While films are still being scored, a round with fewer than ``GATHER`` deliveries for each of
its associations waits up to ``LINGER`` seconds for more to become due before it starts
(:meth:`Sender.gather`); one with that many goes at once, so a PACS that stores slower than the
node scores never waits on the linger too. Each association costs both sides its
set-up and release, and the node's two threads per association poll while it is open: woken
for every film scored, a burst of 200 films took ~0.6 associations a film, at ~5 ms of the
node's CPU each (bench/bench_node.py). A node with nothing else to do sends at once, so a single
film's results never wait.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .config import DicomDestination, NodeConfig, WebDestination, parse_destination
from .spool import Delivery, Spool
from .timing import CpuTally

logger = logging.getLogger(__name__)

#: deliveries sent per association (or STOW-RS request) before the next round
ROUND = 32
#: seconds a round waits for more results while films are still being scored (see above)
LINGER = 1.0
#: deliveries per association that make a round worth starting without lingering
GATHER = 8
#: how often a lingering round looks whether the node has gone quiet
_GATHER_TICK = 0.05
# C-STORE statuses that mean stored: success and the warnings (PS3.4 table B.2-1)
_STORED = {0x0000, 0xB000, 0xB006, 0xB007}


def _file_meta(path: Path) -> tuple[str, str]:
    from pydicom.filereader import read_file_meta_info

    meta = read_file_meta_info(path)
    return str(meta.MediaStorageSOPClassUID), str(meta.TransferSyntaxUID)


def send_dicom(calling_ae: str, dest: DicomDestination, files: Sequence[Path], timeout: float = 30) -> dict[Path, str | None]:
    """C-STORE ``files`` to ``dest`` on one association; for each file, None when stored, else why not."""
    from pynetdicom import AE

    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    contexts = sorted({_file_meta(p) for p in files})
    for sop_class, syntax in contexts[:128]:  # PS3.8 9.3.2.2: at most 128 presentation contexts
        # each file goes in its own transfer syntax: nothing is re-encoded on the way
        ae.add_requested_context(sop_class, syntax)
    assoc = ae.associate(dest.host, dest.port, ae_title=dest.ae_title)
    if not assoc.is_established:
        why = "rejected the association" if assoc.is_rejected else unreachable(dest, timeout) or "aborted the association"
        return {p: f"{dest} {why}" for p in files}
    out: dict[Path, str | None] = {}
    try:
        for p in files:
            try:
                status = assoc.send_c_store(p)
            except (ValueError, RuntimeError, OSError) as exc:
                out[p] = f"{dest}: {exc}"
                continue
            if not status or "Status" not in status:
                out[p] = f"{dest} did not answer (the association timed out or was aborted)"
                if not assoc.is_established:
                    break
            elif status.Status in _STORED:
                out[p] = None
            else:
                out[p] = f"{dest} refused it with status 0x{status.Status:04X}"
    finally:
        if assoc.is_established:
            assoc.release()
    for p in files:
        out.setdefault(p, f"{dest}: the association ended before it was sent")
    return out


def unreachable(dest: DicomDestination, timeout: float) -> str | None:
    """Why ``dest`` cannot be reached over TCP, or None when it can (pynetdicom reports both as an abort)."""
    try:
        socket.create_connection((dest.host, dest.port), timeout=min(timeout, 5)).close()
    except OSError as exc:
        return f"could not be reached ({exc.strerror or type(exc).__name__})"
    return None


def send_web(dest: WebDestination, files: Sequence[Path], timeout: float = 60) -> dict[Path, str | None]:
    """STOW-RS ``files`` to the DICOMweb service ``dest`` in one request (PS3.18 10.5)."""
    import pydicom
    import requests
    from dicomweb_client.api import DICOMwebClient

    client = DICOMwebClient(url=dest.url)
    datasets = [pydicom.dcmread(p) for p in files]
    try:
        response = client.store_instances(datasets)
    except (requests.RequestException, OSError, ValueError) as exc:
        return {p: f"{dest}: {type(exc).__name__}: {str(exc)[:200]}" for p in files}
    failed = {
        str(item.ReferencedSOPInstanceUID): int(getattr(item, "FailureReason", 0x0110))
        for item in getattr(response, "FailedSOPSequence", []) or []
    }
    return {
        p: (f"{dest} refused it (failure reason 0x{failed[ds.SOPInstanceUID]:04X})" if ds.SOPInstanceUID in failed else None)
        for p, ds in zip(files, datasets)
    }


class Sender:
    """Delivers due results; :meth:`run` loops until ``stop`` is set, woken by ``wake``."""

    def __init__(self, spool: Spool, config: NodeConfig, wake: threading.Event, cpu: CpuTally | None = None,
                 busy: Callable[[], bool] | None = None, linger: float = LINGER) -> None:
        self.spool = spool
        self.config = config
        self.wake = wake
        self.cpu = cpu or CpuTally()
        #: True while films are waiting to be scored or being scored (None: never lingers)
        self.busy = busy
        self.linger = linger
        #: rounds started (one or more associations or requests each), for tests and benchmarks
        self.rounds = 0

    def gather(self, stop: threading.Event) -> None:
        """Wait, at most ``linger`` seconds, for more deliveries to become due while the node is
        busy scoring: until ``GATHER`` are due for every association of a round, the node goes
        quiet (its last film scored), or ``stop`` is set."""
        if self.busy is None or self.linger <= 0:
            return
        deadline = time.monotonic() + self.linger
        full = GATHER * max(1, self.config.send_associations)
        while not stop.is_set() and self.busy():
            left = deadline - time.monotonic()
            if left <= 0 or self.spool.due_count() >= full:
                return
            self.wake.wait(min(_GATHER_TICK, left))
            self.wake.clear()

    def send_due(self) -> int:
        """One round over the due deliveries; returns how many were delivered."""
        by_dest: dict[str, list[Delivery]] = defaultdict(list)
        for d in self.spool.due():
            by_dest[d.destination].append(d)
        if by_dest:
            self.rounds += 1
        parallel = max(1, self.config.send_associations)
        parts: list[tuple[str, list[Delivery]]] = []
        for text, deliveries in by_dest.items():
            size = min(ROUND, -(-len(deliveries) // parallel))  # shared evenly, at most ROUND a part
            parts += [(text, deliveries[i : i + size]) for i in range(0, len(deliveries), size)]
        if len(parts) <= 1:
            return sum(self._send(text, part) for text, part in parts)
        # the spool and the CPU tally are shared safely by these threads; a destination gets at
        # most `parallel` associations at once, as the pool has that many threads
        with ThreadPoolExecutor(parallel, thread_name_prefix="cxr-node-send") as pool:
            return sum(pool.map(lambda tp: self._send(*tp), parts))

    def _send(self, text: str, deliveries: list[Delivery]) -> int:
        dest = parse_destination(text)
        files = [f for d in deliveries for f in d.files]
        missing = [f for f in files if not f.is_file()]
        outcome: dict[Path, str | None] = {f: f"result file {f.name} is missing from the spool" for f in missing}
        present = [f for f in files if f not in outcome]
        if present:
            try:
                with self.cpu.thread_cpu("send"):
                    if isinstance(dest, DicomDestination):
                        outcome.update(send_dicom(self.config.ae_title, dest, present))
                    else:
                        outcome.update(send_web(dest, present))
            except Exception as exc:  # noqa: BLE001 - a bug or a library surprise: retry later, keep the node up
                logger.exception("sending to %s failed", dest)
                outcome.update({f: f"{dest}: unexpected {type(exc).__name__}" for f in present})
        cfg = self.config
        stored = [d for d in deliveries if not any(outcome.get(f) for f in d.files)]
        with self.cpu.thread_cpu("job table"):
            self.spool.delivered_many([d.uid for d in stored], text)  # the round's successes: one commit
        for d in stored:
            logger.info("results of %s stored at %s", d.uid, dest)
        for d in deliveries:
            errors = [outcome[f] for f in d.files if outcome.get(f)]
            if errors:
                parked = self.spool.delivery_failed(d.uid, text, errors[0], cfg.max_attempts, cfg.retry_delay, cfg.max_retry_delay)
                log = logger.error if parked else logger.warning
                log("results of %s not stored at %s (attempt %d%s): %s", d.uid, dest, d.attempts + 1,
                    "; parked" if parked else "; will retry", errors[0])
        return len(stored)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.wake.clear()
            try:
                self.gather(stop)
                self.send_due()
            except Exception:  # noqa: BLE001 - keep sending whatever happened to one round
                logger.exception("a sending round failed")
            nxt = self.spool.next_try()
            wait = 1.0 if nxt is None else max(0.05, min(1.0, nxt - time.time()))
            self.wake.wait(wait)
