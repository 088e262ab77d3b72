"""`cxr-train fit --strategy multiworker`: two real worker processes on loopback ports (TF_CONFIG),
tiny input, one step, and the model the chief exports loads in cxrviewer. Keras 3.15's `fit` runs
under MultiWorkerMirroredStrategy only with training/compat.py's workarounds."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.training, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def test_two_workers_train_one_step_and_the_chief_exports_a_model_that_loads(nih, tmp_path):
    pytest.importorskip("tensorflow")
    pytest.importorskip("tf2onnx")
    workers = [f"127.0.0.1:{p}" for p in free_ports(2)]
    procs = []
    for index in range(2):
        env = {
            **os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "",
            "TF_CONFIG": json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}),
        }
        cmd = [sys.executable, "-m", "training", "-q", "fit", "--labels-csv", str(nih / "labels.csv"),
               "--images", str(nih / "images"), "--out", str(tmp_path / f"w{index}"), "--input-size", "32",
               "--epochs", "1", "--batch-size", "4", "--steps-per-epoch", "1", "--val-frac", "0.2",
               "--test-frac", "0.1", "--seed", "1", "--demo", "--model-version", "multiworker-32",
               "--strategy", "multiworker", "--ood-sample", "8"]
        with open(tmp_path / f"w{index}.log", "w") as log:
            procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT))
    try:
        deadline = time.monotonic() + 600  # two TensorFlow workers on shared, loaded cores: ~200 s each at load 12
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            if any(p.poll() for p in procs):  # a worker failed: its peer would wait for it for minutes
                deadline = min(deadline, time.monotonic() + 10)
            time.sleep(0.5)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    both = "\n".join((tmp_path / f"w{i}.log").read_text() for i in range(2))
    # the strategy is made before any TensorFlow op (TF refuses collective ops configured later)
    assert "Collective ops must be configured at program startup" not in both, both[-3000:]
    # Keras 3.15 needs training/compat.py's two workarounds to get here; a Keras that changes
    # what they patch shows up as a failed worker whose log names the bug
    assert [p.returncode for p in procs] == [0, 0], both[-3000:]
    from cxrviewer.model import Classifier

    clf = Classifier.load(tmp_path / "w0" / "model.onnx", device="cpu")  # the chief's export
    assert clf.info.model_version == "multiworker-32" and clf.info.input_size == 32
