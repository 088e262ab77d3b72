"""Batch throughput on the same real films, side by side in one run.

(a) the seed-style loop: Keras `load_img` + per-film standardisation + `model.predict` one film
    at a time, on the same architecture (DenseNet121 + GAP + Dense, 320 px, random weights);
    lean: the film is loaded once. (a*) is the seeds' literal `load_image`, whose
    `get_mean_std_per_batch` loads the film 100 more times; printed for reference only;
(b) `cxrviewer score`: :func:`cxrviewer.batch.score_to_csv`, the code behind the command
    (workers that read, preprocess and infer side by side, CSV with regions, fsync'ed), with a
    model loaded once as the command does;
(c) model only, on already-preprocessed tensors at the same batch size: the faster of
    (c1) one batch at a time on a session using all cores (ONNX Runtime's default) and
    (c2) as many batches at once as (b) has workers, on the one-thread session (b) uses.
    This is the limit for (b).
(a), (b), (c1) and (c2) run alternately, repeat after repeat, so that machine noise hits them
alike; b/a and b/c are medians of the per-repeat ratios. Prints films/s (medians) and the ratios.

    python bench/bench_batch.py [--repeats 5] [--seed-films 24] [--batch-size N] [--workers N]
    python bench/bench_batch.py --sweep      # the table behind the defaults in cxrviewer/batch.py
    python bench/bench_batch.py --cli        # also time `cxrviewer score` end to end (model load included)
    python bench/bench_batch.py --model RUN/model.int8.onnx   # (b) and (c) with another model file
    python bench/bench_batch.py --engines    # (b) and (c) on every backend x precision this machine runs
    python bench/bench_batch.py --engines --processes   # also `cxrviewer score` as whole processes:
                                             # --backend/--precision auto vs fp32 ONNX Runtime, interleaved

--engines prints the CPU model and its flags, then for each engine (cxrviewer.inference: ONNX
Runtime / OpenVINO at fp32, bf16 where the CPU has it, int8 where the model has an int8 copy)
(b) and (c) as above, all engines taking turns repeat after repeat, and which engine `auto`
picks here and why.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from common import demo_model, dicoms, load, machine, nih_pngs


def seed_loop(films: list[Path], size: int):
    """The seeds' loop: Keras load_img, the film standardised by itself, predict one at a time."""
    import tensorflow as tf

    from training.model import build_classifier  # the same architecture the product trains

    model = build_classifier(num_classes=14, input_size=size, weights=None)
    seed_loop.model = model
    load_img = tf.keras.utils.load_img
    img_to_array = tf.keras.utils.img_to_array

    def run():
        for p in films:
            x = img_to_array(load_img(str(p), target_size=(size, size)))
            x = (x - x.mean()) / x.std()  # the seeds standardise each film by itself
            model.predict(x[None], verbose=0)

    run()  # warm-up (graph tracing)
    return run


def seed_literal_loop(films: list[Path], size: int, model):
    """The seeds' own ``load_image``: ``get_mean_std_per_batch`` loads a film 100 times (the
    deeplearning.ai course util.py loads ``image_path``, the film itself, for each of 100
    sampled rows and keeps the first) before the film is loaded once more and predicted."""
    import tensorflow as tf

    load_img = tf.keras.utils.load_img
    img_to_array = tf.keras.utils.img_to_array

    def run():
        for p in films:
            sample = [np.array(load_img(str(p), target_size=(size, size))) for _ in range(100)]
            mean, std = np.mean(sample[0]), np.std(sample[0])
            x = img_to_array(load_img(str(p), target_size=(size, size)))
            x = (x - mean) / std
            model.predict(x[None], verbose=0)

    return run


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def side_by_side(films, clf, x, batch_size: int, workers: int, repeats: int, out: Path, seed=None):
    """Alternate (a) when given as ``(run, n_films)``, (b), (c1) and (c2), ``repeats`` times.

    (c) is the faster of two ways to run the model on ready tensors: (c1) one batch at a time
    on a session using every core (ONNX Runtime's default), or (c2) ``workers`` batches at once
    on the one-thread session the batch path uses. Returns a dict of per-repeat lists: films/s
    under "a", "b", "c", "c1", "c2", and the ratios "b/a", "b/c".
    """
    from cxrviewer.batch import score_to_csv

    one = clf.for_throughput()
    chunks = [x[i : i + batch_size] for i in range(0, len(x), batch_size)]

    def ours():
        score_to_csv(films, clf, out, batch_size=batch_size, workers=workers, overwrite=True)

    def all_cores():
        for chunk in chunks:
            clf.run(chunk)

    def side_by_side_runs():
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(one.run, chunks))

    for fn in (ours, all_cores, side_by_side_runs):  # warm-up: thread pools, ORT arenas, page cache
        fn()
    r: dict[str, list[float]] = {k: [] for k in ("a", "b", "c1", "c2")}
    for _ in range(repeats):
        if seed is not None:
            r["a"].append(seed[1] / timed(seed[0]))
        r["b"].append(len(films) / timed(ours))
        r["c1"].append(len(films) / timed(all_cores))
        r["c2"].append(len(films) / timed(side_by_side_runs))
    r["c"] = [max(p, q) for p, q in zip(r["c1"], r["c2"])]
    r["b/c"] = [p / q for p, q in zip(r["b"], r["c"])]
    r["b/a"] = [p / q for p, q in zip(r["b"], r["a"])]
    return r


