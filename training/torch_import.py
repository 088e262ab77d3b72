"""Published PyTorch chest X-ray models → the cxrviewer model format (docs/models.md).

``cxr-train import-torchxrayvision NAME`` (torchxrayvision's DenseNet121 weights) and
``cxr-train import-chexnet CHECKPOINT`` (arnoweng/CheXNet's ``model.pth.tar``). Both are
DenseNet121 → ReLU → global average pool → Linear; the export wraps the network so that the ONNX
file honours docs/model-format.md unchanged:

* input ``image`` [N, S, S, 3] NHWC, the film standardized as every model's input is
  (:mod:`cxrviewer.preprocess`) with ``cxr.mean`` = ``cxr.std`` = 0.5, i.e. z = 2x − 1 for a film
  x in [0, 1] (white = dense). The wrapper's first operation turns z into the network's own input:
  torchxrayvision reads one channel on [−1024, 1024] (its ``normalize``: 1024·(2x − 1) = 1024·z);
  CheXNet reads three channels under ImageNet statistics ((x − m_c)/s_c with x = (z + 1)/2). So the
  app, ``score``, the node and Ray keep their one preprocessing path for these models;
* the geometry (``cxr.crop``): torchxrayvision's models read the film's largest centred square
  (its ``XRayCenterCrop`` before ``XRayResizer``), so their files say ``"center"`` and
  ``cxrviewer.preprocess`` crops the same square (their maps then cover that square only);
  CheXNet's authors resized the whole film, so its files say ``"none"``;
* output ``probs`` [N, C]: the sigmoid of the class scores, for the labels the model was trained on
  (torchxrayvision's empty labels are dropped);
* output ``cams`` [N, h, w, C]: Grad-CAM of the class score at the last feature map (after the final
  batch norm and ReLU), ReLU(A·W)/(h·w) — format version 2, as ``cxr-train export`` writes it;
* output ``features`` [N, 1024]: the pooled feature vector.

torchxrayvision's ``op_threshs`` calibration is kept as the per-label thresholds in the metadata:
its ``op_norm`` maps p to 0.5 exactly where p = op_thresh and is monotone, so "p ≥ threshold" here is
"calibrated output ≥ 0.5" there, and the probabilities stay the model's own sigmoid outputs.

PyTorch is imported here only (the ``import`` extra), never by the app.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cxrviewer import contract
from cxrviewer.types import ModelInfo

from .errors import TrainingError, WeightsError

logger = logging.getLogger(__name__)

OPSET = 17
#: ONNX Runtime must match PyTorch to this on the export's own check batch (probabilities, and the
#: maps relative to their peak).
CHECK_TOLERANCE = 1e-4
#: The contract input the imported models take: z = (x − 0.5)/0.5 = 2x − 1 on the [0, 1] film scale.
INPUT_MEAN = 0.5
INPUT_STD = 0.5

#: torchxrayvision's DenseNet121 weights that ``import-torchxrayvision`` takes (all at 224 px).
XRV_WEIGHTS = (
    "densenet121-res224-all",
    "densenet121-res224-nih",
    "densenet121-res224-pc",
    "densenet121-res224-chex",
    "densenet121-res224-rsna",
    "densenet121-res224-mimic_nb",
    "densenet121-res224-mimic_ch",
)
#: What each was trained on (torchxrayvision's README and Cohen et al., "TorchXRayVision: A library
#: of chest X-ray datasets and models", MIDL 2022, arXiv:2111.00595).
XRV_DATA = {
    "densenet121-res224-all": "NIH ChestX-ray14, PadChest, CheXpert, MIMIC-CXR, Google NIH labels, OpenI, RSNA Pneumonia",
    "densenet121-res224-nih": "NIH ChestX-ray14",
    "densenet121-res224-pc": "PadChest (Hospital San Juan, Alicante)",
    "densenet121-res224-chex": "CheXpert (Stanford)",
    "densenet121-res224-rsna": "RSNA Pneumonia Detection Challenge (NIH images, RSNA labels)",
    "densenet121-res224-mimic_nb": "MIMIC-CXR (NegBio labels)",
    "densenet121-res224-mimic_ch": "MIMIC-CXR (CheXpert labeller)",
}
XRV_SOURCE = "torchxrayvision (https://github.com/mlmed/torchxrayvision), pip torchxrayvision"
XRV_LICENCE = ("Apache-2.0 (torchxrayvision's LICENSE, which covers xrv.models); the training datasets have "
               "their own terms of use; the authors mark the models NOT FOR MEDICAL USE")
XRV_PAPER = ("Cohen et al., TorchXRayVision: A library of chest X-ray datasets and models, MIDL 2022 "
             "(arXiv:2111.00595); Cohen et al., On the limits of cross-domain generalization in automated "
             "X-ray prediction, MIDL 2020 (arXiv:2002.02497)")

#: arnoweng/CheXNet's output order (its model.py, CLASS_NAMES).
CHEXNET_LABELS = (
    "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
    "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia",
)
#: ImageNet statistics that arnoweng/CheXNet normalizes with (its model.py, transforms.Normalize).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CHEXNET_SIZE = 224
#: Test-set AUROCs that arnoweng/CheXNet's README reports for its released model ("Our Implemented
#: CheXNet", ten-crop test on its ChestX-ray14 split); mean 0.847 is its "improved model".
CHEXNET_REPORTED_AUROC = {
    "Atelectasis": 0.8294, "Cardiomegaly": 0.9165, "Effusion": 0.8870, "Infiltration": 0.7143,
    "Mass": 0.8597, "Nodule": 0.7873, "Pneumonia": 0.7745, "Pneumothorax": 0.8726,
    "Consolidation": 0.8142, "Edema": 0.8932, "Emphysema": 0.9254, "Fibrosis": 0.8304,
    "Pleural_Thickening": 0.7831, "Hernia": 0.9104,
}
CHEXNET_SOURCE = "arnoweng/CheXNet (https://github.com/arnoweng/CheXNet), model.pth.tar"
CHEXNET_LICENCE = ("none stated: the repository has no licence file and its README names none; ask its "
                   "authors before sharing the weights or this file")

# torchvision < 0.2 (and so arnoweng's 2018 checkpoint) named DenseNet's layers
# ``denselayer1.norm.1.weight``; torchvision today calls them ``denselayer1.norm1.weight``.
_OLD_DENSE_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


def _torch():
    try:
        import torch
    except ImportError:
        raise TrainingError("PyTorch is not installed: run `pip install 'cxrviewer[import]'` "
                            "(it brings torch, torchvision and torchxrayvision).") from None
    return torch


@dataclass(frozen=True)
class Imported:
    """A network ready to export: its trunk (ending at the final batch norm), the kept rows of
    its head, and how the contract input becomes its own input."""

    features: Any  # torch.nn.Module: DenseNet121's ``features`` (conv0 ... norm5)
    weight: np.ndarray  # [C, K]: the Linear head's rows for the kept labels
    bias: np.ndarray  # [C]
    labels: tuple[str, ...]
    channels: int  # 1 (torchxrayvision) or 3 (CheXNet)
    scale: tuple[float, ...]  # per channel: native = z * scale + shift
    shift: tuple[float, ...]
    input_size: int


def contract_wrapper(net: Imported):
    """The ``torch.nn.Module`` exported to ONNX: image [N, S, S, 3] → (probs, cams, features)."""
    torch = _torch()
    nn = torch.nn
    F = torch.nn.functional

    class ContractWrapper(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = net.features
            self.register_buffer("weight", torch.as_tensor(net.weight, dtype=torch.float32))
            self.register_buffer("bias", torch.as_tensor(net.bias, dtype=torch.float32))
            c = net.channels
            self.register_buffer("scale", torch.tensor(net.scale, dtype=torch.float32).reshape(1, c, 1, 1))
            self.register_buffer("shift", torch.tensor(net.shift, dtype=torch.float32).reshape(1, c, 1, 1))
            self.channels = c
            h = net.input_size // contract.CAM_STRIDE
            self.inv_hw = 1.0 / float(h * h)  # the map is h×h: a constant of the graph

        def forward(self, image):
            x = image.permute(0, 3, 1, 2)[:, : self.channels]  # NHWC → NCHW; the 3 channels are copies
            a = F.relu(self.features(x * self.scale + self.shift))  # the last feature map [N, K, h, w]
            pooled = a.mean(dim=(2, 3))
            probs = torch.sigmoid(pooled @ self.weight.t() + self.bias)
            # Grad-CAM of the class score z_c = Σ_k W_ck mean_ij A_kij + b_c: ∂z_c/∂A_kij = W_ck/(h·w)
            cams = F.relu(a.permute(0, 2, 3, 1) @ self.weight.t()) * self.inv_hw
            return probs, cams, pooled

    return ContractWrapper().eval()


def native_input(net: Imported, films: np.ndarray) -> np.ndarray:
    """The network's own input [N, ch, S, S] for films [N, S, S] in [0, 1], computed as its
    authors' code does (for the checks: torchxrayvision's ``normalize``, CheXNet's ImageNet
    ``Normalize`` on the grey film repeated to RGB), not through the wrapper."""
    x = np.asarray(films, dtype=np.float32)[:, None]
    if net.channels == 1:
        return (2.0 * x - 1.0) * 1024.0
    mean = np.asarray(IMAGENET_MEAN, np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(IMAGENET_STD, np.float32).reshape(1, 3, 1, 1)
    return (np.repeat(x, 3, axis=1) - mean) / std


def export(net: Imported, info: ModelInfo, out: str | Path, reference, opset: int = OPSET) -> dict[str, float]:
    """Write the ONNX file with ``info`` as metadata, check it against ``reference`` (the original
    PyTorch model on its own input) and the app's loader; returns the check's max differences."""
    import onnx
    from onnx import helper

    from cxrviewer.model import Classifier

    torch = _torch()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    s = net.input_size
    if s % contract.CAM_STRIDE:
        raise TrainingError(f"input size {s} is not a multiple of {contract.CAM_STRIDE}")
    wrapper = contract_wrapper(net)
    tmp = out.with_name(out.name + ".tmp")
    example = torch.zeros(1, s, s, 3)
    with torch.no_grad(), warnings.catch_warnings():
        # torch ≥ 2.9 calls the TorchScript exporter "legacy"; the torch.export one needs onnxscript,
        # which this extra does not bring, and gives the same graph for this plain feed-forward model
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            wrapper, (example,), str(tmp), input_names=[contract.INPUT_NAME],
            output_names=[contract.PROBS, contract.CAMS, contract.FEATURES],
            dynamic_axes={contract.INPUT_NAME: {0: "N"}, contract.PROBS: {0: "N"}, contract.CAMS: {0: "N"},
                          contract.FEATURES: {0: "N"}},
            opset_version=opset, dynamo=False,
        )
    proto = onnx.load(str(tmp))
    h = s // contract.CAM_STRIDE
    for value in proto.graph.output:  # say the fixed map size, as cxr-train export does
        if value.name == contract.CAMS:
            dims = value.type.tensor_type.shape.dim
            for d in (dims[1], dims[2]):
                d.ClearField("dim_param")
                d.dim_value = h
    proto.doc_string = (f"cxrviewer import of {info.trained_on.get('source', 'a PyTorch model')}: DenseNet121 with "
                        "in-graph Grad-CAM of the class score. Input 'image' [N,S,S,3] (film − 0.5)/0.5; outputs "
                        "'probs' [N,C], 'cams' [N,h,w,C], 'features' [N,1024]. See docs/model-format.md.")
    helper.set_model_props(proto, contract.to_metadata(info))
    onnx.checker.check_model(proto)
    onnx.save(proto, str(tmp))
    try:
        deltas = check_against_torch(net, tmp, reference)
        worst = max(deltas.values())
        if worst > CHECK_TOLERANCE:
            raise TrainingError(f"The exported model disagrees with PyTorch ({deltas}); nothing was written. "
                                "Please report this with your torch/onnxruntime versions.")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    Classifier.load(out, device="cpu")  # the app's own validation of the contract
    logger.info("exported %s (%.1f MB); ONNX Runtime vs PyTorch: %s", out.name, out.stat().st_size / 1e6,
                ", ".join(f"{k} {v:.1e}" for k, v in deltas.items()))
    return deltas


def check_against_torch(net: Imported, onnx_path: str | Path, reference, seed: int = 0) -> dict[str, float]:
    """Max |Δ| between ONNX Runtime (on the contract input) and ``reference`` (the original model on
    its own input) for two seeded smooth films: probabilities, and the maps (relative to their peak)
    against the wrapper's PyTorch maps."""
    import onnxruntime as ort

    from cxrviewer.preprocess import standardize

    torch = _torch()
    s = net.input_size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:s, 0:s] / s
    films = np.stack([np.clip(0.5 + 0.3 * np.sin(6 * xx + k) * np.cos(4 * yy) + 0.05 * rng.normal(size=(s, s)), 0, 1)
                      for k in range(2)]).astype(np.float32)
    z = standardize(films, INPUT_MEAN, INPUT_STD)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    probs, cams, feats = sess.run(list(contract.OUTPUT_NAMES), {contract.INPUT_NAME: z})
    with torch.no_grad():
        ref = reference(torch.from_numpy(native_input(net, films))).numpy()
        t_probs, t_cams, t_feats = (t.numpy() for t in contract_wrapper(net)(torch.from_numpy(z)))
    peak = float(np.max(t_cams)) or 1.0
    return {
        "probs": float(np.max(np.abs(probs - ref))),
        "cams": float(np.max(np.abs(cams - t_cams))) / peak,
        "features": float(np.max(np.abs(feats - t_feats)) / (float(np.max(np.abs(t_feats))) or 1.0)),
        "wrapper_probs": float(np.max(np.abs(t_probs - ref))),
    }


