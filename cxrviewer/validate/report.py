"""The report of a site validation: ``metrics.json``, ``index.html`` with its figures, and the
summary the terminal shows.

The page is one HTML file with its PNG figures beside it (relative links), its style inline and
nothing fetched from anywhere: it reads offline, from a USB stick or an e-mail attachment.
The figures are drawn with matplotlib (the ``validate`` extra), through its object API (no
pyplot, no global state), imported only here and only when figures are drawn.
"""

from __future__ import annotations

import html
import io
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..classes import display_name
from ..errors import MissingExtraError
from ..storage import atomic_write_bytes
from ..metrics import roc_curve
from ..model_card import describe_training

METRICS_NAME = "metrics.json"
INDEX_NAME = "index.html"
ROC_NAME = "roc.png"
#: Below this many positive films a finding's figures are marked as resting on a handful of films.
FEW_POSITIVES = 5


def figure_class():
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingExtraError(
            "The validation report's figures need matplotlib: pip install 'cxrviewer[validate]'."
        ) from None
    return Figure


#: The names of the report's own figures (:data:`ROC_NAME`, :func:`finding_png`)
FIGURE_NAME = re.compile(r"^(roc|finding-\d{2}-[A-Za-z0-9_-]*)\.png$")


def finding_png(index: int, label: str) -> str:
    return f"finding-{index:02d}-{re.sub(r'[^A-Za-z0-9_-]+', '_', label)}.png"


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _known(y: np.ndarray, s: np.ndarray, i: int) -> tuple[np.ndarray, np.ndarray]:
    keep = ~np.isnan(y[:, i])
    return y[keep, i], s[keep, i]


def draw_roc_overview(labels: Sequence[str], findings: Mapping[str, Any], y: np.ndarray, s: np.ndarray) -> bytes:
    """Every evaluated finding's ROC curve on one plot."""
    Figure = figure_class()
    fig = Figure(figsize=(8.6, 5.0))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="0.7", lw=1, ls="--", label="chance (AUROC 0.5)")
    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    for k, (i, label) in enumerate((i, c) for i, c in enumerate(labels) if c in findings):
        fpr, tpr, _ = roc_curve(*_known(y, s, i))
        m = findings[label]
        ax.plot(fpr, tpr, lw=1.5, color=cmap(k % 20), label=f"{display_name(label)} {m['auroc']:.2f}")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="1 − specificity (false-positive rate)",
           ylabel="sensitivity (true-positive rate)", title="ROC curves (AUROC in the legend)")
    ax.grid(True, color="0.92")
    ax.legend(loc="center left", bbox_to_anchor=(1.03, 0.5), fontsize=8.5, frameon=False)
    fig.tight_layout()
    return _png(fig)


def draw_finding(label: str, m: Mapping[str, Any], y: np.ndarray, s: np.ndarray) -> bytes:
    """One finding: its ROC curve with the model's operating point, and its reliability diagram."""
    Figure = figure_class()
    fig = Figure(figsize=(9.0, 4.2))
    roc, rel = fig.subplots(1, 2)
    fpr, tpr, _ = roc_curve(y, s)
    roc.plot([0, 1], [0, 1], color="0.7", lw=1, ls="--")
    roc.plot(fpr, tpr, color="C0", lw=2, label="ROC")
    if m["sensitivity"] is not None and m["specificity"] is not None:
        roc.plot([1 - m["specificity"]], [m["sensitivity"]], "o", color="C3",
                 label=f"threshold {m['threshold']:.3g}: sens {m['sensitivity']:.2f}, spec {m['specificity']:.2f}")
    ci = m.get("auroc_ci")
    ci_text = f" (95% CI {ci[0]:.2f}–{ci[1]:.2f})" if ci else ""
    roc.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="1 − specificity", ylabel="sensitivity",
            title=f"ROC: AUROC {m['auroc']:.3f}{ci_text}")
    roc.set_aspect("equal")
    roc.grid(True, color="0.92")
    roc.legend(loc="lower right", fontsize=8)

    bins = m["calibration_bins"]
    centres = [(b["low"] + b["high"]) / 2 for b in bins]
    counts = [b["films"] for b in bins]
    width = bins[0]["high"] - bins[0]["low"]
    hist = rel.twinx()
    hist.bar(centres, counts, width=width * 0.9, color="0.85", zorder=0, label="films in bin")
    hist.set_ylabel("films in bin", color="0.45")
    hist.tick_params(axis="y", colors="0.45")
    hist.set_ylim(0, max(counts) * 3 if max(counts) else 1)  # bars in the lower third
    rel.set_zorder(hist.get_zorder() + 1)
    rel.patch.set_visible(False)
    rel.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="perfect calibration")
    pts = [(b["mean_probability"], b["fraction_positive"]) for b in bins if b["films"]]
    rel.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color="C1", label="films (per bin)")
    rel.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="mean predicted probability",
            ylabel="fraction positive", title=f"Reliability: ECE {m['ece']:.3f}, Brier {m['brier']:.3f}")
    rel.grid(True, color="0.92")
    rel.legend(loc="upper left", fontsize=8)
    fig.suptitle(f"{display_name(label)}: {m['positives']} positive of {m['n']} films", fontsize=11)
    fig.tight_layout()
    return _png(fig)