def fmt(rates) -> str:
    return ", ".join(f"{r:.2f}" for r in rates)


def sweep(films, args, tmp: Path) -> None:
    """Films/s of (b) and (c) over batch size and workers."""
    from cxrviewer.io import read_film
    from cxrviewer.model import Classifier
    from cxrviewer.preprocess import preprocess_batch

    clf = Classifier.load(demo_model(), device="cpu")
    x = preprocess_batch([read_film(p) for p in films], clf.info)
    print(f"{'batch':>5} {'workers':>7} {'(b) films/s':>11} {'(c1) all cores':>14} {'(c2) side by side':>17} {'b/c':>5}")
    for bs in args.sweep_batches:
        for w in args.sweep_workers:
            r = side_by_side(films, clf, x, bs, w, args.repeats, tmp / "s.csv")
            med = statistics.median
            print(f"{bs:5d} {w:7d} {med(r['b']):11.2f} {med(r['c1']):14.2f} {med(r['c2']):17.2f} {med(r['b/c']):5.2f}", flush=True)


def engines(films, args, tmp: Path) -> None:
    """(b) and (c) for every engine this machine runs, interleaved; then what auto picks."""
    from cxrviewer.batch import default_workers, score_to_csv
    from cxrviewer.inference.choice import choose, int8_copy_path
    from cxrviewer.inference.machine import candidates, this_machine
    from cxrviewer.io import read_film
    from cxrviewer.model import Classifier
    from cxrviewer.preprocess import preprocess_batch

    model = args.model or demo_model()
    m = this_machine()
    print(f"machine: {machine()}")
    print(f"engines: {m.describe()}")
    cands = candidates(m, file_precision=Classifier.load(model, device="cpu").info.precision,
                       int8_copy=int8_copy_path(Path(model)).is_file())
    for name, why in cands.excluded:
        print(f"  not run: {name}: {why}")
    clfs = {str(e): Classifier.load(model, engine=e) for e in cands.engines}
    some = films[: args.engine_films]
    x = preprocess_batch([read_film(p) for p in some], next(iter(clfs.values())).info)
    workers = args.workers or default_workers()
    print(f"{len(some)} NIH PNGs, batch 1, {workers} workers; every engine's (b), (c1), (c2) in turn, "
          f"{args.repeats} repeats; films/s (medians)", flush=True)
    rates: dict[str, dict[str, list[float]]] = {k: {"b": [], "c1": [], "c2": []} for k in clfs}
    one = {k: c.for_throughput() for k, c in clfs.items()}
    chunks = [x[i : i + 1] for i in range(len(x))]

    def b(k):
        score_to_csv(some, clfs[k], tmp / "e.csv", batch_size=1, workers=workers, overwrite=True)

    def c1(k):
        for chunk in chunks:
            clfs[k].run(chunk)

    def c2(k):
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(one[k].run, chunks))

    for k in clfs:  # warm-up
        b(k), c1(k), c2(k)
    for _ in range(args.repeats):
        for k in clfs:
            for name, fn in (("b", b), ("c1", c1), ("c2", c2)):
                rates[k][name].append(len(some) / timed(lambda: fn(k)))
    med = statistics.median
    ref = "ONNX Runtime CPU fp32"
    best_c = max(max(med(r["c1"]), med(r["c2"])) for r in rates.values())
    print(f"{'engine':<24} {'(b) score':>10} {'(c1) all cores':>15} {'(c2) side by side':>18} {'b/c':>5} {'c/best c':>8} {'b vs fp32 ORT':>13}")
    for k, r in rates.items():
        c = max(med(r["c1"]), med(r["c2"]))
        vs = med(r["b"]) / med(rates[ref]["b"]) if ref in rates else float("nan")
        print(f"{k:<24} {med(r['b']):10.2f} {med(r['c1']):15.2f} {med(r['c2']):18.2f} {med(r['b']) / c:5.2f} "
              f"{c / best_c:8.2f} {vs:13.2f}")
        print(f"{'':<24} runs (b) {fmt(r['b'])}; (c1) {fmt(r['c1'])}; (c2) {fmt(r['c2'])}")
    choice = choose(Path(model))
    print(f"auto picks: {choice.engine} ({choice.how}): {choice.reason}")
    for line in choice.lines()[2:]:
        print(line)
    if args.processes:
        processes(films, args, tmp)