# ------------------------------------------------------------------------- out-of-distribution
#: At most this many films are read for the out-of-distribution statistics (as ``cxr-train export``).
OOD_SAMPLE = 2000
#: The share of them that sets the threshold (the rest fit the model).
OOD_HOLDOUT = 0.2


def add_ood(model: str | Path, films: Sequence[str | Path], sample: int = OOD_SAMPLE, seed: int = 0) -> dict[str, Any]:
    """Fit ``cxr.ood`` (``cxrviewer.ood.fit_ood``, as ``cxr-train export`` does) on the pooled features
    of ``films`` (files or folders of films the model is meant to read: frontal chest films) and write
    it into ``model``; 80% fit the statistics, the other 20% set the threshold (their 99th
    percentile). Films that cannot be read are skipped and counted."""
    from dataclasses import replace

    import onnx
    from onnx import helper

    from cxrviewer.errors import CxrError
    from cxrviewer.io import list_films, read_film
    from cxrviewer.model import Classifier
    from cxrviewer.ood import fit_ood

    path = Path(model)
    clf = Classifier.load(path, device="cpu")
    found = [f for f in list_films(list(films), recursive=True) if not isinstance(f, str)]
    rng = np.random.default_rng(seed)
    if sample and len(found) > sample:
        found = [found[i] for i in sorted(rng.choice(len(found), size=sample, replace=False))]
    feats, skipped = [], 0
    for start in range(0, len(found), 8):
        batch = []
        for f in found[start : start + 8]:
            try:
                batch.append(read_film(f))
            except CxrError as exc:
                skipped += 1
                logger.warning("out-of-distribution statistics: skipped %s (%s)", Path(f).name, exc)
        if batch:
            feats.extend(p.features for p in clf.predict(batch))
    if len(feats) < 10:
        raise TrainingError(f"--ood-films gave {len(feats)} readable films ({skipped} skipped); the "
                            "out-of-distribution statistics need at least 10 (a few hundred are better).")
    f = np.stack(feats)
    order = rng.permutation(len(f))
    n_valid = max(2, int(round(OOD_HOLDOUT * len(f))))
    stats = fit_ood(f[order[n_valid:]], f[order[:n_valid]])
    trained_on = {**dict(clf.info.trained_on),
                  "ood_films": f"{len(f)} films given at import ({skipped} unreadable skipped); threshold at the "
                               f"{stats.percentile:g}th percentile of {n_valid} of them"}
    info = replace(clf.info, ood=stats, trained_on=trained_on)
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    helper.set_model_props(proto, contract.to_metadata(info))
    tmp = path.with_name(path.name + ".tmp")
    onnx.save(proto, str(tmp))
    try:
        Classifier.load(tmp, device="cpu")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    logger.info("out-of-distribution statistics from %d films (rank %d), threshold %.3g", len(f),
                len(stats.variances), stats.threshold)
    return {"films": len(f), "skipped": skipped, "threshold": stats.threshold}


