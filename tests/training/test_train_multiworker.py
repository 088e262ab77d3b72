"""`cxr-train fit --strategy multiworker`: two real worker processes on loopback ports (TF_CONFIG),
tiny input, one step, and the model the chief exports loads in cxrviewer."""

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

#: Keras 3.15's `Model.fit` under MultiWorkerMirroredStrategy: `_maybe_symbolic_build` calls
#: `strategy.reduce("MEAN", <the first batch>)` eagerly, which the collective strategy cannot do
#: with a batch of PerReplica values ("Attempt to convert a value (PerReplica...) to a Tensor"),
#: so `fit` stops before its first step. Seen with TensorFlow 2.21 / Keras 3.15 (2026-11-23).
#: Getting past it (building the model from a local batch) only meets the next one: every train
#: step's logs are reduced with `reduce_per_replica(..., "auto")`, which under the collective
#: strategy is `strategy.reduce("MEAN", v, axis=0)` on the scalar loss ("Invalid reduction
#: dimension 0 for input with 0 dimensions"). Keras 3.15's `fit` cannot train under
#: MultiWorkerMirroredStrategy at all; the test turns green by itself when Keras fixes both.
KERAS_MWMS_BUG = "with an unsupported type (<class 'tensorflow.python.distribute.values.PerReplica'>) to a Tensor"


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
        deadline = time.monotonic() + 300
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
    if any(p.returncode for p in procs) and KERAS_MWMS_BUG in both:
        pytest.xfail("Keras 3.15 Model.fit cannot start under MultiWorkerMirroredStrategy (PerReplica in _maybe_symbolic_build)")
    assert [p.returncode for p in procs] == [0, 0], both[-3000:]
    from cxrviewer.model import Classifier

    clf = Classifier.load(tmp_path / "w0" / "model.onnx", device="cpu")  # the chief's export
    assert clf.info.model_version == "multiworker-32" and clf.info.input_size == 32
