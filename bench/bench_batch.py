"""Batch throughput on the same real films, side by side in one run.

(a) the seed-style loop: Keras `load_img` + per-film standardisation + `model.predict` one film
    at a time, on the same architecture (DenseNet121 + GAP + Dense, 320 px, random weights);
(b) `cxrviewer score` (the core batch path: threaded decode + batched ONNX Runtime, CSV out);
(c) model only: ONNX Runtime on already-preprocessed tensors (the limit for (b)).
Prints films/s (median of repeats) and the ratios b/a and b/c.

    python bench/bench_batch.py [--repeats 3] [--seed-films 24] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import numpy as np

from common import demo_model, dicoms, machine, median_rate, nih_pngs


def seed_loop(films: list[Path], size: int):
    import tensorflow as tf

    from training.model import build_model  # the same architecture the product trains

    model = build_model(num_classes=14, input_size=size, weights=None)
    load_img = tf.keras.utils.load_img
    img_to_array = tf.keras.utils.img_to_array

    def run():
        for p in films:
            x = img_to_array(load_img(str(p), target_size=(size, size)))
            x = (x - x.mean()) / x.std()  # the seeds standardise each film by itself
            model.predict(x[None], verbose=0)

    run()  # warm-up (graph tracing)
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed-films", type=int, default=24, help="films for the slow seed loop")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-keras", action="store_true", help="skip (a) (no TensorFlow installed)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from cxrviewer.batch import score_to_csv
    from cxrviewer.io import read_film
    from cxrviewer.model import Classifier
    from cxrviewer.preprocess import preprocess_batch

    films = nih_pngs()
    clf = Classifier.load(demo_model(), device="auto")
    size = clf.info.input_size
    print(f"machine: {machine()}; model {clf.info.model_version} {size}px on {clf.provider}; {len(films)} NIH PNGs 1024x1024")

    tmp = Path(tempfile.mkdtemp())

    def ours():
        score_to_csv(films, clf, tmp / "r.csv", batch_size=args.batch_size, workers=args.workers, overwrite=True)

    ours()  # warm-up
    b, b_runs = median_rate(ours, len(films), args.repeats)

    x = preprocess_batch([read_film(p) for p in films], clf.info)

    def model_only():
        for i in range(0, len(x), args.batch_size):
            clf.run(x[i : i + args.batch_size])

    model_only()
    c, c_runs = median_rate(model_only, len(films), args.repeats)

    dcm = dicoms()
    d = None
    if dcm:
        def ours_dicom():
            score_to_csv(dcm, clf, tmp / "d.csv", batch_size=args.batch_size, workers=args.workers, overwrite=True)
        ours_dicom()
        d, _ = median_rate(ours_dicom, len(dcm), args.repeats)

    a = None
    if not args.no_keras:
        subset = films[: args.seed_films]
        a, a_runs = median_rate(seed_loop(subset, size), len(subset), args.repeats)

    print(f"{'path':<52} films/s (median of {args.repeats})")
    if a is not None:
        print(f"{'(a) seed loop: load_img + model.predict, batch 1':<52} {a:7.2f}")
    print(f"{'(b) cxrviewer score (batch %d, %d readers)' % (args.batch_size, args.workers):<52} {b:7.2f}   runs {', '.join(f'{r:.2f}' for r in b_runs)}")
    print(f"{'(c) model only: ONNX Runtime on tensors':<52} {c:7.2f}   runs {', '.join(f'{r:.2f}' for r in c_runs)}")
    if d is not None:
        print(f"{'    cxrviewer score on the %d real DICOMs' % len(dcm):<52} {d:7.2f}")
    if a is not None:
        print(f"b/a = {b / a:.2f}   (target >= 4)")
    print(f"b/c = {b / c:.2f}   (target >= 0.9)")


if __name__ == "__main__":
    main()