# ------------------------------------------------------------------------------- torchxrayvision
def xrv_model(name: str, weights: str | Path | None = None):
    """torchxrayvision's DenseNet ``name``; from ``weights`` (a file already downloaded) when given,
    else from the package's cache, which it fills from GitHub the first time."""
    _torch()
    try:
        import torchxrayvision as xrv
    except ImportError:
        raise TrainingError("torchxrayvision is not installed: run `pip install 'cxrviewer[import]'`.") from None
    if name not in XRV_WEIGHTS:
        raise TrainingError(f"unknown torchxrayvision weights {name!r}; choose one of {', '.join(XRV_WEIGHTS)}.")
    if weights is None:
        return xrv.models.DenseNet(weights=name)
    w = Path(weights)
    if not w.is_file():
        raise WeightsError(f"Weights file not found: {w}.")
    expected = os.path.basename(xrv.models.model_urls[name]["weights_url"])
    with tempfile.TemporaryDirectory(prefix="cxr-xrv-") as cache:
        # torchxrayvision finds a file of its own name in the cache folder and does not download
        shutil.copyfile(w, Path(cache) / expected)
        try:
            return xrv.models.DenseNet(weights=name, cache_dir=cache)
        except Exception as exc:  # noqa: BLE001 - torch.load raises many types for a wrong file
            raise WeightsError(f"{w.name} is not torchxrayvision's {name} weights file ({str(exc)[:200]}). "
                               f"Pass the file {expected} from {xrv.models.model_urls[name]['weights_url']}.") from None


