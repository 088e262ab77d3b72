"""Maps of the class score (issue #28): the surest finding keeps its map.

Version 1 files carried Grad-CAM maps of the *probability*, which carry a factor p(1 − p): on a
real chest film where the demo model was sure of Edema, its map vanished on the common display
scale ("no activation") while weaker findings lit up. Version 2 files carry maps of the class
score (the logit), independent of p. ``cxr-train upgrade-maps`` turns a version 1 file into a
version 2 one without retraining; the bundled demo model was upgraded with it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from helpers import SAMPLES
from onnx import numpy_helper
from tinymodel import build_tiny_model, tiny_info

from cxrviewer import contract, heatmap
from cxrviewer.io import read_film
from cxrviewer.model import Classifier
from cxrviewer.paths import DEMO_MODEL_NAME, resource_path
from cxrviewer.render import film_rgb, overlay
from training.cli import main

FILM = SAMPLES / "00000103_000.png"  # a real NIH chest film


def with_surer_head(src: Path, dst: Path, label: str, shift: float) -> Path:
    """A copy of ``src`` whose head bias for ``label`` is raised by ``shift``: the same network,
    surer of that finding (its probability nears 1, its class score's map does not change)."""
    proto = onnx.load(str(src))
    props = {p.key: p.value for p in proto.metadata_props}
    c = json.loads(props[contract.PREFIX + "labels"]).index(label)
    producer = {o: n for n in proto.graph.node for o in n.output}
    node = producer[contract.PROBS]
    while node.op_type != "Sigmoid":
        node = producer[node.input[0]]
    add = producer[node.input[0]]
    assert add.op_type == "Add"
    inits = {i.name: i for i in proto.graph.initializer}
    (name,) = [x for x in add.input if x in inits]
    bias = numpy_helper.to_array(inits[name]).copy()
    bias[c] += shift
    inits[name].CopyFrom(numpy_helper.from_array(bias, name))
    onnx.save(proto, str(dst))
    return dst


def test_the_bundled_demo_model_carries_maps_of_the_class_score():
    info = Classifier.load(resource_path("models", DEMO_MODEL_NAME)).info
    assert info.format_version == 2 and info.maps_of == "class score"


def test_a_sure_top_finding_on_a_real_film_keeps_its_map_and_toggling_it_changes_the_picture(tmp_path):
    model = with_surer_head(resource_path("models", DEMO_MODEL_NAME), tmp_path / "sure.onnx", "Edema", 3.0)
    clf = Classifier.load(model)
    film = read_film(FILM)
    pred = clf.predict_one(film)
    top = pred.labels[int(np.argmax(pred.probabilities))]
    assert top == "Edema" and pred.probability("Edema") >= 0.99
    assert not heatmap.is_empty(pred, "Edema")
    assert heatmap.strengths(pred)[pred.labels.index("Edema")] == pytest.approx(1.0)  # the strongest map
    shown = heatmap.active(pred, pred.labels)
    assert "Edema" in shown and len(shown) > 1
    with_edema = overlay(film, pred, list(shown), alpha=0.6)
    without = overlay(film, pred, [x for x in shown if x != "Edema"], alpha=0.6)
    changed = np.any(with_edema != without, axis=-1).mean()
    assert changed > 0.05, changed  # issue #28: 2,355 of 608,400 pixels (0.4%) with maps of the probability
    assert np.any(overlay(film, pred, ["Edema"], alpha=0.6) != film_rgb(film), axis=-1).mean() > 0.05


def test_with_maps_of_the_probability_the_surest_finding_fades_and_with_the_class_score_it_does_not(tmp_path):
    """The same tiny network with a very sure first label, in both kinds of file: the version 1
    map is scaled by p(1 − p) ≈ 0 and vanishes on the common scale; the version 2 map does not."""
    info = tiny_info(64)
    label = info.labels[0]
    film = read_film(FILM)
    strength = {}
    for maps in ("probability", "class score"):
        path = build_tiny_model(tmp_path / f"{maps}.onnx", info, maps=maps)
        for shift in (0.0, 12.0):
            pred = Classifier.load(with_surer_head(path, tmp_path / f"{maps}-{shift}.onnx", label, shift)).predict_one(film)
            if shift:
                assert pred.probability(label) > 0.9999
            strength[maps, shift] = float(heatmap.strengths(pred)[0])
    assert strength["probability", 0.0] >= heatmap.VISIBLE_LEVEL  # drawn while the model is unsure ...
    assert strength["probability", 12.0] < heatmap.VISIBLE_LEVEL  # ... "no activation" once it is sure
    assert strength["class score", 0.0] >= heatmap.VISIBLE_LEVEL
    assert strength["class score", 12.0] == pytest.approx(strength["class score", 0.0], rel=1e-5)  # p plays no part


def test_upgrade_maps_rewrites_a_version_1_file_without_touching_its_probabilities(tmp_path, capsys):
    old = build_tiny_model(tmp_path / "v1.onnx", tiny_info(64), seed=3, maps="probability")
    want = build_tiny_model(tmp_path / "v2-built.onnx", tiny_info(64), seed=3, maps="class score")
    new = tmp_path / "v2.onnx"
    assert main(["-q", "upgrade-maps", str(old), "--out", str(new)]) == 0
    assert "format version 2" in capsys.readouterr().out
    a, b, c = (Classifier.load(p) for p in (old, new, want))
    assert a.info.format_version == 1 and b.info.format_version == 2
    assert {k: v for k, v in vars(b.info).items() if k != "format_version"} == \
        {k: v for k, v in vars(a.info).items() if k != "format_version"}  # every other key kept
    films = [read_film(p) for p in sorted(SAMPLES.glob("*.png"))[:3]]
    from cxrviewer.preprocess import preprocess_batch

    x = preprocess_batch(films, a.info)
    ra, rb, rc = a.run(x), b.run(x), c.run(x)
    assert np.array_equal(ra.probs, rb.probs) and np.array_equal(ra.features, rb.features)
    np.testing.assert_allclose(rb.cams, rc.cams, rtol=1e-6, atol=1e-9)  # the class score's maps
    # nothing of the old factor is left in the graph
    ops = [n.op_type for n in onnx.load(str(new)).graph.node]
    assert "Sub" not in ops and ops.count("Mul") == 1


def test_upgrade_maps_refuses_a_version_2_file_and_its_own_input(tmp_path, capsys):
    v2 = build_tiny_model(tmp_path / "v2.onnx", tiny_info(64))
    assert main(["-q", "upgrade-maps", str(v2), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "only version 1 files need upgrading" in capsys.readouterr().err
    v1 = build_tiny_model(tmp_path / "v1.onnx", tiny_info(64), maps="probability")
    assert main(["-q", "upgrade-maps", str(v1), "--out", str(v1)]) == 2
    assert "is the input file" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()
