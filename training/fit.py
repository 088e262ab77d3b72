"""``cxr-train fit``: data → patient split + leakage guard → statistics → training → evaluate → export."""

from __future__ import annotations

import datetime as _dt
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import data as data_mod
from .data import Table
from .errors import DataError, TrainingError
from .pipeline import Augment
from .run import HISTORY_FILE, MODEL_FILE, RUN_FILE, SPLITS_FILE, write_json, write_splits
from .split import assert_no_leakage, split_by_patient

logger = logging.getLogger(__name__)

STRATEGIES = ("none", "mirrored", "multiworker")
CACHES = ("auto", "memory", "disk", "none")
#: ``--cache auto`` keeps the resized films in memory below this many bytes, on disk above.
MEMORY_CACHE_LIMIT = 4 * 2**30


@dataclass
class FitConfig:
    """Everything ``fit`` needs; the CLI fills it from its options (docs/training.md)."""

    out: Path
    labels_csv: Path | None = None
    images: Path | None = None
    valid_csv: Path | None = None
    test_csv: Path | None = None
    folders: Path | None = None
    labels: tuple[str, ...] | None = None
    input_size: int = 320
    epochs: int = 10
    batch_size: int = 16
    learning_rate: float = 1e-3
    weights: Path | None = None
    val_frac: float = 0.1
    test_frac: float = 0.1
    seed: int = 0
    uncertain_value: float = 0.0
    uncertain_weight: float = 1.0
    stats_sample: int = 0
    rotation: float = 5.0
    zoom: float = 0.1
    flip: bool = False
    cache: str = "auto"
    strategy: str = "none"
    patience: int = 3
    tensorboard: bool = False
    steps_per_epoch: int | None = None
    demo: bool = False
    model_version: str | None = None
    threshold_method: str = "youden"
    threshold_value: float | None = None
    export: bool = True
    jit_compile: bool = False
    ood_sample: int = 2000


def make_strategy(name: str):
    """A tf.distribute strategy: ``none`` (the default strategy), ``mirrored`` (all local GPUs) or
    ``multiworker`` (MultiWorkerMirroredStrategy; each worker reads ``TF_CONFIG``)."""
    import tensorflow as tf

    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise TrainingError(f"Unknown --strategy {name!r}: use one of {', '.join(STRATEGIES)}.")


def load_table(cfg: FitConfig) -> Table:
    """The training data named by ``--labels-csv/--images`` (+ ``--valid-csv``/``--test-csv``) or ``--folders``."""
    if cfg.folders and cfg.labels_csv:
        raise DataError("Pass either --labels-csv CSV --images DIR, or --folders DIR, not both.")
    if cfg.folders:
        return data_mod.load_folders(cfg.folders, cfg.labels)
    if not cfg.labels_csv or not cfg.images:
        raise DataError("No training data: pass --labels-csv CSV --images DIR (or --folders DIR for class folders).")
    first = data_mod.load_labels_csv(cfg.labels_csv, cfg.images, cfg.labels)
    tables = [first]
    for path, split in ((cfg.valid_csv, "valid"), (cfg.test_csv, "test")):
        if path:
            # the same label columns as the main file, in its order
            tables.append(data_mod.load_labels_csv(path, cfg.images, first.labels, split=split))
    if len(tables) > 1:
        tables[0] = Table(**{**first.__dict__, "records": tuple(
            data_mod.Record(r.path, r.values, r.patient, "train") for r in first.records)})
    return data_mod.merge(tables)