def from_xrv(model, input_size: int = 224) -> Imported:
    """The parts of a torchxrayvision ``DenseNet`` (weights loaded) that the export needs."""
    labels = list(getattr(model, "pathologies", None) or model.targets)
    head = model.classifier
    if head.weight.shape[0] != len(labels):
        raise TrainingError(f"the model has {head.weight.shape[0]} outputs but {len(labels)} label names")
    keep = [i for i, label in enumerate(labels) if label]
    if not keep:
        raise TrainingError("the model names none of its outputs")
    w = head.weight.detach().cpu().numpy().astype(np.float32)
    b = head.bias.detach().cpu().numpy().astype(np.float32)
    return Imported(
        features=model.features, weight=w[keep], bias=b[keep], labels=tuple(labels[i] for i in keep),
        channels=1, scale=(1024.0,), shift=(0.0,), input_size=int(getattr(model, "input_resolution", input_size)),
    )


def xrv_thresholds(model, labels: Sequence[str]) -> tuple[dict[str, float], list[str]]:
    """Per-label thresholds from ``op_threshs`` (0.5 where it has none), and the labels defaulted."""
    all_labels = list(getattr(model, "pathologies", None) or model.targets)
    op = getattr(model, "op_threshs", None)
    values = op.detach().cpu().numpy().astype(float) if op is not None else np.full(len(all_labels), np.nan)
    out, defaulted = {}, []
    for label in labels:
        t = values[all_labels.index(label)]
        if np.isfinite(t) and 0.0 <= t <= 1.0:
            out[label] = float(t)
        else:
            out[label] = 0.5
            defaulted.append(label)
    return out, defaulted


