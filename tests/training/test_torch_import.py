"""``cxr-train import-torchxrayvision`` / ``import-chexnet``: published PyTorch models → the model format.

The same architectures are built with random weights (nothing is downloaded): a torchxrayvision
``DenseNet`` saved as the pickled model file torchxrayvision itself loads, and arnoweng/CheXNet's
``DenseNet121`` (torchvision's densenet121 with a Linear + Sigmoid head) inside ``DataParallel``,
saved as its ``model.pth.tar`` dict, in today's key names and in the pre-0.2 torchvision ones the
released checkpoint uses. Each is imported through ``training.cli.main`` and the ONNX file, run by
the app's ``Classifier`` on real films, is checked against PyTorch on the same input: probabilities
≤ 1e-4, and the maps against autograd Grad-CAM of the class score (before the sigmoid) at the last
feature map (after the final batch norm and ReLU), ≤ 1e-4 of their peak.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from helpers import REPO, SAMPLES

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install 'cxrviewer[import]')")
xrv = pytest.importorskip("torchxrayvision", reason="torchxrayvision is not installed (pip install 'cxrviewer[import]')")
torchvision = pytest.importorskip("torchvision", reason="torchvision is not installed (pip install 'cxrviewer[import]')")

from cxrviewer.io import read_film  # noqa: E402
from cxrviewer.model import Classifier  # noqa: E402
from cxrviewer.preprocess import crop, preprocess_batch, resize  # noqa: E402
from cxrviewer.types import Film  # noqa: E402
from training.cli import main  # noqa: E402
from training.torch_import import CHEXNET_LABELS, IMAGENET_MEAN, IMAGENET_STD  # noqa: E402

FILMS = sorted(SAMPLES.glob("*.png"))[:3]
TOL = 1e-4


def realistic(model, channels: int, native) -> None:
    """Random weights that behave like trained ones: batch-norm statistics taken from a few films'
    worth of input (so the features are O(1), not 10^4), and a head giving logits of O(1) — so
    the probabilities are spread over (0, 1) instead of saturated at 0 or 1."""
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the calibration batches
    films = np.stack([resize(read_film(p).pixels, 224) for p in FILMS])
    model.train()
    with torch.no_grad():
        model(torch.from_numpy(native(films)))
    model.eval()


def autograd_gradcam(features, head: torch.nn.Linear, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(sigmoid probabilities [N, C], Grad-CAM maps [N, C, h, w]) the textbook way: gradients of each
    class score (the logit, before the sigmoid) with respect to the last feature map A (after the
    final norm and ReLU), α = their spatial mean, map = ReLU(Σ_k α_k A_k)."""
    a = torch.nn.functional.relu(features(x))
    a.retain_grad()
    logits = head(a.mean(dim=(2, 3)))
    maps = []
    for c in range(logits.shape[1]):
        (grad,) = torch.autograd.grad(logits[:, c].sum(), a, retain_graph=True)
        alpha = grad.mean(dim=(2, 3))
        maps.append(torch.relu((alpha[:, :, None, None] * a).sum(dim=1)))
    return torch.sigmoid(logits).detach().numpy(), torch.stack(maps, dim=1).detach().numpy()


def assert_maps_match(onnx_maps: np.ndarray, reference: np.ndarray) -> float:
    peak = float(reference.max())
    assert peak > 0 and np.count_nonzero(reference) > reference.size // 10  # a non-trivial comparison
    rel = float(np.max(np.abs(onnx_maps - reference))) / peak
    assert rel <= TOL, rel
    return rel


def xrv_native(films: np.ndarray) -> np.ndarray:
    """torchxrayvision's input: ``normalize(img, maxval)`` of the 8-bit film = (2·x − 1)·1024."""
    return np.stack([xrv.utils.normalize(f * 255.0, 255)[None] for f in films]).astype(np.float32)


def op_norm(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    """torchxrayvision's op_norm, on numpy: 0.5 exactly at the threshold."""
    return np.where(p < t, p / (2 * t), 1.0 - (1.0 - p) / ((1.0 - t) * 2))


@pytest.fixture(scope="module")
def films():
    return [read_film(p) for p in FILMS]


def non_square(films) -> list[Film]:
    """Two non-square films cut from the (square) samples: landscape 800 × 1024 and portrait 1024 × 701
    (an odd side: the square's offset rounds as XRayCenterCrop's does)."""
    return [Film(np.ascontiguousarray(films[0].pixels[100:900])), Film(np.ascontiguousarray(films[1].pixels[:, 200:901]))]


def xrv_pipeline(film: Film) -> np.ndarray:
    """torchxrayvision's own preprocessing of one 8-bit film, in its order: ``normalize`` to
    [−1024, 1024], ``XRayCenterCrop``, ``XRayResizer(224)`` (its cv2 engine: area interpolation)."""
    img = xrv.utils.normalize(film.pixels * 255.0, 255)[None]
    img = xrv.datasets.XRayCenterCrop()(img)
    return xrv.datasets.XRayResizer(224, engine="cv2")(img).astype(np.float32)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["densenet121-res224-nih", "densenet121-res224-chex"])