def write_report(report: Path, doc: Mapping[str, Any], y: np.ndarray, s: np.ndarray, figures: bool = True) -> list[Path]:
    """Write ``metrics.json``, the figures and ``index.html`` into ``report``; the files written."""
    written: list[Path] = []
    labels = doc["model"]["labels"]
    findings = doc["findings"]
    pictures: dict[str, str] = {}
    if figures and findings:
        written.append(Path(atomic_write_bytes(report / ROC_NAME, draw_roc_overview(labels, findings, y, s))))
        for i, label in enumerate(labels):
            if label in findings:
                name = finding_png(i, label)
                yy, ss = _known(y, s, i)
                written.append(Path(atomic_write_bytes(report / name, draw_finding(label, findings[label], yy, ss))))
                pictures[label] = name
    text = json.dumps(_json_safe(doc), indent=1, ensure_ascii=False, allow_nan=False) + "\n"
    written.append(Path(atomic_write_bytes(report / METRICS_NAME, text.encode("utf-8"))))
    page = render_html(doc, pictures, ROC_NAME if figures and findings else None)
    written.append(Path(atomic_write_bytes(report / INDEX_NAME, page.encode("utf-8"))))
    return written


def _json_safe(value: Any) -> Any:
    """NaN and infinities as null (JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


# ------------------------------------------------------------------------- text
def _f(value: float | None, digits: int = 2) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _ci(m: Mapping[str, Any]) -> str:
    ci = m.get("auroc_ci")
    return f"[{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "[–]"


def _films_line(films: Mapping[str, Any]) -> str:
    parts = [f"{films['inputs']} given", f"{films['labelled']} listed in the labels file"]
    if films["not_in_labels_file"]:
        parts.append(f"{films['not_in_labels_file']} not in it")
    if films["labels_without_film"]:
        parts.append(f"{films['labels_without_film']} labelled film(s) not among the inputs")
    parts.append(f"{films['evaluated']} evaluated")
    parts.append(f"{films['failed']} failed")
    if films["not_applicable"]:
        parts.append(f"{films['not_applicable']} not applicable")
    return ", ".join(parts)


def _by_reason(skipped: Mapping[str, str]) -> dict[str, list[str]]:
    """Why → the findings not evaluated for that reason, in the model's order."""
    out: dict[str, list[str]] = {}
    for label, why in skipped.items():
        out.setdefault(why, []).append(label)
    return out