def import_torchxrayvision(name: str, out: str | Path, weights: str | Path | None = None, model=None,
                           model_version: str | None = None) -> dict[str, Any]:
    """``cxr-train import-torchxrayvision``: ``model`` is for tests (a DenseNet built without download)."""
    if name not in XRV_WEIGHTS:
        raise TrainingError(f"unknown torchxrayvision weights {name!r}; choose one of {', '.join(XRV_WEIGHTS)}.")
    if model is None:
        model = xrv_model(name, weights)
    model = model.eval()
    net = from_xrv(model)
    thresholds, defaulted = xrv_thresholds(model, net.labels)
    try:
        import torchxrayvision as xrv

        version = xrv.__version__
    except ImportError:  # pragma: no cover - model passed in by a caller without the package
        version = "unknown"
    trained_on = {
        "data": XRV_DATA[name],
        "source": f"{XRV_SOURCE} {version}, weights {name}",
        "weights_file": Path(weights).name if weights else name,
        "licence": XRV_LICENCE,
        "paper": XRV_PAPER,
        "reported_auroc": "per dataset in the papers above (Cohen et al. 2020, Table 2 and figures); "
                          "not validated on your films: run `cxrviewer validate` first (docs/models.md)",
        "operating_points": "torchxrayvision op_threshs, stored as the thresholds (its calibrated output is 0.5 "
                            "exactly where the probability equals the threshold)"
                            + (f"; none for {', '.join(defaulted)} (0.5)" if defaulted else ""),
        "input": "one channel on [-1024, 1024] (torchxrayvision normalize) computed in the graph from the "
                 "standardized film; the film's largest centred square (XRayCenterCrop, cxr.crop \"center\") "
                 "resized to 224 with area interpolation (XRayResizer's cv2 engine)",
        "maps": "Grad-CAM of the class score at the last feature map (after norm5 and ReLU)",
    }
    info = ModelInfo(
        labels=net.labels, input_size=net.input_size, mean=INPUT_MEAN, std=INPUT_STD, thresholds=thresholds,
        model_version=model_version or f"torchxrayvision-{version}-{name}", demo=False, trained_on=trained_on,
        metrics={}, format_version=contract.FORMAT_VERSION, crop="center",
    )

    all_labels = list(getattr(model, "pathologies", None) or model.targets)
    keep = [all_labels.index(label) for label in net.labels]

    def reference(x):  # the model's probabilities for the kept labels, as torchxrayvision computes them
        return _torch().sigmoid(model.classifier(_xrv_features(model, x)))[:, keep]

    deltas = export(net, info, out, reference)
    return {"onnx": str(out), "labels": net.labels, "check": deltas, "thresholds": thresholds}


