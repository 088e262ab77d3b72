"""The DICOM node's latency and CPU (its targets), and its throughput, next to `cxrviewer score`.

The targets (issue 27): (a) a single film sent to an idle node is stored in the PACS as SR +
Presentation State within 2 s: ``--singles`` (20) films sent one at a time by storescu to a node
that has nothing else to do, each timed from the start of the send to both of its result objects
being in Orthanc (its ``/statistics`` polled every 10 ms), the median; (b) the node's CPU a film
at most 1.4x that of `cxrviewer score --dicom-out` making the same result objects (below). The
burst's films/s on the shared 2 cores is reported, not targeted.

200 distinct films (the real chest DICOMs of ../shared/data/dicom, copied with new UIDs: JPEG
baseline CR, DX, JPEG 2000 CR in turn) are pushed to an in-process node (the demo model, default
workers and outputs) over 4 concurrent associations from 4 sending modalities: dcmtk's storescu
(the project's sending modality, one process and one association each, every film in its own
transfer syntax) or, with ``--sender pynetdicom``, 4 pynetdicom processes. The node sends its
results to a real Orthanc on loopback ports. Measured from the node's job table:

- latency: a film's C-STORE reaching the spool → its last result stored in Orthanc (median, p95);
- films/s: films / (last result stored − first film received);
- `cxrviewer score` on the same films: :func:`cxrviewer.batch.score_to_csv` (the code behind the
  command, same model file, same workers), films/s, run before and after the node (the mean of
  the two: the shared machine drifts by 10 % from minute to minute); the ratio node / score
  (target ≥ 0.8);
- `cxrviewer score --dicom-out` making the same result objects on the same films: films/s and
  CPU per film, and the node's ratio to it (the node's own cost: receiving, spool, job table,
  sending);
- CPU seconds per film of each: the node's process and its result-building processes, against
  score_to_csv's. Senders and Orthanc share the 2 cores with the node here (on a site they are
  other machines), so the CPU ratio tells what the node would sustain on cores of its own;
- that CPU by stage (:mod:`cxrviewer.node.timing`: read, infer, receive, send, job table in the
  node's process, or in its scoring processes), per film;
- the SCP's responsiveness while the burst is received and scored: dcmtk's echoscu (a new
  association, one C-ECHO, release) once a second from another process, its round trip (median,
  p95, max) against the same on the idle node; and how long the senders took to push the films
  (their C-STOREs time out after 30 s, as pynetdicom's do).

    python bench/bench_node.py [--films 200] [--singles 20] [--associations 4] [--outputs sr,gsps]
                               [--sender storescu|pynetdicom] [--scoring threads|processes]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from common import REPO, SHARED, demo_model, machine

sys.path.insert(0, str(REPO / "tests"))

CHEST = ("torchxrayvision_siim_cr_chest.dcm", "nccid_nih_cxr14_gcp_dx.dcm", "pydicom-data_RG3_J2KR.dcm")


def make_films(folder: Path, n: int) -> list[Path]:
    import pydicom
    from pydicom.uid import generate_uid

    sources = [pydicom.dcmread(SHARED / "dicom" / name) for name in CHEST]
    out = []
    for i in range(n):
        ds = sources[i % len(sources)]
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid(), generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        path = folder / f"film{i:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        out.append(path)
    return out


def send(files: list[str], port: int) -> int:
    """One modality: one association, C-STORE every file in its own transfer syntax."""
    import pydicom
    from pynetdicom import AE

    ae = AE(ae_title="BENCH")
    for cx in {(str(pydicom.dcmread(f, stop_before_pixels=True).SOPClassUID),
                str(pydicom.dcmread(f, stop_before_pixels=True).file_meta.TransferSyntaxUID)) for f in files}:
        ae.add_requested_context(*cx)
    assoc = ae.associate("127.0.0.1", port, ae_title="CXRVIEWER")
    ok = 0
    for f in files:
        status = assoc.send_c_store(f)
        ok += bool(status) and status.Status == 0
    assoc.release()
    return ok


def storescu_profile(files: list[Path], path: Path) -> Path:
    """A storescu configuration (dcmtk's ``-xf FILE PROFILE``) proposing each (SOP class, transfer
    syntax) pair of ``files``, so one association sends films in different syntaxes as they are
    (by default storescu proposes uncompressed syntaxes only and cannot send a JPEG film)."""
    import pydicom

    pairs = sorted({(str(d.SOPClassUID), str(d.file_meta.TransferSyntaxUID))
                    for d in (pydicom.dcmread(f, stop_before_pixels=True) for f in files)})
    syntaxes = sorted({ts for _, ts in pairs})
    lines = ["[[TransferSyntaxes]]"]
    for i, ts in enumerate(syntaxes):
        lines += [f"[TS{i}]", f"TransferSyntax1 = {ts}"]
    lines += ["[[PresentationContexts]]", "[Films]"]
    lines += [f"PresentationContext{j} = {sop}\\TS{syntaxes.index(ts)}" for j, (sop, ts) in enumerate(pairs, 1)]
    lines += ["[[Profiles]]", "[Films]", "PresentationContexts = Films"]
    path.write_text("\n".join(lines) + "\n")
    return path


#: storescu's and echoscu's timeouts (connection, association, DIMSE), as pynetdicom's 30 s
_DCMTK_TIMEOUTS = ("-to", "30", "-ta", "30", "-td", "30")


def send_storescu(shares: list[list[str]], port: int, profile: Path) -> int:
    """One storescu process per share, side by side; returns the films acknowledged (storescu
    exits non-zero when a C-STORE fails or times out)."""
    from orthancserver import dcmtk

    procs = [subprocess.Popen([dcmtk("storescu"), *_DCMTK_TIMEOUTS, "-xf", str(profile), "Films", "-aet", "BENCH",
                               "-aec", "CXRVIEWER", "127.0.0.1", str(port), *files],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for files in shares]
    ok = 0
    for files, proc in zip(shares, procs):
        _, err = proc.communicate()
        if proc.returncode == 0:
            ok += len(files)
        else:
            print(f"storescu failed ({proc.returncode}): {err.strip()[-400:]}")
    return ok


def send_pynetdicom(shares: list[list[str]], port: int) -> int:
    with ProcessPoolExecutor(len(shares)) as pool:
        return sum(pool.map(send, shares, [port] * len(shares)))


class EchoProbe:
    """dcmtk's echoscu against the node once a second, from another process: the round trip
    (association, C-ECHO, release) says how soon the SCP's threads get the interpreter."""

    def __init__(self, port: int) -> None:
        from orthancserver import dcmtk

        self.command = [dcmtk("echoscu"), *_DCMTK_TIMEOUTS, "-aet", "BENCH", "-aec", "CXRVIEWER", "127.0.0.1", str(port)]
        self.times: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def once(self) -> float:
        t0 = time.perf_counter()
        ok = subprocess.run(self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False).returncode == 0
        if not ok:
            self.failures += 1
        return time.perf_counter() - t0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.times.append(self.once())
            self._stop.wait(1.0)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def single_film_latency(node_config, clf, workers: int, pacs, films: list[Path], n: int, outputs: int,
                         profile: Path) -> list[float]:
    """Seconds from sending one film to an idle node to its ``outputs`` result objects stored in
    ``pacs``, for ``n`` films one at a time (after one film not counted: the node's first film
    warms its caches). A node of its own (its own spool), started and stopped here, so the
    burst's CPU accounting is not mixed with this."""
    from orthancserver import dcmtk

    from cxrviewer.node.service import Node

    node = Node(node_config, clf, workers=workers)
    node.start()
    times = []
    try:
        for i in range(n + 1):
            film = films[i % len(films)]
            before = pacs.get_json("/statistics")["CountInstances"]
            t0 = time.perf_counter()
            subprocess.run([dcmtk("storescu"), *_DCMTK_TIMEOUTS, "-xf", str(profile), "Films", "-aet", "BENCH",
                            "-aec", "CXRVIEWER", "127.0.0.1", str(node_config.port), str(film)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            while pacs.get_json("/statistics")["CountInstances"] < before + outputs:
                if time.perf_counter() - t0 > 120:
                    raise SystemExit(f"single film {i}: its results were not stored in 120 s")
                time.sleep(0.01)
            if i:  # the first one warms the node up
                times.append(time.perf_counter() - t0)
            assert node.wait_idle(60)
    finally:
        node.stop()
    return times


def _summary(values: list[float]) -> str:
    v = sorted(values)
    p95 = v[min(len(v) - 1, round(0.95 * (len(v) - 1)))]
    return f"median {1000 * statistics.median(v):.0f} ms, p95 {1000 * p95:.0f} ms, max {1000 * v[-1]:.0f} ms ({len(v)} echoes)"


def _process_cpu(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--films", type=int, default=200)
    ap.add_argument("--singles", type=int, default=20, help="films sent one at a time to an idle node (latency)")
    ap.add_argument("--associations", type=int, default=4)
    ap.add_argument("--outputs", default="sr,gsps")
    ap.add_argument("--sender", choices=("storescu", "pynetdicom"), default="storescu",
                    help="the sending modalities: dcmtk's storescu processes (default) or pynetdicom processes")
    ap.add_argument("--scoring", choices=("threads", "processes"), default=None,
                    help="the node's scoring workers: threads or processes (default: the node's default)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from orthancserver import Orthanc, free_port

    from cxrviewer.batch import ExportPlan, default_workers, score_to_csv, session_threads
    from cxrviewer.model import Classifier
    from cxrviewer.node import NodeConfig, parse_outputs
    from cxrviewer.node.service import Node
    from cxrviewer.dimse import DicomDestination

    print(machine())
    with tempfile.TemporaryDirectory(prefix="bench-node-") as tmp:
        tmp = Path(tmp)
        (tmp / "films").mkdir()
        films = make_films(tmp / "films", args.films)
        workers = default_workers()
        clf = Classifier.load(demo_model(), device="cpu", threads=session_threads(workers, "cpu"))

        def plain_score() -> tuple[float, float]:
            """`cxrviewer score` on the same films: films/s and CPU seconds a film."""
            t0, c0 = time.perf_counter(), time.process_time()
            summary = score_to_csv(films, clf, tmp / "score.csv", workers=workers, overwrite=True)
            assert summary.scored == len(films), summary.line()
            return len(films) / (time.perf_counter() - t0), (time.process_time() - c0) / len(films)

        # measured before and after the node: the shared machine drifts, the mean brackets the node's run
        score_runs = [plain_score()]
        outputs = parse_outputs(args.outputs)
        # ... and `cxrviewer score --dicom-out` making the same result objects: what the node
        # adds to it is its own cost (receiving, spool, job table, sending)
        t0, c0 = time.perf_counter(), time.process_time()
        summary = score_to_csv(films, clf, tmp / "score-dicom.csv", workers=workers, overwrite=True,
                               exports=ExportPlan(dicom=tmp / "dicom-out", dicom_formats=outputs))
        dicom_rate = len(films) / (time.perf_counter() - t0)
        dicom_cpu = (time.process_time() - c0) / len(films)
        assert summary.scored == len(films), summary.line()

        node_port = free_port()
        pacs = Orthanc(tmp / "orthanc", free_port(), free_port())
        pacs.start({"cxrviewer": ("CXRVIEWER", node_port)})
        try:
            scoring = {} if args.scoring is None else {"scoring": args.scoring}
            config = NodeConfig(host="127.0.0.1", port=node_port, spool=tmp / "spool", outputs=outputs,
                                destinations=(DicomDestination(pacs.aet, "127.0.0.1", pacs.dicom_port),), workers=workers,
                                **scoring)
            profile = storescu_profile(films, tmp / "storescu.cfg")
            singles: list[float] = []
            if args.singles:
                # new UIDs: a film the PACS has results of already would replace them, not add
                (tmp / "singles").mkdir()
                single_films = make_films(tmp / "singles", args.singles + 1)
                singles = single_film_latency(dataclasses.replace(config, spool=tmp / "spool-singles"), clf, workers,
                                              pacs, single_films, args.singles, len(outputs), profile)
            node = Node(config, clf, workers=workers)
            pacs_cpu0 = _process_cpu(pacs.process.pid)
            c0 = time.process_time()
            node.start()
            try:
                probe = EchoProbe(node_port)
                idle_echo = [probe.once() for _ in range(5)]
                shares = [[str(f) for f in films[i :: args.associations]] for i in range(args.associations)]
                probe.start()
                before_senders = _children_cpu()  # the echoes so far
                t_send = time.perf_counter()
                if args.sender == "storescu":
                    sent = send_storescu(shares, node_port, profile)
                else:
                    sent = send_pynetdicom(shares, node_port)
                send_seconds = time.perf_counter() - t_send
                senders_cpu = _children_cpu() - before_senders  # the senders (and echoes) have exited and been waited for
                assert sent == len(films), f"{sent} of {len(films)} films acknowledged"
                assert node.wait_idle(1800), "the node did not finish"
                probe.stop()
                senders_done = _children_cpu()
                pacs_cpu = (_process_cpu(pacs.process.pid) - pacs_cpu0) / len(films)
            finally:
                node.stop()  # waits for the result-building processes
            process_cpu = time.process_time() - c0
            workers_cpu = _children_cpu() - senders_done  # the scoring processes, waited for by node.stop()
            node_cpu = (process_cpu + workers_cpu) / len(films)
            stages = node.cpu.seconds()
            rounds = node.sender.rounds
            db = sqlite3.connect(tmp / "spool" / "jobs.sqlite")
            rows = db.execute(
                "SELECT j.received, MAX(d.delivered) FROM jobs j JOIN deliveries d ON d.uid = j.uid "
                "WHERE d.state = 'delivered' GROUP BY j.uid"
            ).fetchall()
            (last_scored,) = db.execute("SELECT MAX(scored) FROM jobs").fetchone()
            stored = len(pacs.instance_ids()) - len(outputs) * (args.singles + 1 if args.singles else 0)
        finally:
            pacs.stop()
        score_runs.append(plain_score())
    score_rate = statistics.mean(rate for rate, _ in score_runs)
    score_cpu = statistics.mean(cpu for _, cpu in score_runs)
    assert len(rows) == len(films), f"{len(rows)} of {len(films)} films have their results stored"
    latencies = sorted(done - received for received, done in rows)
    span = max(done for _, done in rows) - min(received for received, _ in rows)
    node_rate = len(films) / span
    p95 = latencies[min(len(latencies) - 1, int(round(0.95 * (len(latencies) - 1))))]
    if singles:
        median = statistics.median(singles)
        print(f"single film to an idle node -> SR + GSPS stored in the PACS: median {median:.2f} s "
              f"(min {min(singles):.2f}, max {max(singles):.2f}, {len(singles)} films one at a time; "
              f"target <= 2 s: {'met' if median <= 2.0 else 'NOT met'})")
    ratio = node_cpu / dicom_cpu
    print(f"node CPU a film {node_cpu:.3f} s vs cxrviewer score --dicom-out ({args.outputs}) {dicom_cpu:.3f} s: "
          f"{ratio:.2f}x (target <= 1.4x: {'met' if ratio <= 1.4 else 'NOT met'})")
    print(f"{len(films)} films over {args.associations} associations, outputs {args.outputs}, {workers} workers, demo model; "
          f"sender {args.sender}, scoring {config.scoring}")
    print(f"senders: all {sent} films acknowledged in {send_seconds:.1f} s ({senders_cpu:.1f} s CPU, with the echoes meanwhile)")
    print(f"C-ECHO round trip (echoscu): idle {_summary(idle_echo)}; during the burst {_summary(probe.times)}, "
          f"{probe.failures} failed")
    print(f"results stored in Orthanc: {stored} objects in {rounds} sending rounds; Orthanc's CPU per film {pacs_cpu:.3f} s (same cores)")
    print(f"receive -> results stored: median {statistics.median(latencies):.2f} s, p95 {p95:.2f} s; "
          f"the last results stored {max(done for _, done in rows) - last_scored:.1f} s after the last film was scored")
    print(f"node: {node_rate:.2f} films/s; cxrviewer score (score_to_csv): {score_rate:.2f} films/s "
          f"(before the node {score_runs[0][0]:.2f}, after {score_runs[1][0]:.2f}); "
          f"node/score = {node_rate / score_rate:.2f} (target >= 0.8)")
    startup = stages.get("worker: start-up (once a process)", 0.0) / len(films)
    if startup:
        print(f"the scoring processes' start-up (interpreter, imports, model; once a process): {startup:.3f} s a film "
              f"of these {len(films)}; without it the node's CPU per film is {node_cpu - startup:.3f} s, "
              f"score/node = {score_cpu / (node_cpu - startup):.2f}")
    print(f"CPU per film: node {node_cpu:.3f} s (process + scoring processes), score {score_cpu:.3f} s "
          f"(before {score_runs[0][1]:.3f}, after {score_runs[1][1]:.3f}); "
          f"score/node = {score_cpu / node_cpu:.2f} (the rate the node would keep on cores of its own)")
    print(f"cxrviewer score --dicom-out ({args.outputs}) on the same films: {dicom_rate:.2f} films/s, CPU per film "
          f"{dicom_cpu:.3f} s; node / score --dicom-out = {node_rate / dicom_rate:.2f} (films/s), "
          f"{dicom_cpu / node_cpu:.2f} (CPU): the node's own cost beyond making the same results")
    print_stages(stages, process_cpu, workers_cpu, len(films), config.scoring)
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def print_stages(stages: dict[str, float], process_cpu: float, workers_cpu: float, n: int, scoring: str) -> None:
    """The node's CPU per film by stage (cxrviewer.node.timing): each stage on its own thread's
    clock; what no stage covers is pynetdicom's PDU handling and the threads' switching in the
    node's process and, in scoring processes, the films' hand-over. A scoring process's start-up
    (interpreter, imports, model) is paid once a process: per film it shrinks as a node runs
    longer. With scoring threads, everything is in the node's process."""
    in_process = {k: v for k, v in stages.items() if not k.startswith("worker: ")}
    in_workers = {k: v for k, v in stages.items() if k.startswith("worker: ")}
    print("CPU per film by stage (ms):")
    groups = [("node process", in_process, process_cpu, "network, threads, other")]
    if scoring == "processes":
        groups.append(("scoring processes", in_workers, workers_cpu, "hand-over, other"))
    for name, group, total, rest in groups:
        print(f"  {name}: {1000 * total / n:.0f}")
        for stage, seconds in sorted(group.items(), key=lambda kv: -kv[1]):
            print(f"    {stage:40s} {1000 * seconds / n:7.1f}")
        print(f"    {rest:40s} {1000 * (total - sum(group.values())) / n:7.1f}")


if __name__ == "__main__":
    main()
