"""The run's report (``RUN/report.md``) and its ROC/PR plots, written by evaluation and by int8.

``cxr-train evaluate`` writes the whole report (:func:`render_report`); ``cxr-train export --int8``
replaces its ``## int8`` section only (:func:`update_int8_section`), and a later evaluation keeps
that section from ``RUN/int8.json`` (:func:`saved_int8_section`). Both sides come here, so
neither imports the other. Plots use matplotlib's object API (no pyplot, no display needed).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from .metrics import auroc, pr_curve, roc_curve
from .run import INT8_JSON, REPORT_FILE, Run

logger = logging.getLogger(__name__)

INT8_HEADING = "## int8"


# ----------------------------------------------------------------------------- plots
def plot_curves(path_roc: Path, path_pr: Path, labels: tuple[str, ...], y: np.ndarray, probs: np.ndarray, title: str) -> None:
    """ROC and PR curves of every class with an AUROC, one PNG each (matplotlib, no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    for path, kind in ((path_roc, "roc"), (path_pr, "pr")):
        fig = Figure(figsize=(7, 6), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        for i, c in enumerate(labels):
            a = auroc(y[:, i], probs[:, i])
            if math.isnan(a):
                continue
            if kind == "roc":
                fpr, tpr, _ = roc_curve(y[:, i], probs[:, i])
                ax.plot(fpr, tpr, lw=1.2, label=f"{c} ({a:.3f})")
            else:
                rec, prec, ap = pr_curve(y[:, i], probs[:, i])
                ax.step(rec, prec, where="post", lw=1.2, label=f"{c} (AP {ap:.3f})")
        if kind == "roc":
            ax.plot([0, 1], [0, 1], ls="--", c="0.6", lw=0.8)
            ax.set(xlabel="1 − specificity (FPR)", ylabel="sensitivity (TPR)", title=f"ROC, {title}")
        else:
            ax.set(xlabel="recall (sensitivity)", ylabel="precision (PPV)", title=f"Precision–recall, {title}")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="lower right" if kind == "roc" else "lower left")
        fig.tight_layout()
        fig.savefig(path)


# ----------------------------------------------------------------------------- the evaluation report
def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _rule_text(rule: dict[str, Any] | None) -> str:
    """The threshold rule as a clause of the report's settings line."""
    if not rule or rule.get("method") == "fixed":
        return ""
    text = (f" where they hold at least {rule['min_positives']} positives and {rule['min_negatives']} "
            f"negatives of the label, else the default {rule['default']:g}")
    n = len(rule.get("defaulted", ()))
    return text + (f" (the default for {n} label{'s' if n != 1 else ''}: marked in the table)" if n else "")


def render_report(run: Run, metrics: dict[str, Any]) -> str:
    """``report.md`` for people: settings, per-label AUROC and sensitivity/specificity, confusion, plots."""
    info = run.info
    t = info.get("trained_on", {})
    lines = [f"# Training report: {info.get('model_version', run.path.name)}", ""]
    if info.get("demo"):
        lines += ["> **Demo model.** " + str(t.get("note", "Its predictions mean nothing.")), ""]
    lines += [
        f"- data: {t.get('data', '?')}; {t.get('films', '?')} films of {t.get('patients', '?')} patients",
        f"- split ({t.get('split', {}).get('method', '?')}): "
        + ", ".join(f"{k} {t.get('split', {}).get(k, 0)}" for k in ("train", "valid", "test")),
        f"- input {run.input_size}×{run.input_size}, mean {run.mean:.4f}, std {run.std:.4f} (on the [0, 1] film scale)",
        f"- epochs run: {info.get('epochs_run', '?')} of {info.get('config', {}).get('epochs', '?')}",
        f"- thresholds: {metrics['threshold_method']}"
        + (f" ({metrics['threshold_value']})" if metrics["threshold_value"] is not None else "")
        + ", chosen on the validation films"
        + _rule_text(metrics.get("threshold_rule")),
        "",
    ]
    splits = metrics["splits"]
    header = ["label", "threshold"]
    for name in splits:
        header += [f"{name} AUROC", f"{name} sens/spec"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for c in metrics["labels"]:
        defaulted = c in (metrics.get("threshold_rule") or {}).get("defaulted", ())
        row = [c, _fmt(metrics["thresholds"][c]) + (" (default)" if defaulted else "")]
        for name, m in splits.items():
            at = m["at_threshold"][c]
            row += [_fmt(m["auroc"][c]), f"{_fmt(at['sensitivity'], 2)} / {_fmt(at['specificity'], 2)}"]
        lines.append("| " + " | ".join(row) + " |")
    mean_row = ["**mean**", ""]
    for m in splits.values():
        mean_row += [f"**{_fmt(m['mean_auroc'])}**", ""]
    lines.append("| " + " | ".join(mean_row) + " |")
    lines.append("")
    for name, m in splits.items():
        lines += [f"## Confusion at the thresholds: {name} ({m['films']} films)", "",
                  "| label | TP | FP | FN | TN |", "|---|---|---|---|---|"]
        for c in metrics["labels"]:
            a = m["at_threshold"][c]
            lines.append(f"| {c} | {a['tp']} | {a['fp']} | {a['fn']} | {a['tn']} |")
        lines += ["", f"![ROC {name}](roc_{name}.png) ![PR {name}](pr_{name}.png)", ""]
    if metrics["notes"]:
        lines += ["## Notes", ""] + [f"- {n}" for n in metrics["notes"]] + [""]
    int8 = saved_int8_section(run)  # `export --int8`'s parity report outlives a re-evaluation
    if int8:
        lines += [int8]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the int8 section
def _f(v: Any, digits: int = 4) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def int8_section(result: dict[str, Any]) -> str:
    """The ``## int8`` section of report.md."""
    par, spd, q = result["parity"], result["speed"], result["quantization"]
    status = "**accepted**" if result["accepted"] else "**REJECTED** (the file was not kept)"
    lines = [
        INT8_HEADING, "",
        f"{status}: {result['detail']}.", "",
        f"- file: `{Path(result['model']).name}` ({result['size_mb']['int8']} MB; fp32 {result['size_mb']['fp32']} MB), "
        "`cxr.precision = \"int8\"`, every other metadata key as the fp32 model",
        f"- {q['tool']}: {q['format']}, activations {q['activations']}, weights {q['weights']}; "
        f"{q['quantized_nodes']} backbone {'/'.join(q['quantized_op_types'])} nodes quantized, head and Grad-CAM float32",
        f"- calibration: {q['calibration_films']} training films ({q['calibration_method']})",
        f"- parity on {par['films']} {result['held_out_split']} films: mean AUROC fp32 {_f(par['mean_auroc_fp32'])}, "
        f"int8 {_f(par['mean_auroc_int8'])}, drop {_f(par['mean_auroc_drop'])} (limit {result['max_auroc_drop']:g}); "
        f"max |Δprob| {par['max_abs_delta_prob']:.4f} (mean {par['mean_abs_delta_prob']:.5f}); "
        f"cams max |Δ| {par['cams_max_delta_relative']:.1%} of the peak; features {par['features_max_delta_relative']:.1%}",
        f"- decisions at the thresholds changed: {par['threshold_decisions_changed']} of {par['threshold_decisions']}; "
        f"OOD flags changed: {par['ood_flags_changed']} of {par['films']}",
        f"- speed, one thread, batch 1 (median of {spd['repeats']} side-by-side rounds of {spd['films']} films, "
        f"{spd['cpu_count']} CPUs): fp32 {spd['fp32_films_per_s']:.1f} films/s, int8 {spd['int8_films_per_s']:.1f} films/s "
        f"(×{spd['speedup']:.2f})",
        "",
    ]
    if par["labels_scored"]:
        lines += ["| label | positives | AUROC fp32 | AUROC int8 | Δ |", "|---|---|---|---|---|"]
        for c in par["labels_scored"]:
            a, b = par["auroc_fp32"][c], par["auroc_int8"][c]
            lines.append(f"| {c} | {par['positives'][c]} | {a:.4f} | {b:.4f} | {b - a:+.4f} |")
        lines.append("")
    if par["labels_omitted"]:
        lines += [f"No AUROC (only one label value among these films): {', '.join(par['labels_omitted'])}.", ""]
    return "\n".join(lines)


def saved_int8_section(run: Run) -> str | None:
    """The section for ``RUN/int8.json``, if there is one (evaluate keeps it in a rewritten report)."""
    f = run.file(INT8_JSON)
    if not f.is_file():
        return None
    try:
        return int8_section(json.loads(f.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("%s is unreadable (%s): the report has no int8 section", f, exc)
        return None


def update_int8_section(run: Run, result: dict[str, Any]) -> None:
    """Replace (or add) the ``## int8`` section of ``RUN/report.md``."""
    path = run.file(REPORT_FILE)
    text = path.read_text(encoding="utf-8") if path.is_file() else f"# Training report: {run.info.get('model_version', run.path.name)}\n"
    path.write_text(with_int8_section(text, int8_section(result)), encoding="utf-8")


def with_int8_section(text: str, section: str) -> str:
    """``text`` with its ``## int8`` section (up to the next ``## `` heading) replaced, or ``section`` appended."""
    lines = text.rstrip("\n").split("\n")
    try:
        start = lines.index(INT8_HEADING)
    except ValueError:
        return "\n".join(lines) + "\n\n" + section
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    rest = lines[end:]
    return "\n".join(lines[:start] + section.rstrip("\n").split("\n") + ([""] + rest if rest else [])) + "\n"
