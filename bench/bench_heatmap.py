"""What the heatmaps cost, side by side in one run.

1. ONNX Runtime: the model with `probs` only vs the exported graph with `probs + cams +
   features` (the in-graph Grad-CAM for all classes), batch 1 and batch 8.
2. The usual way: `tf.GradientTape` Grad-CAM for all 14 classes (one gradient per class) on the
   same architecture, batch 1.
Prints medians and the ratios (target: cams overhead <= 5%, >= 10x cheaper than the tape).

    python bench/bench_heatmap.py [--repeats 5] [--no-keras]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from common import demo_model, machine, median_time, nih_pngs


def probs_only_model(src: Path, dst: Path) -> Path:
    import onnx
    from onnx.utils import Extractor

    model = onnx.load(str(src))
    sub = Extractor(model).extract_model(["image"], ["probs"])
    onnx.save(sub, str(dst))
    return dst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-keras", action="store_true")
    args = ap.parse_args()

    import onnxruntime as ort

    from cxrviewer.io import read_film
    from cxrviewer.model import Classifier
    from cxrviewer.preprocess import preprocess_batch

    path = demo_model()
    clf = Classifier.load(path, device="cpu")
    films = [read_film(p) for p in nih_pngs()[:8]]
    x8 = preprocess_batch(films, clf.info)
    x1 = x8[:1]
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    tmp = Path(tempfile.mkdtemp())
    sess_p = ort.InferenceSession(str(probs_only_model(path, tmp / "p.onnx")), opts, providers=["CPUExecutionProvider"])
    sess_all = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    names = ["probs", "cams", "features"]
    print(f"machine: {machine()}; model {clf.info.model_version} {clf.info.input_size}px")
    res = {}
    for label, x in (("batch 1", x1), ("batch 8", x8)):
        for _ in range(2):
            sess_p.run(["probs"], {"image": x})
            sess_all.run(names, {"image": x})
        # interleave the two so that machine noise hits both alike
        tp, ta = [], []
        for _ in range(args.repeats):
            tp.append(median_time(lambda: sess_p.run(["probs"], {"image": x}), 1))
            ta.append(median_time(lambda: sess_all.run(names, {"image": x}), 1))
        res[label] = (float(np.median(tp)), float(np.median(ta)))
        p, a = res[label]
        print(f"ONNX {label}: probs only {p * 1000:7.1f} ms, probs+cams+features {a * 1000:7.1f} ms, overhead {100 * (a / p - 1):+.1f}%")

    if not args.no_keras:
        import tensorflow as tf

        from training.model import build_model

        model = build_model(num_classes=len(clf.info.labels), input_size=clf.info.input_size, weights=None)
        feat = tf.keras.Model(model.inputs, [model.get_layer("relu").output, model.output])
        xt = tf.constant(x1)

        def tape_gradcam():
            with tf.GradientTape(persistent=True) as tape:
                a, p = feat(xt, training=False)
                per_class = [p[:, c] for c in range(p.shape[1])]
            cams = []
            for pc in per_class:
                g = tape.gradient(pc, a)
                alpha = tf.reduce_mean(g, axis=(1, 2), keepdims=True)
                cams.append(tf.nn.relu(tf.reduce_sum(alpha * a, axis=-1)))
            del tape
            return cams

        tape_gradcam()
        t_tape = median_time(tape_gradcam, args.repeats)
        a1 = res["batch 1"][1]
        print(f"tf.GradientTape Grad-CAM, 14 classes, batch 1: {t_tape * 1000:.1f} ms; in-graph cams are {t_tape / a1:.1f}x cheaper (target >= 10x)")


if __name__ == "__main__":
    main()