def summary_text(doc: Mapping[str, Any], report: Path | str | None = None) -> str:
    """The one-screen summary the terminal shows."""
    model = doc["model"]
    lines = [f"Site validation of {model['model_version']} on {doc['labels_file']['path']} "
             f"({doc['labels_file']['layout']} layout)"]
    if model["demo"]:
        lines.append("DEMO model: its figures mean nothing about any real model.")
    lines.append("films: " + _films_line(doc["films"]))
    unknown = doc["labels_file"]["unknown_labels"]
    if unknown:
        lines.append("labels the model does not have: " + ", ".join(f"{k} ({v})" for k, v in unknown.items()))
    findings = doc["findings"]
    if findings:
        lines.append(f"{'finding':<20} {'n':>6} {'pos':>5}  {'AUROC [95% CI]':<20} {'sens':>5} {'spec':>5} {'ECE':>6}")
        for label, m in findings.items():
            lines.append(f"{display_name(label)[:20]:<20} {m['n']:>6} {m['positives']:>5}  "
                         f"{m['auroc']:.3f} {_ci(m):<14} {_f(m['sensitivity']):>5} {_f(m['specificity']):>5} "
                         f"{_f(m['ece'], 3):>6}")
        lines.append(f"mean AUROC {_f(doc['mean_auroc'], 3)} over {len(findings)} finding(s)")
    else:
        lines.append("no finding has both positive and negative films among those evaluated: no figures")
    if doc["not_evaluated"]:
        lines.append("not evaluated: " + "; ".join(
            f"{', '.join(map(display_name, names))} ({why})" for why, names in _by_reason(doc["not_evaluated"]).items()))
    b = doc["bootstrap"]
    lines.append(f"95% CI: {b['resamples']} bootstrap resamples of {b['clusters']} {b['unit']}s (seed {b['seed']}); "
                 f"ECE: {doc['calibration']['bins']} equal-width bins")
    tuned = doc.get("tuned_model")
    if tuned and tuned.get("path"):
        lines.append(f"thresholds chosen on these films for {len(tuned['chosen'])} finding(s), "
                     f"{len(tuned['kept'])} kept -> {tuned['path']}")
    elif tuned:
        lines.append(f"no model copy written: {tuned.get('why')}")
    if report is not None:
        lines.append(f"report -> {Path(report) / INDEX_NAME}")
    return "\n".join(lines)


