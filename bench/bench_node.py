"""The DICOM node's throughput and latency, next to `cxrviewer score` on the same films.

200 distinct films (the real chest DICOMs of ../shared/data/dicom, copied with new UIDs: JPEG
baseline CR, DX, JPEG 2000 CR in turn) are pushed to an in-process node (the demo model, default
workers and outputs) over 4 concurrent associations from 4 sender processes; the node sends its
results to a real Orthanc on loopback ports. Measured from the node's job table:

- latency: a film's C-STORE reaching the spool → its last result stored in Orthanc (median, p95);
- films/s: films / (last result stored − first film received);
- `cxrviewer score` on the same films: :func:`cxrviewer.batch.score_to_csv` (the code behind the
  command, same model file, same workers), films/s; the ratio node / score (target ≥ 0.8);
- `cxrviewer score --dicom-out` making the same result objects on the same films: films/s and
  CPU per film, and the node's ratio to it (the node's own cost: receiving, spool, job table,
  sending);
- CPU seconds per film of each: the node's process and its result-building processes, against
  score_to_csv's. Senders and Orthanc share the 2 cores with the node here (on a site they are
  other machines), so the CPU ratio tells what the node would sustain on cores of its own;
- that CPU by stage (:mod:`cxrviewer.node.timing`: read, infer, receive, send, job table in the
  node's process; SR, Presentation State, SC in the result builders), per film.

    python bench/bench_node.py [--films 200] [--associations 4] [--outputs sr,gsps]
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import sqlite3
import statistics
import sys
import tempfile
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


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--films", type=int, default=200)
    ap.add_argument("--associations", type=int, default=4)
    ap.add_argument("--outputs", default="sr,gsps")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from orthancserver import Orthanc, free_port

    from cxrviewer.batch import ExportPlan, default_workers, score_to_csv, session_threads
    from cxrviewer.model import Classifier
    from cxrviewer.node import NodeConfig, parse_outputs
    from cxrviewer.node.service import Node
    from cxrviewer.node.config import DicomDestination

    print(machine())
    with tempfile.TemporaryDirectory(prefix="bench-node-") as tmp:
        tmp = Path(tmp)
        (tmp / "films").mkdir()
        films = make_films(tmp / "films", args.films)
        workers = default_workers()
        clf = Classifier.load(demo_model(), device="cpu", threads=session_threads(workers, "cpu"))

        # `cxrviewer score` on the same films
        t0, c0 = time.perf_counter(), time.process_time()
        summary = score_to_csv(films, clf, tmp / "score.csv", workers=workers, overwrite=True)
        score_rate = len(films) / (time.perf_counter() - t0)
        score_cpu = (time.process_time() - c0) / len(films)
        assert summary.scored == len(films), summary.line()
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
            config = NodeConfig(host="127.0.0.1", port=node_port, spool=tmp / "spool", outputs=outputs,
                                destinations=(DicomDestination(pacs.aet, "127.0.0.1", pacs.dicom_port),), workers=workers)
            node = Node(config, clf, workers=workers)
            c0 = time.process_time()
            node.start()
            try:
                shares = [[str(f) for f in films[i :: args.associations]] for i in range(args.associations)]
                with ProcessPoolExecutor(args.associations) as pool:
                    sent = sum(pool.map(send, shares, [node_port] * len(shares)))
                senders_done = _children_cpu()  # the sender processes have exited and been waited for
                assert sent == len(films), f"{sent} of {len(films)} films acknowledged"
                assert node.wait_idle(1800), "the node did not finish"
            finally:
                node.stop()  # waits for the result-building processes
            process_cpu = time.process_time() - c0
            builders_cpu = _children_cpu() - senders_done  # the builders, waited for by node.stop()
            node_cpu = (process_cpu + builders_cpu) / len(films)
            stages = node.cpu.seconds()
            db = sqlite3.connect(tmp / "spool" / "jobs.sqlite")
            rows = db.execute(
                "SELECT j.received, MAX(d.delivered) FROM jobs j JOIN deliveries d ON d.uid = j.uid "
                "WHERE d.state = 'delivered' GROUP BY j.uid"
            ).fetchall()
            stored = len(pacs.instance_ids())
        finally:
            pacs.stop()
    assert len(rows) == len(films), f"{len(rows)} of {len(films)} films have their results stored"
    latencies = sorted(done - received for received, done in rows)
    span = max(done for _, done in rows) - min(received for received, _ in rows)
    node_rate = len(films) / span
    p95 = latencies[min(len(latencies) - 1, int(round(0.95 * (len(latencies) - 1))))]
    print(f"{len(films)} films over {args.associations} associations, outputs {args.outputs}, {workers} workers, demo model")
    print(f"results stored in Orthanc: {stored} objects")
    print(f"receive -> results stored: median {statistics.median(latencies):.2f} s, p95 {p95:.2f} s")
    print(f"node: {node_rate:.2f} films/s; cxrviewer score (score_to_csv): {score_rate:.2f} films/s; "
          f"node/score = {node_rate / score_rate:.2f} (target >= 0.8)")
    print(f"CPU per film: node {node_cpu:.3f} s (process + result builders), score {score_cpu:.3f} s; "
          f"score/node = {score_cpu / node_cpu:.2f} (the rate the node would keep on cores of its own)")
    print(f"cxrviewer score --dicom-out ({args.outputs}) on the same films: {dicom_rate:.2f} films/s, CPU per film "
          f"{dicom_cpu:.3f} s; node / score --dicom-out = {node_rate / dicom_rate:.2f} (films/s), "
          f"{dicom_cpu / node_cpu:.2f} (CPU): the node's own cost beyond making the same results")
    print_stages(stages, process_cpu, builders_cpu, len(films))
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def print_stages(stages: dict[str, float], process_cpu: float, builders_cpu: float, n: int) -> None:
    """The node's CPU per film by stage (cxrviewer.node.timing): each stage on its own thread's
    clock; what no stage covers is pynetdicom's PDU handling, the threads' switching and, in
    the builders, the films shipped to them. A builder's start-up (interpreter, imports, model)
    is paid once a process: per film it shrinks as a node runs longer."""
    in_process = {k: v for k, v in stages.items() if not k.startswith("builder")}
    in_builders = {k: v for k, v in stages.items() if k.startswith("builder")}
    print("CPU per film by stage (ms):")
    for name, group, total, rest in (("node process", in_process, process_cpu, "network, threads, other"),
                                     ("result builders", in_builders, builders_cpu, "unpickling, other")):
        print(f"  {name}: {1000 * total / n:.0f}")
        for stage, seconds in sorted(group.items(), key=lambda kv: -kv[1]):
            print(f"    {stage:40s} {1000 * seconds / n:7.1f}")
        print(f"    {rest:40s} {1000 * (total - sum(group.values())) / n:7.1f}")


if __name__ == "__main__":
    main()