def test_torchxrayvision_import_matches_pytorch(tmp_path, films, name):
    spec = xrv.models.model_urls[name]
    # as in the released files: no op_threshs inside; torchxrayvision's loader sets them by name
    model = xrv.models.DenseNet(weights=None, num_classes=len(spec["labels"]))
    realistic(model, 1, xrv_native)
    torch.nn.init.normal_(model.classifier.weight, std=1.0 / 32)
    # torchxrayvision's own weights file: the whole pickled model, under the name it downloads
    weights = tmp_path / "download" / os.path.basename(spec["weights_url"])
    weights.parent.mkdir()
    torch.save(model, weights)
    out = tmp_path / "xrv.onnx"

    assert main(["-q", "import-torchxrayvision", name, "--out", str(out), "--weights", str(weights)]) == 0

    clf = Classifier.load(out)
    kept = [i for i, label in enumerate(spec["labels"]) if label]
    assert clf.info.labels == tuple(spec["labels"][i] for i in kept)  # empty labels dropped, order kept
    assert 0 < len(kept) < len(spec["labels"])
    thresholds = np.array([clf.info.thresholds[label] for label in clf.info.labels])
    np.testing.assert_allclose(thresholds, np.asarray(spec["op_threshs"], np.float64)[kept], rtol=1e-6)
    assert clf.info.format_version == 2 and clf.info.maps_of == "class score" and not clf.info.demo
    assert clf.info.trained_on["licence"].startswith("Apache-2.0")
    assert clf.info.crop == "center"  # it reads the film's centred square, as torchxrayvision does

    films = [*films, *non_square(films)]
    raw = clf.run(preprocess_batch(films, clf.info))
    # the reference: torchxrayvision's model as its loader gives it, on its own input of the same films
    # made by its own preprocessing (centre crop, then resize), non-square films included
    loaded = xrv.models.DenseNet(weights=name, cache_dir=str(weights.parent)).eval()
    x = torch.from_numpy(np.stack([xrv_pipeline(f) for f in films]))
    # on a square film that is the whole film resized, the input these files had before cxr.crop
    np.testing.assert_allclose(x[0].numpy(), xrv_native(resize(films[0].pixels, 224)[None])[0], atol=2e-3)
    with torch.no_grad():
        calibrated = loaded(x).numpy()[:, kept]  # sigmoid then op_norm, as torchxrayvision outputs
    probs, maps = autograd_gradcam(loaded.features, loaded.classifier, x)
    probs, maps = probs[:, kept], maps[:, kept]
    assert 0.02 < probs.min() and probs.max() < 0.98  # not saturated: a real comparison
    assert np.max(np.abs(raw.probs - probs)) <= TOL
    # the thresholds carry op_threshs' meaning: the calibrated output is op_norm(p, threshold)
    assert np.max(np.abs(op_norm(raw.probs, thresholds) - calibrated)) <= TOL
    assert_maps_match(raw.cams, maps)
    # the crop matters on the non-square films: squashed, they would be another input
    squashed = clf.run(preprocess_batch(films[-2:], replace(clf.info, crop="none")))
    assert np.max(np.abs(squashed.probs - probs[-2:])) > 1e-3


@pytest.mark.parametrize("shape", [(200, 300), (300, 200), (200, 301), (201, 300), (301, 200), (300, 201), (64, 64)])
def test_the_centre_crop_is_torchxrayvisions(shape):
    """cxrviewer's ``cxr.crop = "center"`` takes the very pixels ``XRayCenterCrop`` takes, odd sides included."""
    px = np.random.default_rng(0).random(shape, dtype=np.float32)
    np.testing.assert_array_equal(crop(px, "center"), xrv.datasets.XRayCenterCrop()(px[None])[0])


class ArnowengDenseNet121(torch.nn.Module):
    """arnoweng/CheXNet's model.py ``DenseNet121``: torchvision's densenet121 with a Linear + Sigmoid head."""

    def __init__(self, out_size: int) -> None:
        super().__init__()
        self.densenet121 = torchvision.models.densenet121(weights=None)
        n = self.densenet121.classifier.in_features
        self.densenet121.classifier = torch.nn.Sequential(torch.nn.Linear(n, out_size), torch.nn.Sigmoid())

    def forward(self, x):
        return self.densenet121(x)


def imagenet_native(films: np.ndarray) -> np.ndarray:
    """CheXNet's input: the grey film as RGB, ``Normalize(ImageNet mean, std)``."""
    x = np.repeat(np.asarray(films, np.float32)[:, None], 3, axis=1)
    return ((x - np.reshape(IMAGENET_MEAN, (1, 3, 1, 1))) / np.reshape(IMAGENET_STD, (1, 3, 1, 1))).astype(np.float32)


def old_torchvision_keys(state: dict) -> dict:
    """``denselayer1.norm1.weight`` → ``denselayer1.norm.1.weight``, as in the released model.pth.tar
    (PyTorch 0.3), which also has no ``num_batches_tracked``."""
    pattern = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))([12])\.(weight|bias|running_mean|running_var)$")
    out = {}
    for k, v in state.items():
        if k.endswith("num_batches_tracked"):
            continue
        m = pattern.match(k)
        out[f"{m.group(1)}.{m.group(2)}.{m.group(3)}" if m else k] = v
    return out