# ------------------------------------------------------------------------- HTML
_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1b1f24;background:#f6f7f9}
main{max-width:1180px;margin:0 auto;padding:20px 28px 48px;background:#fff;min-height:100vh}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:28px 0 8px;border-bottom:1px solid #dde1e6;padding-bottom:4px}
h3{font-size:16px;margin:18px 0 6px}
.sub{color:#59636e;margin:0 0 14px}
.demo{background:#fff4e5;border:1px solid #f0b35b;border-radius:6px;padding:10px 14px;margin:12px 0;font-weight:600}
table{border-collapse:collapse;margin:6px 0 10px;font-size:14px}
th,td{padding:4px 10px;border-bottom:1px solid #e6e9ed;text-align:right;white-space:nowrap}
th{background:#f1f3f5;font-weight:600}th:first-child,td:first-child{text-align:left}
td.ci{color:#59636e}td.na{color:#9aa3ad}
.counts td{text-align:right}.counts td:first-child{text-align:left}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(540px,1fr));gap:14px}
figure{margin:0;border:1px solid #e6e9ed;border-radius:6px;padding:6px;background:#fff}
figure img{width:100%;height:auto;display:block}
figcaption{font-size:13px;color:#59636e;padding:4px 4px 0}
.overview{max-width:860px}
.row{display:flex;gap:36px;align-items:flex-start;flex-wrap:wrap}.row section{flex:0 1 auto}
.row section.method{flex:1 1 380px}
.note{color:#3d4650;font-size:14px;max-width:880px}
code{background:#f1f3f5;padding:1px 4px;border-radius:3px}
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _findings_table(findings: Mapping[str, Any]) -> str:
    head = ("<tr><th>finding</th><th>films</th><th>positives</th><th>AUROC</th><th>95% CI</th><th>threshold</th>"
            "<th>sensitivity</th><th>specificity</th><th>Brier</th><th>ECE</th></tr>")
    rows = []
    for label, m in findings.items():
        ci = m.get("auroc_ci")
        ci_text = f"{ci[0]:.3f} – {ci[1]:.3f}" if ci else "–"
        rows.append(
            f"<tr><td><a href=\"#{_e(_anchor(label))}\">{_e(display_name(label))}</a></td><td>{m['n']}</td>"
            f"<td>{m['positives']}{'†' if m['positives'] < FEW_POSITIVES else ''}</td><td><b>{m['auroc']:.3f}</b></td><td class=\"ci\">{ci_text}</td>"
            f"<td>{m['threshold']:.3g}</td><td>{_f(m['sensitivity'])}</td><td>{_f(m['specificity'])}</td>"
            f"<td>{_f(m['brier'], 3)}</td><td>{_f(m['ece'], 3)}</td></tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"


def _anchor(label: str) -> str:
    return "f-" + re.sub(r"[^A-Za-z0-9_-]+", "_", label)


def _subgroup_table(grouping: str, groups: Mapping[str, Any], labels: Sequence[str]) -> str:
    values = list(groups)
    head = "<tr><th>finding</th>" + "".join(
        f"<th>{_e(v)}<br><small>{groups[v]['films']} films</small></th>" for v in values) + "</tr>"
    rows = []
    for label in labels:
        cells = []
        for v in values:
            m = groups[v]["findings"].get(label)
            if m is None:
                cells.append("<td class=\"na\">–</td>")
            else:
                ci = m.get("auroc_ci")
                ci_text = f" <span class=\"ci\">({ci[0]:.2f}–{ci[1]:.2f})</span>" if ci else ""
                few = "†" if m["positives"] < FEW_POSITIVES else ""
                cells.append(f"<td><b>{m['auroc']:.2f}</b>{ci_text}<br><small>{m['positives']}/{m['n']} pos{few}</small></td>")
        if any("na" not in c for c in cells):
            rows.append(f"<tr><td>{_e(display_name(label))}</td>{''.join(cells)}</tr>")
    if not rows:
        return "<p class=\"note\">No subgroup has both positive and negative films of a finding.</p>"
    return f"<table>{head}{''.join(rows)}</table>"


_GROUPINGS = {"view_position": "View position", "sex": "Sex", "age": "Age band (years)"}


def render_html(doc: Mapping[str, Any], pictures: Mapping[str, str], overview: str | None) -> str:
    model, films, lf = doc["model"], doc["films"], doc["labels_file"]
    findings = doc["findings"]
    b = doc["bootstrap"]
    out = [
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        f"<title>Site validation: {_e(model['model_version'])}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>Site validation of {_e(model['model_version'])}</h1>",
        f"<p class=\"sub\">{films['evaluated']} films of <code>{_e(Path(lf['path']).name)}</code> "
        f"({_e(lf['layout'])} layout) · model <code>{_e(Path(model['path']).name)}</code> · "
        f"mean AUROC {_f(doc['mean_auroc'], 3)} over {len(findings)} finding(s)</p>",
    ]
    if model["demo"]:
        out.append("<div class=\"demo\">This is the bundled DEMO model, trained on 74 films: its figures mean "
                   "nothing about any real model. They show what the report looks like.</div>")
    out.append("<div class=\"row\"><section><h2>Films</h2><table class=\"counts\">")
    rows = [
        ("films given", films["inputs"]), ("listed in the labels file", films["labelled"]),
        ("not in the labels file (not scored)", films["not_in_labels_file"]),
        ("labelled films not among the inputs", films["labels_without_film"]),
        ("labels file rows listed twice (first kept)", films["duplicate_label_rows"]),
        ("scored now / already in results.csv", f"{films['scored_now']} / {films['already_scored']}"),
        ("evaluated (status ok)", films["evaluated"]), ("failed (left out)", films["failed"]),
        ("not applicable (left out)", films["not_applicable"]),
    ]
    out.extend(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in rows)
    out.append("</table></section>")
    out.append(
        "<section class=\"method\"><h2>How the figures are made</h2><p class=\"note\">"
        "<b>AUROC</b>: the chance that a positive film scores above a negative one (ties count half). "
        f"<b>95% CI</b>: percentile bootstrap, {b['resamples']} resamples of the {b['clusters']} {_e(b['unit'])}s "
        f"with replacement (seed {b['seed']})"
        f"{'; all films of a patient are drawn together' if b['unit'] == 'patient' else ''}. "
        "<b>Sensitivity, specificity</b> at the model's threshold (probability ≥ threshold is positive). "
        "<b>Brier</b>: mean squared difference of probability and label (0 is perfect). "
        f"<b>ECE</b>: {doc['calibration']['bins']} equal-width probability bins, the films-weighted mean gap "
        "between the fraction positive and the mean probability (0 is perfectly calibrated). "
        f"<b>†</b>: fewer than {FEW_POSITIVES} positive films: the AUROC and its interval rest on a handful of "
        "films.</p></section></div>"
    )
    if lf["unknown_labels"]:
        out.append("<p class=\"note\">Labels the model does not have (films positive): "
                   + ", ".join(f"{_e(k)} ({v})" for k, v in lf["unknown_labels"].items()) + ".</p>")
    if lf["labels_not_in_file"]:
        out.append("<p class=\"note\">Model labels the file has no column for: "
                   + ", ".join(_e(display_name(k)) for k in lf["labels_not_in_file"]) + ".</p>")

    out.append("<h2>Findings</h2>")
    if findings:
        out.append(_findings_table(findings))
    else:
        out.append("<p class=\"note\">No finding has both positive and negative films among those evaluated.</p>")
    if doc["not_evaluated"]:
        out.append("<p class=\"note\">Not evaluated: " + "; ".join(
            f"{_e(', '.join(map(display_name, names)))} ({_e(why)})"
            for why, names in _by_reason(doc["not_evaluated"]).items()) + ".</p>")
    if overview:
        out.append(f"<figure class=\"overview\"><img src=\"{_e(overview)}\" alt=\"ROC curves of every finding\">"
                   "<figcaption>ROC curves: the higher and further left, the better; the dashed line is chance."
                   "</figcaption></figure>")
    if pictures:
        out.append(
            "<h2>Each finding</h2><p class=\"note\">Left: the ROC curve; the red dot is the model's threshold. "
            "Right: the reliability diagram; each orange dot is a probability bin, its mean probability against the "
            "fraction of its films that are positive: on the dashed line the probabilities mean what they say, below it "
            "the model overstates the risk, above it understates it. Grey bars: films in each bin.</p>"
            "<div class=\"grid\">")
        for label, name in pictures.items():
            out.append(
                f"<figure id=\"{_e(_anchor(label))}\"><img src=\"{_e(name)}\" alt=\"ROC curve and reliability diagram "
                f"of {_e(display_name(label))}\"></figure>")
        out.append("</div>")

    subgroups = doc["subgroups"]
    out.append("<h2>Subgroups</h2>")
    if not subgroups:
        out.append("<p class=\"note\">The labels file gives no view position, sex or age.</p>")
    for grouping, groups in subgroups.items():
        out.append(f"<h3>{_e(_GROUPINGS.get(grouping, grouping))}</h3>")
        out.append(_subgroup_table(grouping, groups, model["labels"]))
    out.append("<p class=\"note\">Each cell: AUROC (95% CI) and positives/films of that subgroup; – where the "
               "subgroup lacks positive or negative films; † fewer than 5 positive films. Small subgroups give wide "
               "intervals: compare intervals, not points.</p>")

    tuned = doc.get("tuned_model")
    if tuned and tuned.get("path"):
        out.append("<h2>Thresholds chosen on these films</h2>")
        out.append(f"<p class=\"note\">Written to <code>{_e(tuned['path'])}</code> (the original model is unchanged). "
                   f"Rule: Youden's J where a finding has at least {tuned['min_positives']} positive and "
                   f"{tuned['min_negatives']} negative films; the others keep the model's threshold.</p>")
        if tuned["chosen"]:
            out.append("<table><tr><th>finding</th><th>model's threshold</th><th>chosen here</th></tr>" + "".join(
                f"<tr><td>{_e(display_name(k))}</td><td>{model['thresholds'][k]:.3g}</td><td>{v:.3g}</td></tr>"
                for k, v in tuned["chosen"].items()) + "</table>")
    out.append(f"<h2>Model</h2><p class=\"note\"><code>{_e(model['path'])}</code>, version "
               f"{_e(model['model_version'])}. Trained on (its model card): {_e(describe_training(model['trained_on']))}</p>")
    out.append(f"<p class=\"note\">Machine-readable figures: <a href=\"{METRICS_NAME}\">{METRICS_NAME}</a>; "
               "per-film probabilities: <a href=\"results.csv\">results.csv</a>. Made by cxrviewer validate; "
               "cxrviewer is not a medical device.</p>")
    out.append("</main></body></html>\n")
    return "\n".join(out)
