"""Help ▸ About: versions, the model card (the model file's own metadata), the disclaimer."""

from __future__ import annotations

import html

from PySide6 import __version__ as pyside_version
from PySide6.QtCore import Qt, qVersion
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from .. import __version__
from ..model_card import describe_training

DISCLAIMER = (
    "cxrviewer is research software, not a medical device. Its findings are a model's output, "
    "not a diagnosis: they can be wrong, and a film unlike the model's training films makes "
    "them unreliable. Never use them for patient care without a qualified reader."
)


def about_html(card: dict | None) -> str:
    e = html.escape
    parts = [
        f"<h2>cxrviewer {e(__version__)}</h2>",
        "<p>Chest X-ray viewer with per-finding Grad-CAM heatmaps. "
        "Apache-2.0. NIH ChestX-ray14 sample films: Wang et al., CVPR 2017.</p>",
        f"<p style='color:#ffb43c'><b>Disclaimer.</b> {e(DISCLAIMER)}</p>",
    ]
    if card is None:
        parts.append("<p><i>No model loaded.</i></p>")
        versions = {"cxrviewer": __version__}
    else:
        demo = (" <b style='color:#ff6060'>DEMO MODEL — not for diagnosis</b> (for a real model see docs/models.md)"
                if card.get("demo") else "")
        parts.append("<h3>Model card</h3>")
        rows = [
            ("file", card.get("model", "")),
            ("version", f"{card.get('model_version', '')}"),
            ("input", f"{card.get('input_size')}×{card.get('input_size')}×3 {card.get('layout', '')}, "
                      f"mean {card.get('mean', 0):.4f}, std {card.get('std', 0):.4f}"),
            ("precision", card.get("precision", "fp32")),
            ("execution provider", card.get("provider", "")),
            ("trained on", describe_training(card.get("trained_on", {}))),
            ("OOD guard", "yes" if card.get("ood_guard") else "no"),
        ]
        parts.append("<table cellspacing='2' cellpadding='2'>")
        for k, v in rows:
            extra = demo if k == "version" else ""
            parts.append(f"<tr><td><b>{e(k)}</b></td><td>{e(str(v))}{extra}</td></tr>")
        parts.append("</table>")
        parts.append("<h4>Labels</h4><table cellspacing='2' cellpadding='2'>"
                     "<tr><th align='left'>finding</th><th align='right'>threshold</th>"
                     "<th align='right'>validation AUROC</th></tr>")
        metrics = card.get("metrics", {})
        for label in card.get("labels", []):
            t = card.get("thresholds", {}).get(label)
            auc = metrics.get(label)
            parts.append(
                f"<tr><td>{e(label)}</td><td align='right'>{'' if t is None else f'{t:.3f}'}</td>"
                f"<td align='right'>{'' if auc is None else f'{auc:.3f}'}</td></tr>"
            )
        parts.append("</table>")
        others = {k: v for k, v in metrics.items() if k not in card.get("labels", [])}
        if others:
            parts.append("<p>" + ", ".join(f"{e(k)} {v:.3f}" if isinstance(v, float) else f"{e(k)} {e(str(v))}"
                                           for k, v in others.items()) + "</p>")
        versions = dict(card.get("versions", {}))
    versions["Qt"] = qVersion()
    versions["PySide6"] = pyside_version
    parts.append("<h3>Versions</h3><p>" + ", ".join(f"{e(k)} {e(str(v))}" for k, v in versions.items()) + "</p>")
    return "\n".join(parts)


class AboutDialog(QDialog):
    def __init__(self, card: dict | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("aboutDialog")
        self.setWindowTitle("About cxrviewer")
        self.resize(620, 640)
        layout = QVBoxLayout(self)
        self.text = QTextBrowser(self)
        self.text.setOpenExternalLinks(True)
        self.text.setHtml(about_html(card))
        layout.addWidget(self.text)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, Qt.Orientation.Horizontal, self)
        buttons.rejected.connect(self.reject)
        buttons.accepted.connect(self.accept)
        layout.addWidget(buttons)