def _xrv_features(model, x):
    """torchxrayvision's ``features2`` without its resolution fix-up (the checks feed 224 px)."""
    torch = _torch()
    a = torch.nn.functional.relu(model.features(x))
    return torch.nn.functional.adaptive_avg_pool2d(a, (1, 1)).flatten(1)


# ------------------------------------------------------------------------------------- CheXNet
def read_chexnet_state(path: str | Path) -> dict[str, Any]:
    """arnoweng's checkpoint as a torchvision ``densenet121`` state dict (``features.*``,
    ``classifier.weight/bias``): ``module.densenet121.`` stripped, pre-0.2 torchvision key names
    (``norm.1``) renamed. Raises :class:`WeightsError` naming what does not fit."""
    torch = _torch()
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"Checkpoint not found: {p}.")
    try:
        # weights_only: a checkpoint is a dict of tensors; nothing in it needs to run code
        ckpt = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for files that are not checkpoints
        raise WeightsError(f"{p.name} is not a PyTorch checkpoint torch can read safely ({str(exc)[:200]}). "
                           "Pass arnoweng/CheXNet's model.pth.tar.") from None
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not state:
        raise WeightsError(f"{p.name} holds no state_dict. Pass arnoweng/CheXNet's model.pth.tar.")
    out: dict[str, Any] = {}
    for key, value in state.items():
        k = key
        for prefix in ("module.", "densenet121."):
            if k.startswith(prefix):
                k = k[len(prefix):]
        m = _OLD_DENSE_KEY.match(k)
        if m:
            k = m.group(1) + m.group(2)
        k = k.replace("classifier.0.", "classifier.")
        out[k] = value
    return out