def processes(films, args, tmp: Path) -> None:
    """`cxrviewer score` of the films as whole processes (start-up and model load included):
    --backend/--precision auto against --backend onnxruntime --precision fp32, interleaved."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    model = ["--model", str(args.model)] if args.model else []
    runs = {"auto": ["--backend", "auto", "--precision", "auto"],
            "fp32 ONNX Runtime": ["--backend", "onnxruntime", "--precision", "fp32"]}

    def run(flags):
        cmd = [sys.executable, "-m", "cxrviewer", "score", *map(str, films), "--out", str(tmp / "p.csv"),
               "--overwrite", "--no-progress", *model, *flags]
        return timed(lambda: subprocess.run(cmd, env=env, check=True, capture_output=True))

    for flags in runs.values():  # warm-up (page cache; auto's choice measured and cached)
        run(flags)
    secs: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.repeats):
        for k, flags in runs.items():
            secs[k].append(run(flags))
    med = statistics.median
    for k, v in secs.items():
        print(f"`cxrviewer score` {len(films)} films, whole process, {k:<18} {med(v):6.2f} s "
              f"({len(films) / med(v):5.2f} films/s)   runs {fmt(v)} s")
    ratios = [f / a for a, f in zip(secs["auto"], secs["fp32 ONNX Runtime"])]
    print(f"auto / fp32 ONNX Runtime speed = {med(ratios):.2f}  (median of per-repeat ratios {fmt(ratios)})", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed-films", type=int, default=24, help="films for the seed-style loop (a)")
    ap.add_argument("--literal-films", type=int, default=3, help="films for the seeds' literal loop (a*); 0 skips it")
    ap.add_argument("--batch-size", type=int, default=None, help="default: cxrviewer's default")
    ap.add_argument("--workers", type=int, default=None, help="films side by side; default: cxrviewer's default")
    ap.add_argument("--model", type=Path, default=None,
                    help="ONNX model for (b) and (c), e.g. an int8 one from `cxr-train export --int8` "
                         "(default: the bundled demo model); (a) is always the fp32 Keras DenseNet121")
    ap.add_argument("--no-keras", action="store_true", help="skip (a) (no TensorFlow installed)")
    ap.add_argument("--cli", action="store_true", help="also run `cxrviewer score` end to end in-process")
    ap.add_argument("--sweep", action="store_true", help="sweep batch size x workers")
    ap.add_argument("--backend", default="onnxruntime", help="(b) and (c) on this backend (auto: cxrviewer's default choice)")
    ap.add_argument("--precision", default="file", help="(b) and (c) at this precision (default: the model file's own)")
    ap.add_argument("--engines", action="store_true", help="every backend x precision this machine runs")
    ap.add_argument("--engine-films", type=int, default=24, help="films for --engines (b) and (c)")
    ap.add_argument("--processes", action="store_true",
                    help="with --engines: `cxrviewer score` of all films as whole processes, auto vs fp32 ONNX Runtime")
    ap.add_argument("--sweep-batches", type=int, nargs="+", default=[1, 2, 8])
    ap.add_argument("--sweep-workers", type=int, nargs="+", default=[1, 2, 3])
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from cxrviewer import batch
    from cxrviewer.batch import score_to_csv
    from cxrviewer.io import read_film
    from cxrviewer.model import Classifier
    from cxrviewer.preprocess import preprocess_batch

    films = nih_pngs()
    tmp = Path(tempfile.mkdtemp())
    if args.engines:
        engines(films, args, tmp)
        return
    if args.sweep:
        print(f"machine: {machine()}; {len(films)} NIH PNGs 1024x1024; medians of {args.repeats}")
        sweep(films, args, tmp)
        return

    clf = Classifier.load(args.model or demo_model(), device="auto", backend=args.backend,
                          precision=None if args.precision == "file" else args.precision)
    bs = args.batch_size or batch.default_batch_size(clf.provider)
    workers = args.workers or batch.default_workers(clf.provider)
    size = clf.info.input_size
    print(f"machine: {machine()}; model {clf.info.model_version} ({getattr(clf.info, 'precision', 'fp32')}) {size}px on {clf.engine}; {len(films)} NIH PNGs 1024x1024")
    x = preprocess_batch([read_film(p) for p in films], clf.info)
    seed = None
    if not args.no_keras:
        subset = films[: args.seed_films]
        seed = (seed_loop(subset, size), len(subset))
    print(f"batch {bs}, {workers} workers; {'(a), ' if seed else ''}(b), (c1), (c2) alternate, "
          f"{args.repeats} repeats each; (a) on the first {args.seed_films} films", flush=True)
    r = side_by_side(films, clf, x, bs, workers, args.repeats, tmp / "r.csv", seed)
    med = statistics.median
    rows = [("(b) cxrviewer score (score_to_csv)", "b"), ("(c) model only, the faster of (c1) and (c2)", "c"),
            ("    (c1) one batch at a time, all-core session", "c1"),
            (f"    (c2) {workers} batches at once, one-thread session", "c2")]
    if seed:
        rows.insert(0, ("(a) seed loop: load_img + model.predict, batch 1", "a"))
    for name, key in rows:
        print(f"{name:<48} {med(r[key]):7.2f} films/s   runs {fmt(r[key])}")

    dcm = dicoms()
    if dcm:
        def ours_dicom():
            score_to_csv(dcm, clf, tmp / "d.csv", batch_size=bs, workers=workers, overwrite=True)

        ours_dicom()
        d = med(len(dcm) / timed(ours_dicom) for _ in range(args.repeats))
        print(f"{'    (b) on the %d real DICOMs (info)' % len(dcm):<48} {d:7.2f} films/s", flush=True)

    if args.cli:
        import contextlib
        import io

        from cxrviewer.cli import main as cli_main

        argv = ["score", *map(str, films), "--out", str(tmp / "cli.csv"), "--overwrite", "--no-progress"]

        def cli():
            with contextlib.redirect_stderr(io.StringIO()):  # its summary line
                cli_main(argv)

        cli()
        e = med(len(films) / timed(cli) for _ in range(args.repeats))
        print(f"{'    `cxrviewer score` end to end, model load incl.':<48} {e:7.2f} films/s", flush=True)

    if seed and args.literal_films > 0:
        subset = films[: args.literal_films]
        run = seed_literal_loop(subset, size, seed_loop.model)
        lit_b = []
        for _ in range(max(1, args.repeats // 2)):  # alternated with (b) too
            lit_b.append((len(subset) / timed(run), len(films) / timed(lambda: score_to_csv(
                films, clf, tmp / "r.csv", batch_size=bs, workers=workers, overwrite=True))))
        lit = med(a for a, _ in lit_b)
        print(f"{'(a*) the seeds literal load_image, batch 1':<48} {lit:7.2f} films/s   ({len(subset)} films; 101 load_img each)")
        print(f"b/a* = {med(b / a for a, b in lit_b):.1f}  (against the seeds' literal loop; for reference)")

    if seed:
        print(f"b/a = {med(r['b/a']):.2f}   (median of per-repeat ratios {fmt(r['b/a'])}; target >= 4; "
              f"c/a = {med(c / a for c, a in zip(r['c'], r['a'])):.2f} bounds it, as b <= c)")
    print(f"b/c = {med(r['b/c']):.2f}   (median of per-repeat ratios {fmt(r['b/c'])}; target >= 0.9)")


if __name__ == "__main__":
    main()
    print(f"at the end: {load()}")