def epoch_logger(epochs: int):
    """A Keras callback that logs one line per epoch (Keras itself runs with verbose=0)."""
    import keras

    class EpochLog(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self._t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            parts = [f"{k} {float(v):.4f}" for k, v in logs.items() if k != "learning_rate"]
            lr = logs.get("learning_rate")
            if lr is not None:
                parts.append(f"lr {float(lr):.1e}")
            logger.info("epoch %d/%d: %s (%.0f s)", epoch + 1, epochs, ", ".join(parts), time.perf_counter() - self._t)

    return EpochLog()


def _cache_for(cfg: FitConfig, out: Path, n: int, split: str):
    mode = cfg.cache
    if mode == "auto":
        mode = "memory" if n * cfg.input_size**2 * 4 <= MEMORY_CACHE_LIMIT else "disk"
    if mode == "memory":
        return "memory"
    if mode == "disk":
        return out / "cache" / f"{split}-{cfg.input_size}"
    return None


def fit(cfg: FitConfig) -> dict[str, Any]:
    """Train a model into ``cfg.out``; returns a summary (paths, counts, metrics)."""
    from .model import check_input_size

    t0 = time.perf_counter()
    size = check_input_size(cfg.input_size)
    if cfg.strategy not in STRATEGIES:
        raise TrainingError(f"Unknown --strategy {cfg.strategy!r}: use one of {', '.join(STRATEGIES)}.")
    if cfg.cache not in CACHES:
        raise TrainingError(f"Unknown --cache {cfg.cache!r}: use one of {', '.join(CACHES)}.")
    if cfg.epochs < 1 or cfg.batch_size < 1:
        raise TrainingError("--epochs and --batch-size must be at least 1.")
    if cfg.weights and not Path(cfg.weights).is_file():
        raise TrainingError(f"--weights {cfg.weights} not found. Pass a local Keras .h5 file (nothing is downloaded).")
    out = Path(cfg.out)
    if (out / MODEL_FILE).exists() or (out / RUN_FILE).exists():
        raise TrainingError(f"{out} already holds a run. Choose a new --out directory (runs are never overwritten).")

    table = load_table(cfg)
    splits = split_by_patient(table.records, cfg.val_frac, cfg.test_frac, cfg.seed)
    assert_no_leakage(splits)
    if not splits["train"]:
        raise DataError("No training films after the split. Add films or lower --val-frac/--test-frac.")
    out.mkdir(parents=True, exist_ok=True)

    import keras
    import tensorflow as tf

    from .loss import make_loss
    from .model import build_classifier
    from .pipeline import batches, film_dataset, pixel_stats
    from .stats import loss_weights

    # Before any TensorFlow op: MultiWorkerMirroredStrategy configures the collective ops, which
    # TensorFlow accepts only at start-up ("Collective ops must be configured at program startup").
    strategy = make_strategy(cfg.strategy)
    keras.utils.set_random_seed(cfg.seed)
    labels = table.labels
    films = {
        name: film_dataset(recs, size, cfg.uncertain_value, cfg.uncertain_weight, _cache_for(cfg, out, len(recs), name))
        for name, recs in splits.items() if recs
    }

    # statistics on training films only
    t_stats = time.perf_counter()
    if cfg.stats_sample and cfg.stats_sample < len(splits["train"]):
        idx = np.random.default_rng(cfg.seed).choice(len(splits["train"]), cfg.stats_sample, replace=False)
        sample = [splits["train"][i] for i in sorted(idx)]
        mean, std, n_stats = pixel_stats(film_dataset(sample, size))
    else:
        mean, std, n_stats = pixel_stats(films["train"])  # this pass also fills the cache
    if not std > 0:
        raise DataError("The training films have zero pixel variance (all one value?); check the images.")
    train_values = np.array([r.values for r in splits["train"]], dtype=np.float32).reshape(-1, len(labels))
    y_train, w_train = data_mod.targets(train_values, cfg.uncertain_value, cfg.uncertain_weight)
    w_pos, w_neg = loss_weights(y_train, w_train)
    logger.info("training statistics from %d films (%.0f s): mean %.4f, std %.4f", n_stats,
                time.perf_counter() - t_stats, mean, std)
    counts = {k: len(v) for k, v in splits.items()}
    absent = [c for i, c in enumerate(labels) if not np.any(y_train[:, i] * w_train[:, i] > 0)]
    if absent:
        logger.warning("no positive training films for: %s", ", ".join(absent))

    version = cfg.model_version or _default_version(cfg, size)
    patients = len({r.patient for r in table.records})
    trained_on = _trained_on(cfg, table, counts, patients)
    run_info = {
        "labels": list(labels),
        "input_size": size,
        "mean": mean,
        "std": std,
        "stats_films": n_stats,
        "model_version": version,
        "demo": bool(cfg.demo),
        "trained_on": trained_on,
        "uncertain_value": cfg.uncertain_value,
        "uncertain_weight": cfg.uncertain_weight,
        "class_weights": {"positive": [float(v) for v in w_pos], "negative": [float(v) for v in w_neg]},
        "threshold_method": cfg.threshold_method,
        "threshold_value": cfg.threshold_value,
        "config": _config_json(cfg),
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    write_json(out / RUN_FILE, run_info)
    write_splits(out / SPLITS_FILE, labels, splits)

    augment = Augment(cfg.rotation, cfg.zoom, cfg.flip)
    batch_size = cfg.batch_size
    if batch_size > counts["train"]:
        logger.warning("--batch-size %d is more than the %d training films: using %d", batch_size, counts["train"], counts["train"])
        batch_size = counts["train"]
    train_ds = batches(films["train"], mean, std, batch_size, size, shuffle=min(counts["train"], 4096),
                       augment=augment, seed=cfg.seed, repeat=True, drop_remainder=True)
    steps = max(1, counts["train"] // batch_size)
    if cfg.steps_per_epoch:
        steps = min(steps, cfg.steps_per_epoch)
    valid_ds = batches(films["valid"], mean, std, batch_size, size, repeat=True) if "valid" in films else None
    monitor = "val_loss" if valid_ds is not None else "loss"

    with strategy.scope():
        model = build_classifier(len(labels), size, cfg.weights)
        model.compile(
            optimizer=keras.optimizers.Adam(cfg.learning_rate),
            loss=make_loss(w_pos, w_neg),
            metrics=[keras.metrics.AUC(multi_label=True, num_labels=len(labels), name="auc")],
            jit_compile=cfg.jit_compile,
        )
        # Create the optimizer's slots now: created inside the first train step they make TF
        # trace DenseNet121's train step twice (~1 minute on a CPU).
        model.optimizer.build(model.trainable_variables)
    if cfg.strategy == "multiworker":
        from .compat import build_from_a_local_batch, reduce_scalars_across_workers

        build_from_a_local_batch(model, train_ds)
        reduce_scalars_across_workers()
    callbacks = [
        keras.callbacks.ModelCheckpoint(str(out / MODEL_FILE), monitor=monitor, save_best_only=True, verbose=0),
        keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=0.1, patience=1, min_lr=1e-6, verbose=0),
        keras.callbacks.EarlyStopping(monitor=monitor, patience=cfg.patience, restore_best_weights=True, verbose=0),
        keras.callbacks.CSVLogger(str(out / HISTORY_FILE)),
        epoch_logger(cfg.epochs),
    ]
    if cfg.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(out / "logs")))
    logger.info("training %s: %d labels, %d px, %d train / %d valid films, %d epochs, batch %d, strategy %s (%d replicas)",
                version, len(labels), size, counts["train"], counts["valid"], cfg.epochs, cfg.batch_size,
                cfg.strategy, strategy.num_replicas_in_sync)
    t_fit = time.perf_counter()
    valid_steps = None
    if valid_ds is not None:  # one pass over the validation films per epoch
        valid_steps = math.ceil(counts["valid"] / batch_size)
        if cfg.steps_per_epoch:
            valid_steps = min(valid_steps, cfg.steps_per_epoch)
    history = model.fit(train_ds, validation_data=valid_ds, epochs=cfg.epochs, steps_per_epoch=steps,
                        validation_steps=valid_steps, callbacks=callbacks, shuffle=False, verbose=0)
    fit_seconds = time.perf_counter() - t_fit
    epochs_run = len(history.history.get("loss", []))
    losses = history.history.get(monitor, [])
    if not (out / MODEL_FILE).is_file() or not any(math.isfinite(v) for v in losses):
        raise TrainingError(f"Training produced no usable model ({monitor} was never finite). "
                            "Lower --learning-rate or check the labels.")
    run_info.update(epochs_run=epochs_run, fit_seconds=round(fit_seconds, 1),
                    best={monitor: float(np.nanmin(losses))})
    write_json(out / RUN_FILE, run_info)

    from .model import load_model

    best = load_model(out / MODEL_FILE)
    summary: dict[str, Any] = {"run": str(out), "model_version": version, "epochs_run": epochs_run,
                               "fit_seconds": round(fit_seconds, 1), "counts": counts, "mean": mean, "std": std}
    from .evaluate import evaluate_run

    summary["metrics"] = evaluate_run(out, model=best)
    if cfg.export:
        from .export import export_run

        summary["onnx"] = str(export_run(out, model=best, ood_sample=cfg.ood_sample))
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    return summary


