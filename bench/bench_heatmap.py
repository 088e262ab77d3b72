"""What the heatmaps cost, side by side in one run.

1. ONNX Runtime: the model with `probs` only vs the exported graph with `probs + cams +
   features` (the in-graph Grad-CAM for all classes), batch 1 and batch 8, on the one-thread
   session of the batch path and the all-core session of the GUI.
2. The usual way: `tf.GradientTape` Grad-CAM for all 14 classes (one gradient per class) on the
   same architecture, batch 1, against the app's path (1.) and, to separate the method from the
   runtime, against the same in-graph Grad-CAM run in Keras.
Prints medians and the ratios (target: cams overhead <= 5%, >= 10x cheaper than the tape).

    python bench/bench_heatmap.py [--repeats 7] [--calls 3] [--no-keras]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from common import demo_model, load, machine, median_time, nih_pngs


def probs_only_model(src: Path, dst: Path) -> Path:
    import onnx
    from onnx.utils import Extractor

    model = onnx.load(str(src))
    sub = Extractor(model).extract_model(["image"], ["probs"])
    onnx.save(sub, str(dst))
    return dst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--calls", type=int, default=3, help="forward passes per timed sample")
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
    tmp = Path(tempfile.mkdtemp())
    probs_path = probs_only_model(path, tmp / "p.onnx")
    names = ["probs", "cams", "features"]

    def session(model: Path, threads: int):
        # the options of cxrviewer.model.Classifier.load
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads
        return ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])

    print(f"machine: {machine()}; model {clf.info.model_version} {clf.info.input_size}px")
    print(f"per forward pass, median of {args.repeats} interleaved repeats of {args.calls} calls; "
          "overhead = median of the per-repeat ratios")
    res = {}
    for threads, what in ((1, "one-thread session (the batch path)"), (0, "all-core session (the GUI)")):
        sess_p, sess_all = session(probs_path, threads), session(path, threads)
        for label, x in (("batch 1", x1), ("batch 8", x8)):
            def probs_only():
                for _ in range(args.calls):
                    sess_p.run(["probs"], {"image": x})

            def with_cams():
                for _ in range(args.calls):
                    sess_all.run(names, {"image": x})

            probs_only()
            with_cams()
            # interleave the two so that machine noise hits both alike
            tp, ta = [], []
            for _ in range(args.repeats):
                tp.append(median_time(probs_only, 1) / args.calls)
                ta.append(median_time(with_cams, 1) / args.calls)
            p, a = float(np.median(tp)), float(np.median(ta))
            over = float(np.median([q / r - 1 for q, r in zip(ta, tp)]))
            res[(threads, label)] = (p, a)
            print(f"ONNX {what}, {label}: probs only {p * 1000:7.1f} ms, probs+cams+features {a * 1000:7.1f} ms, "
                  f"overhead {100 * over:+.1f}% (target <= 5%)", flush=True)

    if not args.no_keras:
        import tensorflow as tf

        from training.model import build_classifier

        model = build_classifier(num_classes=len(clf.info.labels), input_size=clf.info.input_size, weights=None)
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

        from training.model import build_export_model

        export = build_export_model(model)  # the graph cxr-train exports: probs + cams + features

        def in_graph():
            return export(xt, training=False)

        tape_gradcam()
        in_graph()
        t_tape, t_in = [], []
        for _ in range(args.repeats):  # interleaved, as above
            t_tape.append(median_time(tape_gradcam, 1))
            t_in.append(median_time(in_graph, 1))
        t_tape, t_in = float(np.median(t_tape)), float(np.median(t_in))
        a1 = res[(0, "batch 1")][1]
        print(f"tf.GradientTape Grad-CAM, 14 classes, batch 1 (eager, the usual way): {t_tape * 1000:.1f} ms")
        print(f"  vs the app's path (ONNX Runtime, probs+cams+features, batch 1): {t_tape / a1:.1f}x cheaper (target >= 10x)")
        print(f"  vs the same in-graph cams in Keras (eager forward of the export model, {t_in * 1000:.1f} ms): "
              f"{t_tape / t_in:.1f}x cheaper (the method alone, same framework)")


if __name__ == "__main__":
    main()
    print(f"at the end: {load()}")
