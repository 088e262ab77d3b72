"""Load Keras HDF5 weight files into the DenseNet121 + GAP + Dense model — all or nothing.

Two layouts are read with h5py:

* the legacy (Keras 2, and Keras 3 ``model.save("x.h5")``) layout: a ``layer_names`` attribute
  on the root or ``model_weights`` group, one group per layer with ``weight_names``. Layers are
  matched by name; Keras 2 spelled DenseNet's names with ``/`` (``conv1/conv``), Keras 3 with
  ``_`` (``conv1_conv``), and both are accepted. This is the layout of CheXNet-Keras'
  ``best_weights.h5``, the course's ``pretrained_model.h5`` and Keras' ImageNet ``_notop.h5``.
* the Keras 3 ``.weights.h5`` layout (``layers/<auto name>/vars/<i>``), whose group names come
  from the layer classes in model order (``conv2d``, ``conv2d_1``, ...); layers are matched by
  class and order, as Keras itself does.

The head (``predictions``) may be named differently in the file (the course's ``dense_1``): the
one leftover layer with a [K, C] kernel and a [C] bias is taken. Every shape is checked before any
weight is assigned; the first mismatch is raised as a :class:`WeightsError` naming the layer —
never a silent partial load (arnoweng/CheXNet #34: weights that silently fail to load give AUROC 0.5).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import WeightsError
from .layer_names import HEAD_LAYER

logger = logging.getLogger(__name__)

_FIX = ("Only Keras DenseNet121 (include_top=False) + global average pooling + one Dense layer files can "
        "be loaded; nothing was loaded.")


@dataclass(frozen=True)
class FileLayer:
    """One weight-bearing layer in a file: its name there, a matching key, and its arrays."""

    name: str
    key: str
    arrays: tuple[np.ndarray, ...]

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        return [tuple(a.shape) for a in self.arrays]


def read_h5(path: str | Path) -> tuple[str, list[FileLayer]]:
    """(layout, layers in file order) for a legacy or Keras 3 HDF5 weights file."""
    import h5py

    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"Weights file not found: {p}.")
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        raise WeightsError(f"{p.name} is not an HDF5 file ({exc}). Pass a Keras .h5 weights file.") from None
    with f:
        group = f["model_weights"] if "model_weights" in f else f
        if "layer_names" in group.attrs:
            return "legacy", _read_legacy(group)
        if "layers" in f and isinstance(f["layers"], h5py.Group):
            return "keras3", _read_keras3(f["layers"])
    raise WeightsError(
        f"{p.name} is HDF5 but not a Keras weights file (no 'layer_names' attribute, no 'layers' group). "
        "Save the weights with Keras (model.save_weights or model.save('x.h5'))."
    )


def _text(x) -> str:
    return x.decode("utf-8") if isinstance(x, bytes) else str(x)


def _read_legacy(group) -> list[FileLayer]:
    out: list[FileLayer] = []
    for lname in (_text(n) for n in group.attrs["layer_names"]):
        g = group[lname]
        names = [_text(n) for n in g.attrs.get("weight_names", [])]
        # A nested model (e.g. Sequential([DenseNet121, ...])) stores all its layers' weights under
        # one group; the owner of each weight is its name minus the variable part.
        owners: dict[str, list[np.ndarray]] = {}
        for wn in names:
            owner = wn.rsplit("/", 1)[0] if "/" in wn else lname
            owners.setdefault(owner, []).append(np.asarray(g[wn][()]))
        for owner, arrays in owners.items():
            out.append(FileLayer(owner, _normalize(owner), tuple(arrays)))
    return out


def _natural(name: str) -> tuple[str, int]:
    m = re.match(r"^(.*?)(?:_(\d+))?$", name)
    assert m is not None
    return m.group(1), int(m.group(2) or 0)


def _read_keras3(layers_group) -> list[FileLayer]:
    out: list[FileLayer] = []
    for name in sorted(layers_group.keys(), key=_natural):
        g = layers_group[name]
        if "layers" in g:
            out.extend(_read_keras3(g["layers"]))
        if "vars" in g and len(g["vars"]):
            arrays = tuple(np.asarray(g["vars"][str(i)][()]) for i in range(len(g["vars"])))
            out.append(FileLayer(name, _natural(name)[0], arrays))
    return out


def _normalize(name: str) -> str:
    return name.replace("/", "_")


def _snake(class_name: str) -> str:
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", class_name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()


def load_weights(model, path: str | Path, head: str = "require") -> dict[str, int]:
    """Check then assign every weight of ``model`` from ``path``.

    ``head``: ``require`` (import-weights: the file must have a head of the model's class count)
    or ``optional`` (fit --weights: a backbone-only file is fine; a head of another class count is
    skipped with a warning). Returns counts of loaded layers.
    """
    if head not in ("require", "optional"):
        raise ValueError(head)
    p = Path(path)
    layout, file_layers = read_h5(p)
    targets = [layer for layer in model.layers if layer.weights]
    head_layer = model.get_layer(HEAD_LAYER)
    backbone = [layer for layer in targets if layer is not head_layer]
    plan = _match_by_name(p, backbone, file_layers) if layout == "legacy" else _match_by_order(p, backbone, file_layers)
    used = {id(fl) for _, fl in plan}
    leftovers = [fl for fl in file_layers if id(fl) not in used]
    head_src, ignored = _find_head(p, leftovers, head_layer, head)
    if head_src is not None:
        plan.append((head_layer, head_src))
    leftovers = [fl for fl in leftovers if fl is not head_src and fl is not ignored]
    if leftovers:
        extra = leftovers[0]
        raise WeightsError(
            f"{p.name} does not fit DenseNet121 + GAP + Dense: it has weights for layer '{extra.name}' "
            f"(shapes {extra.shapes}) that the model does not have"
            + (f" ({len(leftovers)} such layers)" if len(leftovers) > 1 else "")
            + f". Is it another architecture (DenseNet169/201, extra head layers)? {_FIX}"
        )
    for layer, fl in plan:
        layer.set_weights(list(fl.arrays))
    logger.info("loaded %d layers from %s (%s layout)%s", len(plan), p.name, layout,
                "" if head_src is not None else "; the head was not loaded")
    return {"layers": len(plan), "head": int(head_src is not None)}


def _mismatch(p: Path, layer, fl: FileLayer | None) -> WeightsError:
    want = [tuple(w.shape) for w in layer.weights]
    if fl is None:
        return WeightsError(
            f"{p.name} does not fit DenseNet121 + GAP + Dense: it has no weights for layer '{layer.name}' "
            f"(shapes {want}), the first layer it lacks. {_FIX}"
        )
    return WeightsError(
        f"{p.name} does not fit DenseNet121 + GAP + Dense: its layer '{fl.name}' has shapes {fl.shapes}, "
        f"the model's layer '{layer.name}' needs {want}. {_FIX}"
    )


def _fits(layer, fl: FileLayer) -> bool:
    want = [tuple(w.shape) for w in layer.weights]
    return want == fl.shapes


def _match_by_name(p: Path, backbone, file_layers: list[FileLayer]):
    by_key = {}
    for fl in file_layers:
        by_key.setdefault(fl.key, fl)
    plan = []
    for layer in backbone:
        fl = by_key.get(_normalize(layer.name))
        if fl is None or not _fits(layer, fl):
            raise _mismatch(p, layer, fl)
        plan.append((layer, fl))
    return plan


def _match_by_order(p: Path, backbone, file_layers: list[FileLayer]):
    queues: dict[str, list[FileLayer]] = {}
    for fl in file_layers:
        queues.setdefault(fl.key, []).append(fl)
    plan = []
    for layer in backbone:
        queue = queues.get(_snake(type(layer).__name__), [])
        fl = queue.pop(0) if queue else None
        if fl is None or not _fits(layer, fl):
            raise _mismatch(p, layer, fl)
        plan.append((layer, fl))
    return plan


def _find_head(p: Path, leftovers: list[FileLayer], head_layer, mode: str) -> tuple[FileLayer | None, FileLayer | None]:
    """(the file layer to load into the head, a file head deliberately not loaded)."""
    dense = [fl for fl in leftovers if len(fl.arrays) == 2 and fl.arrays[0].ndim == 2 and fl.arrays[1].ndim == 1]
    named = [fl for fl in dense if fl.key in (HEAD_LAYER, "dense")]
    candidates = named or dense
    want = [tuple(w.shape) for w in head_layer.weights]
    if not candidates:
        if mode == "require":
            raise WeightsError(
                f"{p.name} has no Dense head (a [{want[0][0]}, C] kernel and a [C] bias): it holds a backbone "
                "only. import-weights needs the whole classifier; use the file with `cxr-train fit --weights` "
                "to start training from it instead."
            )
        return None, None
    if len(candidates) > 1:
        raise WeightsError(
            f"{p.name} has {len(candidates)} Dense layers ({', '.join(fl.name for fl in candidates)}); "
            f"the model has one head. {_FIX}"
        )
    fl = candidates[0]
    if fl.shapes != want:
        if mode == "optional" and fl.shapes[0][0] == want[0][0]:
            logger.warning("%s: its head '%s' has %d outputs, the model %d: training a new head.",
                           p.name, fl.name, fl.shapes[1][0], want[1][0])
            return None, fl
        if fl.shapes[0][0] == want[0][0]:
            raise WeightsError(
                f"{p.name}: its head layer '{fl.name}' has {fl.shapes[1][0]} outputs but {want[1][0]} labels "
                "were given. Pass --labels with exactly the file's classes, in its output order."
            )
        raise _mismatch(p, head_layer, fl)
    return fl, None