@pytest.fixture(scope="module")
def chexnet_model():
    model = ArnowengDenseNet121(len(CHEXNET_LABELS))
    realistic(model, 3, imagenet_native)
    torch.nn.init.normal_(model.densenet121.classifier[0].weight, std=1.0 / 32)
    return model.eval()


@pytest.mark.slow
@pytest.mark.parametrize("keys", ["today", "pytorch-0.3"])
def test_chexnet_import_matches_pytorch(tmp_path, films, chexnet_model, keys):
    state = torch.nn.DataParallel(chexnet_model).state_dict()
    assert next(iter(state)).startswith("module.densenet121.features.")
    if keys == "pytorch-0.3":
        state = old_torchvision_keys(state)
        assert "module.densenet121.features.denseblock1.denselayer1.norm.1.weight" in state
    checkpoint = tmp_path / "model.pth.tar"
    torch.save({"epoch": 1, "arch": "densenet121", "state_dict": state, "best_loss": 0.1}, checkpoint)
    out = tmp_path / "chexnet.onnx"

    assert main(["-q", "import-chexnet", str(checkpoint), "--out", str(out)]) == 0

    clf = Classifier.load(out)
    assert clf.info.labels == CHEXNET_LABELS and clf.info.input_size == 224
    assert clf.info.format_version == 2 and not clf.info.demo
    assert clf.info.crop == "none"  # its authors resized the whole film
    raw = clf.run(preprocess_batch(films, clf.info))
    x = torch.from_numpy(imagenet_native(np.stack([resize(f.pixels, 224) for f in films])))
    with torch.no_grad():
        own = chexnet_model(x).numpy()  # arnoweng's forward: Linear + Sigmoid
    dn = chexnet_model.densenet121
    probs, maps = autograd_gradcam(dn.features, dn.classifier[0], x)
    assert 0.02 < own.min() and own.max() < 0.98
    assert np.max(np.abs(raw.probs - own)) <= TOL
    np.testing.assert_allclose(probs, own, atol=1e-6)
    assert_maps_match(raw.cams, maps)


@pytest.mark.slow
def test_an_imported_model_scores_the_samples_in_cxrviewer_score(tmp_path, chexnet_model):
    """Imported with an out-of-distribution guard fitted on real films (the samples, each also
    flipped and shifted: twenty-four films), then scored by the CLI in a subprocess."""
    import cv2

    checkpoint = tmp_path / "model.pth.tar"
    torch.save({"state_dict": torch.nn.DataParallel(chexnet_model).state_dict()}, checkpoint)
    ood = tmp_path / "ood"
    ood.mkdir()
    for p in SAMPLES.glob("*.png"):
        img = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        for i, variant in enumerate((img, cv2.flip(img, 1), np.roll(img, 40, axis=0), np.roll(img, -40, axis=1))):
            cv2.imwrite(str(ood / f"{p.stem}_{i}.png"), variant)
    model = tmp_path / "chexnet.onnx"
    assert main(["-q", "import-chexnet", str(checkpoint), "--out", str(model), "--ood-films", str(ood)]) == 0
    info = Classifier.load(model).info
    assert info.ood is not None and np.isfinite(info.ood.threshold)
    assert "24 films given at import" in info.trained_on["ood_films"]
    out = tmp_path / "r.csv"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "cxrviewer", "score", str(SAMPLES), "--out", str(out),
                           "--model", str(model), "--no-progress"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = list(csv.DictReader(out.open(newline="")))
    assert len(rows) == len(list(SAMPLES.glob("*.png"))) and all(r["status"] == "ok" for r in rows)
    assert [c for c in rows[0] if c in CHEXNET_LABELS] == list(CHEXNET_LABELS)
    assert "DEMO" not in proc.stderr


def test_a_checkpoint_that_does_not_fit_names_what_is_wrong(tmp_path, capsys):
    small = torchvision.models.densenet121(weights=None)
    state = {f"module.densenet121.{k}": v for k, v in small.state_dict().items() if "denseblock4" not in k}
    state["module.densenet121.classifier.0.weight"] = torch.zeros(14, 1024)
    state["module.densenet121.classifier.0.bias"] = torch.zeros(14)
    bad = tmp_path / "model.pth.tar"
    torch.save({"state_dict": state}, bad)
    assert main(["-q", "import-chexnet", str(bad), "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert "does not fit arnoweng's DenseNet121" in err and "denseblock4" in err
    assert not (tmp_path / "m.onnx").exists()
    (tmp_path / "junk.pth.tar").write_bytes(b"not a checkpoint")
    assert main(["-q", "import-chexnet", str(tmp_path / "junk.pth.tar"), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "not a PyTorch checkpoint" in capsys.readouterr().err


def test_unknown_torchxrayvision_weights_are_refused_by_name(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["import-torchxrayvision", "densenet121-res224-foo", "--out", "x.onnx"])
    assert exc.value.code == 2 and "densenet121-res224-all" in capsys.readouterr().err