def _default_version(cfg: FitConfig, size: int) -> str:
    stamp = _dt.date.today().strftime("%Y%m%d")
    return f"{'demo-' if cfg.demo else ''}densenet121-{size}-{stamp}"


def _trained_on(cfg: FitConfig, table: Table, counts: dict[str, int], patients: int) -> dict[str, Any]:
    films = sum(counts.values())
    preset = any(r.split for r in table.records)
    t: dict[str, Any] = {
        "data": table.source,
        "films": films,
        "patients": patients,
        "split": {
            "method": ("preset splits" + (f", valid carved by patient (seed {cfg.seed})" if preset else "")) if preset
            else f"by patient, seed {cfg.seed}, valid {cfg.val_frac:g}, test {cfg.test_frac:g}",
            **counts,
        },
        "skipped_missing": table.skipped_missing,
        "labels_listed": table.rows,
        "input_size": cfg.input_size,
        "epochs": cfg.epochs,
        "initial_weights": Path(cfg.weights).name if cfg.weights else "none (random initialization)",
    }
    if any(v == data_mod.UNCERTAIN for r in table.records for v in r.values):
        t["uncertain"] = {"value": cfg.uncertain_value, "weight": cfg.uncertain_weight}
    if table.notes:
        t["notes"] = list(table.notes)
    if cfg.demo:
        t["note"] = (f"Demo model trained on only {films} films: its predictions mean nothing. "
                     "Do not use it to read radiographs.")
    return t


def _config_json(cfg: FitConfig) -> dict[str, Any]:
    d = asdict(cfg)
    return {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v) for k, v in d.items()}
