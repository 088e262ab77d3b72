"""The inference backends and the measured ``auto`` choice (cxrviewer.inference).

The decision of which engines to try is tested on made-up machines (AMX, AVX-512 BF16, neither,
no OpenVINO, CUDA); the measurement, the cache and the parity of OpenVINO with ONNX Runtime on
the real runtimes. Tests that need OpenVINO skip, saying so, only where the ``openvino`` extra is
not installed (CI installs it with ``dev``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from cxrviewer import contract
from cxrviewer.errors import ModelError
from cxrviewer.inference import Engine
from cxrviewer.inference.choice import CACHE_FILE, cache_dir, choose, int8_copy_path
from cxrviewer.inference.machine import Machine, candidates, this_machine
from cxrviewer.inference.runners import openvino_module
from cxrviewer.model import Classifier
from tinymodel import build_tiny_model, tiny_info

HAS_OPENVINO = openvino_module() is not None
needs_openvino = pytest.mark.skipif(not HAS_OPENVINO, reason="OpenVINO is not installed (pip install 'cxrviewer[openvino]')")

ORT_FP32 = Engine("onnxruntime", "cpu", "fp32")
OV_FP32 = Engine("openvino", "cpu", "fp32")
OV_BF16 = Engine("openvino", "cpu", "bf16")
OV_INT8 = Engine("openvino", "cpu", "int8")
ORT_INT8 = Engine("onnxruntime", "cpu", "int8")

SAPPHIRE_RAPIDS = Machine(cpu="Intel(R) Xeon(R) Platinum 8481C", cores=2, onnxruntime="1.32.0", openvino="2026.4.1",
                          flags=frozenset({"amx_tile", "amx_bf16", "amx_int8", "avx512_bf16", "avx512_vnni", "avx512f", "avx2"}),
                          openvino_caps=frozenset({"FP32", "BF16", "INT8"}))
SKYLAKE = Machine(cpu="Intel(R) Xeon(R) Gold 6148", cores=2, onnxruntime="1.32.0", openvino="2026.4.1",
                  flags=frozenset({"avx512f", "avx2"}), openvino_caps=frozenset({"FP32", "INT8"}))
# OpenVINO claiming BF16 on a CPU whose flags lack it (emulation): not offered
CLAIMS_BF16 = Machine(cpu="x", cores=2, onnxruntime="1.32.0", openvino="2026.4.1", flags=frozenset({"avx2"}),
                      openvino_caps=frozenset({"FP32", "BF16", "INT8"}))
NO_OPENVINO = Machine(cpu="AMD EPYC", cores=2, onnxruntime="1.32.0", flags=frozenset({"avx512_bf16", "avx2"}))


# ----------------------------------------------------------------------------- the decision
def test_an_amx_machine_tries_ort_and_openvino_at_fp32_and_bf16_most_exact_first():
    c = candidates(SAPPHIRE_RAPIDS)
    assert c.engines == (ORT_FP32, OV_FP32, OV_BF16)
    assert c.reference == ORT_FP32
    assert {name for name, _ in c.excluded} == {str(OV_INT8), str(ORT_INT8)}  # no int8 copy


@pytest.mark.parametrize("machine", [SKYLAKE, CLAIMS_BF16])
def test_bf16_is_left_out_where_the_cpu_lacks_it(machine):
    c = candidates(machine)
    assert OV_BF16 not in c.engines
    assert "no bf16 instructions" in dict(c.excluded)[str(OV_BF16)]
    with pytest.raises(ModelError, match="no bf16"):
        candidates(machine, precision="bf16")


def test_flags_unknown_trust_openvino():
    windows = Machine(cpu="x", cores=2, onnxruntime="1", openvino="2026.4.1", flags=None,
                      openvino_caps=frozenset({"BF16"}))
    assert OV_BF16 in candidates(windows).engines


def test_without_openvino_only_onnxruntime_runs_and_asking_for_it_says_how_to_install():
    assert candidates(NO_OPENVINO).engines == (ORT_FP32,)
    with pytest.raises(ModelError, match=r"cxrviewer\[openvino\]"):
        candidates(NO_OPENVINO, backend="openvino")


def test_a_forbidden_precision_is_never_a_candidate_and_asking_for_it_is_refused():
    c = candidates(SAPPHIRE_RAPIDS, int8_copy=True, forbidden=("bf16", "int8"))
    assert c.engines == (ORT_FP32, OV_FP32)
    with pytest.raises(ModelError, match="forbids bf16"):
        candidates(SAPPHIRE_RAPIDS, precision="bf16", forbidden=("bf16",))


def test_an_int8_copy_adds_int8_engines_and_an_int8_file_runs_only_as_int8():
    assert candidates(SAPPHIRE_RAPIDS, int8_copy=True).engines == (ORT_FP32, OV_FP32, OV_BF16, OV_INT8, ORT_INT8)
    c = candidates(SAPPHIRE_RAPIDS, file_precision="int8")
    assert c.engines == (OV_INT8, ORT_INT8) and c.reference == ORT_INT8
    with pytest.raises(ModelError, match="int8 copy"):
        candidates(SAPPHIRE_RAPIDS, file_precision="int8", precision="fp32")
    with pytest.raises(ModelError, match="no int8 copy"):
        candidates(SAPPHIRE_RAPIDS, precision="int8")


def test_cuda_is_taken_without_measuring_and_bf16_on_onnxruntime_is_refused():
    gpu = Machine(cpu="x", cores=8, onnxruntime="1.31.1", cuda=True, flags=frozenset())
    assert candidates(gpu).engines == (Engine("onnxruntime", "cuda", "fp32"),)
    assert candidates(gpu, device="cpu").engines == (ORT_FP32,)
    with pytest.raises(ModelError, match="bf16 runs on OpenVINO only"):
        candidates(SAPPHIRE_RAPIDS, backend="onnxruntime", precision="bf16")


def test_this_machine_reads_the_cpu():
    m = this_machine()
    assert m.cpu and m.cores >= 1 and m.onnxruntime
    assert (m.openvino is not None) == HAS_OPENVINO
    if os.path.exists("/proc/cpuinfo"):
        text = open("/proc/cpuinfo").read()
        assert m.flags is not None
        assert ("avx512_bf16" in m.flags) == (" avx512_bf16" in text)


# ----------------------------------------------------------------------------- the metadata key
def test_forbid_precisions_round_trips_and_bad_values_are_refused():
    info = tiny_info(64, forbid_precisions=("bf16",))
    meta = contract.to_metadata(info)
    assert json.loads(meta["cxr.forbid_precisions"]) == ["bf16"]
    assert contract.from_metadata(meta).forbid_precisions == ("bf16",)
    assert "cxr.forbid_precisions" not in contract.to_metadata(tiny_info(64))
    for bad in (["fp32"], "bf16", ["fp16"]):
        with pytest.raises(ModelError, match="forbid_precisions"):
            contract.from_metadata({**meta, "cxr.forbid_precisions": json.dumps(bad)})


# ----------------------------------------------------------------------------- the measured choice
@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("CXRVIEWER_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / CACHE_FILE


@pytest.fixture
def with_copy(tmp_path) -> Path:
    """A tiny fp32 model with an int8 copy beside it (the same graph, marked int8: it keeps parity
    exactly, so it gives ONNX Runtime a second engine to measure without OpenVINO)."""
    (tmp_path / "m").mkdir()
    path = build_tiny_model(tmp_path / "m" / "model.onnx", tiny_info(64))
    build_tiny_model(int8_copy_path(path), tiny_info(64, precision="int8"))
    return path


def test_auto_measures_once_then_reads_the_cache(with_copy, cache):
    first = choose(with_copy)
    assert first.how == "measured" and cache.is_file()
    names = {t.engine for t in first.trials}
    assert {str(ORT_FP32), str(ORT_INT8)} <= names
    assert all(t.passed and t.ms_per_film > 0 for t in first.trials if t.engine in (str(ORT_FP32), str(ORT_INT8)))
    again = choose(with_copy)
    assert again.how == "cached" and again.engine == first.engine and again.trials == first.trials
    clf = Classifier.load(with_copy, backend="auto", precision="auto")
    assert clf.engine == first.engine and clf.choice.how == "cached"


def test_a_corrupt_cache_is_measured_again_and_rewritten(with_copy, cache):
    cache.parent.mkdir(parents=True)
    for garbage in (b"{not json", b"\xff\xfe\x00", b'{"choices": []}', b"[1, 2]"):
        cache.write_bytes(garbage)
        assert choose(with_copy).how == "measured"
        assert json.loads(cache.read_text())["choices"]  # a valid file again
    entries = json.loads(cache.read_text())
    key = next(iter(entries["choices"]))
    entries["choices"][key]["engine"] = {"backend": "tensorflow"}
    cache.write_text(json.dumps(entries))
    assert choose(with_copy).how == "measured"


def test_a_changed_model_file_or_int8_copy_is_measured_again(with_copy, cache):
    assert choose(with_copy).how == "measured"
    assert choose(with_copy).how == "cached"
    build_tiny_model(with_copy, tiny_info(64), seed=1)  # other weights, same name
    assert choose(with_copy).how == "measured"
    assert choose(with_copy).how == "cached"
    build_tiny_model(int8_copy_path(with_copy), tiny_info(64, precision="int8"), seed=2)
    assert choose(with_copy).how == "measured"


def test_a_cache_that_cannot_be_written_costs_only_a_measurement(with_copy, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would be")
    monkeypatch.setenv("CXRVIEWER_CACHE_DIR", str(blocker / "sub"))
    assert cache_dir() == blocker / "sub"
    assert choose(with_copy).how == "measured"
    assert Classifier.load(with_copy, backend="auto", precision="auto").engine.backend in ("onnxruntime", "openvino")


def test_the_cache_folder_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("CXRVIEWER_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if os.name == "posix" and not os.uname().sysname == "Darwin":
        assert cache_dir() == tmp_path / "xdg" / "cxrviewer"


def test_a_model_that_forbids_int8_never_runs_its_int8_copy(tmp_path, cache):
    path = build_tiny_model(tmp_path / "model.onnx", tiny_info(64, forbid_precisions=("int8", "bf16")))
    build_tiny_model(int8_copy_path(path), tiny_info(64, precision="int8", forbid_precisions=("int8", "bf16")))
    choice = choose(path)
    assert choice.engine.precision == "fp32"
    assert all("int8" not in t.engine and "bf16" not in t.engine for t in choice.trials)
    assert "forbids int8" in dict(choice.excluded)[str(ORT_INT8)]
    with pytest.raises(ModelError, match="forbids int8"):
        Classifier.load(path, precision="int8")
    with pytest.raises(ModelError, match="forbids"):
        Classifier.load(path, engine=ORT_INT8)  # not even a worker given it runs it


def test_the_int8_copy_runs_when_asked_for_and_the_given_file_stays_the_model(with_copy):
    clf = Classifier.load(with_copy, precision="int8")
    assert clf.engine == ORT_INT8 and clf.weights_path == int8_copy_path(with_copy) and clf.path == with_copy
    assert clf.info.precision == "int8"
    legacy = Classifier.load(int8_copy_path(with_copy), device="cpu")  # an int8 file, as before
    assert legacy.engine == ORT_INT8
    with pytest.raises(ModelError, match="int8 copy"):
        Classifier.load(int8_copy_path(with_copy), precision="fp32")


def test_an_engine_given_must_fit_the_file(tiny_model, with_copy):
    with pytest.raises(ModelError, match="cannot run at int8"):
        Classifier.load(tiny_model, engine=ORT_INT8)  # no int8 copy: the fp32 file is not run as "int8"
    with pytest.raises(ModelError, match="cannot run at fp32"):
        Classifier.load(int8_copy_path(with_copy), engine=ORT_FP32)
    assert Classifier.load(with_copy, engine=ORT_INT8).weights_path == int8_copy_path(with_copy)


def test_fp32_onnxruntime_is_what_it_always_was(tiny_model, synthetic_film):
    from cxrviewer.preprocess import preprocess_batch

    clf = Classifier.load(tiny_model, device="cpu")
    assert clf.engine == ORT_FP32 and clf.provider == "CPUExecutionProvider" and clf.session is not None
    asked = Classifier.load(tiny_model, device="cpu", backend="onnxruntime", precision="fp32")
    x = preprocess_batch([synthetic_film], clf.info)
    assert np.array_equal(clf.run(x).probs, asked.run(x).probs)


# ----------------------------------------------------------------------------- OpenVINO itself
def _max_deltas(a: Classifier, b: Classifier, films) -> tuple[float, float, float]:
    from cxrviewer.preprocess import preprocess_batch

    x = preprocess_batch(films, a.info)
    ra, rb = a.run(x), b.run(x)
    return (float(np.abs(ra.probs - rb.probs).max()),
            float(np.abs(ra.cams - rb.cams).max() / np.abs(ra.cams).max()),
            float(np.abs(ra.features - rb.features).max()))


@needs_openvino
def test_openvino_fp32_equals_onnxruntime_fp32_on_the_tiny_model(tiny_model, nih_samples):
    from cxrviewer.io import read_film

    ort_clf = Classifier.load(tiny_model, device="cpu")
    ov = Classifier.load(tiny_model, backend="openvino", precision="fp32")
    assert ov.engine == OV_FP32 and ov.provider == "OpenVINO CPU" and ov.session is None
    assert ov.info == ort_clf.info  # the metadata read by OpenVINO's ONNX reader
    dp, dm, df = _max_deltas(ort_clf, ov, [read_film(p) for p in nih_samples])
    assert dp <= 1e-5 and dm <= 1e-4 and df <= 1e-4
    # the batch path's one-thread twin runs on the same engine
    assert ov.for_throughput().engine == OV_FP32 and ov.for_throughput().threads == 1


@needs_openvino
@pytest.mark.slow
def test_openvino_fp32_equals_onnxruntime_fp32_on_the_demo_model(nih_samples):
    from cxrviewer.io import read_film
    from cxrviewer.paths import default_model_path

    ort_clf = Classifier.load(default_model_path(), device="cpu")
    ov = Classifier.load(default_model_path(), backend="openvino", precision="fp32")
    dp, dm, df = _max_deltas(ort_clf, ov, [read_film(p) for p in nih_samples])
    assert dp <= 1e-5 and dm <= 1e-3
    # predictions carry the maps and features of the same run: the OOD score follows the features
    preds = ov.predict([read_film(nih_samples[0])])
    assert preds[0].class_maps.shape == (14, 10, 10) and preds[0].features.shape == (1024,)
    assert preds[0].ood_score == pytest.approx(ort_clf.predict([read_film(nih_samples[0])])[0].ood_score, rel=1e-4)


@needs_openvino
def test_openvino_is_thread_safe_with_its_pool_of_requests(tiny_model, nih_samples):
    from concurrent.futures import ThreadPoolExecutor

    from cxrviewer.io import read_film
    from cxrviewer.preprocess import preprocess_batch

    ov = Classifier.load(tiny_model, backend="openvino", precision="fp32", threads=1)
    xs = [preprocess_batch([read_film(p)], ov.info) for p in nih_samples]
    alone = [ov.run(x).probs for x in xs]
    with ThreadPoolExecutor(3) as pool:
        together = list(pool.map(lambda x: ov.run(x).probs, xs * 3))
    for i, p in enumerate(together):
        assert np.array_equal(p, alone[i % len(xs)])


@needs_openvino
def test_bf16_is_measured_where_the_cpu_has_it_and_never_chosen_without_parity(tiny_model, cache):
    m = this_machine()
    choice = choose(tiny_model)
    trials = {t.engine: t for t in choice.trials}
    assert (str(OV_BF16) in trials) == m.bf16
    if not m.bf16:
        assert "no bf16" in dict(choice.excluded)[str(OV_BF16)]
        with pytest.raises(ModelError, match="no bf16"):
            Classifier.load(tiny_model, backend="openvino", precision="bf16")
    chosen = trials[str(choice.engine)]
    assert chosen.passed and chosen.max_prob_delta <= 1e-3 and chosen.max_map_delta <= 0.01
    for t in choice.trials:
        if t.engine.endswith("fp32") and t.max_prob_delta is not None:
            assert t.passed == (t.max_prob_delta <= 1e-5 and t.max_map_delta <= 0.01)


@needs_openvino
def test_an_openvino_classifier_given_as_an_engine_is_rebuilt_the_same_in_a_worker(tiny_model):
    import pickle

    ov = Classifier.load(tiny_model, backend="openvino", precision="fp32")
    engine = pickle.loads(pickle.dumps(ov.engine))  # as the node's processes and Ray's actors get it
    worker = Classifier.load(tiny_model, threads=1, check_outputs=False, engine=engine)
    assert worker.engine == ov.engine and worker.choice.how == "given"


# ----------------------------------------------------------------------------- cxrviewer info
def test_info_prints_the_engine_and_why(tiny_model, capsys, cache):
    from cxrviewer.cli import main

    assert main(["info", "--model", str(tiny_model), "--backend", "onnxruntime", "--precision", "fp32"]) == 0
    out = capsys.readouterr().out
    assert "engine:        ONNX Runtime CPU fp32  (given)" in out
    assert "the combination asked for" in out
    assert main(["info", "--model", str(tiny_model)]) == 0  # auto
    out = capsys.readouterr().out
    engine_lines = out[out.index("engine:"):out.index("trained on:")]
    assert str(ORT_FP32) in engine_lines
    # with OpenVINO there is a choice, measured, with a line for each engine tried
    assert ("ms a film" in engine_lines) == HAS_OPENVINO
    assert ("(measured)" in engine_lines) == HAS_OPENVINO
    assert main(["info", "--model", str(tiny_model), "--json"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["engine"]["how"] == ("cached" if HAS_OPENVINO else "given")
    assert card["engine"]["precision"] in ("fp32", "bf16")


# ----------------------------------------------------------------------------- the demo model's numbers
GOLDEN = Path(__file__).parent / "data" / "golden_probabilities.json"


@pytest.mark.slow
def test_precision_fp32_gives_todays_probabilities_and_auto_stays_within_1e3(nih_samples, shared_data, cache):
    """``--precision fp32`` (any backend) writes what fp32 ONNX Runtime wrote before (≤ 1e-6,
    tests/data/golden_probabilities.json); ``auto`` (whatever it picks here) stays within 1e-3 of
    fp32 ONNX Runtime on every shared film."""
    from cxrviewer.io import read_film
    from cxrviewer.paths import default_model_path

    golden = json.loads(GOLDEN.read_text())["films"]
    fp32 = Classifier.load(default_model_path(), backend="auto", precision="fp32")
    auto = Classifier.load(default_model_path(), backend="auto", precision="auto")
    assert fp32.engine.precision == "fp32"
    worst_fp32 = worst_auto = 0.0
    for rel, want in golden.items():
        path = shared_data / rel
        film = read_film(path)
        want = np.asarray(want, dtype=np.float64)
        if path.name in {p.name for p in nih_samples} or rel.startswith("dicom/"):
            worst_fp32 = max(worst_fp32, float(np.abs(fp32.predict_one(film).probabilities - want).max()))
        worst_auto = max(worst_auto, float(np.abs(auto.predict_one(film).probabilities - want).max()))
    assert worst_fp32 <= 1e-6
    assert worst_auto <= 1e-3


@needs_openvino
def test_openvino_refuses_what_onnxruntime_refuses(tmp_path):
    bad = build_tiny_model(tmp_path / "bad.onnx", tiny_info(64), output_names=("prob", "cams", "features"))
    with pytest.raises(ModelError, match="output 'probs' is missing"):
        Classifier.load(bad, backend="openvino", precision="fp32")
    nan = build_tiny_model(tmp_path / "nan.onnx", tiny_info(64), nan_output="cams")
    with pytest.raises(ModelError, match="invalid numbers"):
        Classifier.load(nan, backend="openvino", precision="fp32")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="not a readable ONNX model"):
        Classifier.load(junk, backend="openvino", precision="fp32")
    with pytest.raises(ModelError, match="not a readable ONNX model"):
        Classifier.load(junk, backend="auto", precision="auto")


@needs_openvino
@pytest.mark.slow
def test_the_nodes_scoring_processes_run_the_engine_they_are_given(tiny_model):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from cxrviewer.node import workers

    for engine in (OV_FP32, ORT_FP32):
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=workers.init,
                                 initargs=(os.getpid(), str(tiny_model), "cpu", 1, engine)) as pool:
            assert pool.submit(workers.loaded_engine).result() == engine


def test_score_refuses_an_impossible_engine_with_the_reason(tiny_model, tmp_path, capsys):
    from cxrviewer.cli import main
    from helpers import synthetic_pixels, write_png

    film = write_png(tmp_path / "f.png", synthetic_pixels())
    code = main(["score", str(film), "--out", str(tmp_path / "r.csv"), "--model", str(tiny_model),
                 "--backend", "onnxruntime", "--precision", "bf16", "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "bf16 runs on OpenVINO only" in err and err.rstrip().endswith("(--backend / --precision / --device)")


def test_without_openvino_everything_runs_on_onnxruntime_as_before(tiny_model, tmp_path):
    """A Python where ``import openvino`` fails (the extra not installed): auto runs ONNX Runtime
    fp32, says why, and asking for OpenVINO says how to install it."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['openvino'] = None\n"
            "from cxrviewer.cli import main\n"
            f"sys.exit(main(sys.argv[1:] + ['--model', {str(tiny_model)!r}]))")
    env = dict(os.environ, CXRVIEWER_CACHE_DIR=str(tmp_path / "cache"))
    run = lambda *a: subprocess.run([sys.executable, "-c", code, *a], capture_output=True, text=True, env=env)
    info = run("info")
    assert info.returncode == 0, info.stderr
    assert "engine:        ONNX Runtime CPU fp32  (given)" in info.stdout
    assert "OpenVINO is not installed" in info.stdout
    asked = run("info", "--backend", "openvino")
    assert asked.returncode == 2 and "pip install 'cxrviewer[openvino]'" in asked.stderr