def chexnet_model(state: dict[str, Any], path_name: str = "the checkpoint"):
    """A torchvision DenseNet121 with arnoweng's head (Linear + Sigmoid) holding ``state`` — every
    weight, or a :class:`WeightsError` naming the first that does not fit."""
    torch = _torch()
    import torchvision

    model = torchvision.models.densenet121(weights=None)
    w = state.get("classifier.weight")
    if w is None or w.ndim != 2:
        raise WeightsError(f"{path_name} has no classifier.0.weight (the Linear head of arnoweng's DenseNet121).")
    model.classifier = torch.nn.Sequential(torch.nn.Linear(w.shape[1], w.shape[0]), torch.nn.Sigmoid())
    want = {k.replace("classifier.0.", "classifier."): v for k, v in model.state_dict().items()}
    state = dict(state)
    for k, v in want.items():  # checkpoints from before PyTorch 0.4.1 have no BatchNorm step counters
        if k.endswith("num_batches_tracked") and k not in state:
            state[k] = v
    missing = [k for k in want if k not in state]
    extra = [k for k in state if k not in want]
    if missing or extra:
        what = (f"lacks {missing[0]}" + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")) if missing else \
               (f"has {extra[0]}, which DenseNet121 does not" + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""))
        raise WeightsError(f"{path_name} does not fit arnoweng's DenseNet121: it {what}. Nothing was loaded.")
    for k, v in want.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise WeightsError(f"{path_name}: {k} has shape {tuple(state[k].shape)}, DenseNet121 needs {tuple(v.shape)}.")
    model.load_state_dict({k.replace("classifier.", "classifier.0."): v for k, v in state.items()}, strict=True)
    return model.eval()


def from_chexnet(model, input_size: int = CHEXNET_SIZE) -> Imported:
    head = model.classifier[0]
    # native_c = (x − m_c)/s_c with x = 0.5·z + 0.5: scale 0.5/s_c, shift (0.5 − m_c)/s_c
    scale = tuple(INPUT_STD / s for s in IMAGENET_STD)
    shift = tuple((INPUT_MEAN - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD))
    return Imported(
        features=model.features, weight=head.weight.detach().cpu().numpy().astype(np.float32),
        bias=head.bias.detach().cpu().numpy().astype(np.float32), labels=CHEXNET_LABELS, channels=3,
        scale=scale, shift=shift, input_size=input_size,
    )


def import_chexnet(checkpoint: str | Path, out: str | Path, model_version: str | None = None) -> dict[str, Any]:
    """``cxr-train import-chexnet``."""
    p = Path(checkpoint)
    state = read_chexnet_state(p)
    n = state.get("classifier.weight")
    if n is not None and n.shape[0] != len(CHEXNET_LABELS):
        raise WeightsError(f"{p.name} has {n.shape[0]} outputs; arnoweng's CheXNet has {len(CHEXNET_LABELS)} "
                           f"({', '.join(CHEXNET_LABELS)}).")
    model = chexnet_model(state, p.name)
    net = from_chexnet(model)
    trained_on = {
        "data": "NIH ChestX-ray14 (arnoweng/CheXNet's split: 70% train, 10% validation, 20% test)",
        "source": CHEXNET_SOURCE,
        "weights_file": p.name,
        "licence": CHEXNET_LICENCE,
        "paper": "Rajpurkar et al., CheXNet, arXiv:1711.05225 (2017); reproduction by Weng, Zhuang, Tian, Liu",
        "reported_auroc": {k: v for k, v in CHEXNET_REPORTED_AUROC.items()},
        "reported_auroc_source": "arnoweng/CheXNet README, 'Our Implemented CheXNet', ten-crop test; mean 0.847 "
                                 "for its improved model. Not validated on your films: run `cxrviewer validate`",
        "input": "ImageNet per-channel normalization of the grey film as RGB, computed in the graph; one pass on "
                 "the whole film resized to 224 (CheXNet averaged ten 224 crops of a 256 resize)",
        "maps": "Grad-CAM of the class score at the last feature map (after norm5 and ReLU)",
        "thresholds": {"method": "fixed", "default": 0.5},
    }
    info = ModelInfo(
        labels=net.labels, input_size=net.input_size, mean=INPUT_MEAN, std=INPUT_STD,
        thresholds={label: 0.5 for label in net.labels}, model_version=model_version or f"chexnet-arnoweng-{p.stem}",
        demo=False, trained_on=trained_on, metrics={}, format_version=contract.FORMAT_VERSION,
        # ChestX-ray14 films are square and arnoweng/CheXNet resized each whole (then ten-crop): the whole film
        crop="none",
    )
    deltas = export(net, info, out, model)
    return {"onnx": str(out), "labels": net.labels, "check": deltas}
