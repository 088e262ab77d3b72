"""The findings panel: every label of the model with its probability and a heatmap switch.

Rows are sorted by probability; each has a check box (the class's heatmap on/off), a bar with
the threshold marked, and the number. Findings at or above their threshold are highlighted. A
finding whose map is empty says "no activation" (ticking it would draw nothing), and has no
colour swatch. Clicking a row's bar shows that finding's map alone.
Below: "Positives" / "All" / "None", opacity, colormap and contour mode. Above: a warning when
the model flags the film as unusual (out of distribution).

The panel wraps the :class:`~cxrviewer.ui.state.viewer_model.ViewerModel`: it calls its setters and
redraws on its events. Nothing here runs the model: a prediction is computed once per film.
View ▸ Compare gives its second film a panel of its own (``compact``: the findings and the
Positives / All / None buttons; opacity, colormap and contour mode stay the main panel's), over
its own model, so each pane has its own findings and heatmap switches.

A film the model does not read (its DICOM header: :mod:`cxrviewer.applicability`) shows, in
place of the findings, a "Not applicable" panel with the reason and a "Score anyway" button
(:attr:`FindingsPanel.scoreAnywayRequested`: the window asks the session); a film scored anyway
shows its findings under a warning that they lie outside the model's use.
"""

from __future__ import annotations

import logging

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QIcon, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from ..heatmap import COLORMAPS, VISIBLE_LEVEL, colorize, is_empty
from ..model_card import defaulted_thresholds
from ..render import OOD_MARK, class_color, finding_hues, legend_ramp
from ..types import Prediction
from .state.viewer_model import ERROR, NOT_APPLICABLE, QUEUED, READING, ViewerModel

RAMP_CAPTION = "Grad-CAM, one scale for all findings: faint (transparent) → strong"
HUED_CAPTION = ("Several findings: each in its own colour (the swatches; the legend on the film), "
                "one scale: faint (transparent) → strong")

logger = logging.getLogger(__name__)

POSITIVE = QColor(255, 190, 60)
NEGATIVE_BAR = QColor(100, 145, 200)
TRACK = QColor(62, 62, 66)


#: What a row says when its finding's map is empty.
NO_ACTIVATION = "no activation"


class ProbabilityBar(QWidget):
    """A horizontal bar: probability filled, threshold marked with a white tick. A click on it
    asks for this finding's map alone (:attr:`clicked`)."""

    clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.probability: float | None = None
        self.threshold: float | None = None
        self.setMinimumSize(70, 14)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_values(self, probability: float | None, threshold: float | None, default_threshold: bool = False) -> None:
        self.probability, self.threshold = probability, threshold
        if probability is not None and threshold is not None:
            why = (" (the default: the model's validation films had too few cases with and without this "
                   "finding to choose one)" if default_threshold else "")
            self.setToolTip(f"probability {probability:.3f}; threshold {threshold:.3f}{why}\n"
                            "Click: show this finding's map alone")
        else:
            self.setToolTip("")
        self.update()

    @property
    def positive(self) -> bool:
        return self.probability is not None and self.threshold is not None and self.probability >= self.threshold

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return QSize(120, 14)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802 - Qt API
        if event.button() == Qt.MouseButton.LeftButton and self.rect().contains(event.position().toPoint()):
            self.clicked.emit()
        super().mouseReleaseEvent(event)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt API
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        r = QRectF(self.rect()).adjusted(0.5, 2.5, -0.5, -2.5)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(TRACK)
        p.drawRoundedRect(r, 3, 3)
        if self.probability is not None:
            fill = QRectF(r.left(), r.top(), r.width() * float(np.clip(self.probability, 0, 1)), r.height())
            p.setBrush(POSITIVE if self.positive else NEGATIVE_BAR)
            p.drawRoundedRect(fill, 3, 3)
        if self.threshold is not None:
            x = r.left() + r.width() * float(np.clip(self.threshold, 0, 1))
            p.setPen(QPen(QColor(255, 255, 255), 2))
            p.drawLine(int(round(x)), 0, int(round(x)), self.height())
        p.end()


class _Row:
    def __init__(self, label: str, parent: QWidget) -> None:
        self.label = label
        self.check = QCheckBox(label.replace("_", " "), parent)
        self.check.setObjectName(f"toggle_{label}")
        self.check.setToolTip(f"Show the {label.replace('_', ' ')} heatmap")
        self.bar = ProbabilityBar(parent)
        self.value = QLabel("", parent)
        self.value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.value.setMinimumWidth(38)
        font = self.value.font()
        font.setFamily("monospace")
        font.setStyleHint(QFont.StyleHint.Monospace)
        self.value.setFont(font)
        self.note = QLabel("", parent)
        self.note.setObjectName(f"note_{label}")
        self.note.setProperty("muted", True)
        self.note.setMinimumWidth(self.note.fontMetrics().horizontalAdvance(NO_ACTIVATION) + 2)  # never cut


def _swatch(rgb: tuple[int, int, int], size: int = 12) -> QIcon:
    pix = QPixmap(size, size)
    pix.fill(QColor(*rgb))
    return QIcon(pix)


def colormap_ramp(name: str, width: int = 256, height: int = 10, alpha: float | None = None) -> QPixmap:
    """The colormap as a picture; with ``alpha``, blended over grey as the overlay blends it
    (:func:`cxrviewer.render.legend_ramp`), so its faint end shows transparent."""
    if alpha is None:
        ramp = colorize(np.tile(np.linspace(0, 1, width, dtype=np.float32), (height, 1)), name)
    else:
        ramp = legend_ramp(width, height, name, alpha)
    ramp = np.ascontiguousarray(ramp)
    img = QImage(ramp.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()
    return QPixmap.fromImage(img)


class FindingsPanel(QWidget):
    #: "Score anyway" was clicked on a film the model does not read
    scoreAnywayRequested = Signal()

    def __init__(self, model: ViewerModel, parent: QWidget | None = None, *, compact: bool = False) -> None:
        super().__init__(parent)
        self.setObjectName("findingsPanel")
        self.model = model
        self._rows: dict[str, _Row] = {}
        self._order: list[str] = []
        self._syncing = False
        #: the title names the film (two panels on screen: which film is which)
        self.named = False
        #: a second film's panel (View ▸ Compare): the findings only; the notes are the main panel's
        self.compact = compact
        self.brief = compact

        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 8)
        layout.setSpacing(6)

        self.title = QLabel("Findings", self)
        self.title.setObjectName("panelTitle")
        layout.addWidget(self.title)

        self.ood_label = QLabel("", self)
        self.ood_label.setObjectName("oodWarning")
        self.ood_label.setWordWrap(True)
        self.ood_label.setVisible(False)
        layout.addWidget(self.ood_label)

        self.status_label = QLabel("", self)
        self.status_label.setObjectName("findingsStatus")
        self.status_label.setWordWrap(True)
        layout.addWidget(self.status_label)

        # in place of the findings (the same room in the panel): a film the model does not read
        self.not_applicable_area = QWidget(self)
        area = QVBoxLayout(self.not_applicable_area)
        area.setContentsMargins(0, 0, 0, 0)
        self.not_applicable = QFrame(self.not_applicable_area)
        self.not_applicable.setObjectName("notApplicablePanel")
        self.not_applicable.setFrameShape(QFrame.Shape.StyledPanel)
        na = QVBoxLayout(self.not_applicable)
        na.setContentsMargins(8, 8, 8, 8)
        heading = QLabel("Not applicable", self.not_applicable)
        heading.setObjectName("panelTitle")
        na.addWidget(heading)
        self.not_applicable_reason = QLabel("", self.not_applicable)
        self.not_applicable_reason.setObjectName("notApplicableReason")
        self.not_applicable_reason.setWordWrap(True)
        na.addWidget(self.not_applicable_reason)
        note = QLabel("The model was not made for this film: it was not scored and no heatmaps are drawn.",
                      self.not_applicable)
        note.setWordWrap(True)
        note.setProperty("muted", True)
        na.addWidget(note)
        self.score_anyway_button = QPushButton("Score anyway", self.not_applicable)
        self.score_anyway_button.setObjectName("scoreAnyway")
        self.score_anyway_button.setToolTip("Score this film although the model does not read such films; "
                                            "its findings are marked as outside the model's use")
        self.score_anyway_button.clicked.connect(self.scoreAnywayRequested.emit)
        self.score_anyway_button.setVisible(not compact)  # a compare pane's film is scored from the main view
        na.addWidget(self.score_anyway_button)
        area.addWidget(self.not_applicable)
        area.addStretch(1)
        self.not_applicable_area.setVisible(False)
        layout.addWidget(self.not_applicable_area, 1)

        self.outside_label = QLabel("", self)
        self.outside_label.setObjectName("outsideUse")
        self.outside_label.setWordWrap(True)
        self.outside_label.setVisible(False)
        layout.addWidget(self.outside_label)

        self._rows_host = QWidget(self)
        self._grid = QGridLayout(self._rows_host)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setHorizontalSpacing(8)
        self._grid.setVerticalSpacing(3)
        self._grid.setColumnStretch(1, 1)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        host = QWidget(scroll)
        host_layout = QVBoxLayout(host)
        host_layout.setContentsMargins(0, 0, 0, 0)
        host_layout.addWidget(self._rows_host)
        host_layout.addStretch(1)
        scroll.setWidget(host)
        layout.addWidget(scroll, 1)
        self.findings_list = scroll
        self.findings_list.setObjectName("findingsList")

        legend = self.tick_legend = QLabel("white tick = threshold · amber = at or above it", self)
        legend.setObjectName("legend")
        legend.setWordWrap(True)
        legend.setVisible(not compact)
        layout.addWidget(legend)

        self.threshold_note = QLabel("", self)
        self.threshold_note.setObjectName("thresholdNote")
        self.threshold_note.setWordWrap(True)
        self.threshold_note.setVisible(False)
        layout.addWidget(self.threshold_note)

        # -- which heatmaps
        buttons = QHBoxLayout()
        buttons.setSpacing(4)
        self.policy_group = QButtonGroup(self)
        self.policy_group.setExclusive(False)
        self.policy_buttons: dict[str, QPushButton] = {}
        for policy, text, tip in (
            ("positives", "Positives", "Heatmaps of the findings at or above their threshold"),
            ("all", "All", "Every finding's heatmap"),
            ("none", "None", "No heatmaps: the film alone"),
        ):
            b = QPushButton(text, self)
            b.setObjectName(f"policy_{policy}")
            b.setCheckable(True)
            b.setToolTip(tip)
            b.clicked.connect(lambda _checked=False, p=policy: self.model.set_display(policy=p))
            self.policy_group.addButton(b)
            self.policy_buttons[policy] = b
            buttons.addWidget(b)
        layout.addLayout(buttons)

        # -- how they look
        form = QGridLayout()
        form.setHorizontalSpacing(8)
        form.setVerticalSpacing(6)
        form.addWidget(QLabel("Opacity", self), 0, 0)
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal, self)
        self.opacity_slider.setObjectName("opacity")
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setToolTip("Heatmap opacity")
        self.opacity_value = QLabel("", self)
        self.opacity_value.setMinimumWidth(34)
        self.opacity_slider.valueChanged.connect(self._opacity_moved)
        form.addWidget(self.opacity_slider, 0, 1)
        form.addWidget(self.opacity_value, 0, 2)

        form.addWidget(QLabel("Colormap", self), 1, 0)
        self.colormap_combo = QComboBox(self)
        self.colormap_combo.setObjectName("colormap")
        for name in COLORMAPS:
            self.colormap_combo.addItem(QIcon(colormap_ramp(name, 48, 12)), name)
        self.colormap_combo.currentTextChanged.connect(self._colormap_chosen)
        form.addWidget(self.colormap_combo, 1, 1, 1, 2)

        self.contour_check = QCheckBox("Outline regions (contour mode)", self)
        self.contour_check.setObjectName("contourMode")
        self.contour_check.setToolTip("Outline each finding's hot regions in its own colour instead of blending a heatmap")
        self.contour_check.toggled.connect(
            lambda on: self.model.set_display(mode="contour" if on else "heatmap")
        )
        form.addWidget(self.contour_check, 2, 0, 1, 3)

        self.ramp = QLabel(self)
        self.ramp.setObjectName("ramp")
        self.ramp.setScaledContents(True)
        self.ramp.setFixedHeight(10)
        self.ramp_caption = QLabel(RAMP_CAPTION, self)
        self.ramp_caption.setWordWrap(True)
        self.ramp_caption.setObjectName("legend")
        form.addWidget(self.ramp, 3, 0, 1, 3)
        form.addWidget(self.ramp_caption, 4, 0, 1, 3)
        self.look = QWidget(self)  # opacity, colormap, contour: the main panel's alone when compact
        self.look.setLayout(form)
        form.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.look)
        self.look.setVisible(not compact)

        model.events.film.connect(self.refresh)
        model.events.classifier.connect(self.refresh)
        model.events.display.connect(self._display_changed)
        model.events.entry.connect(self._entry_changed)
        self._display_changed()
        self.refresh()

    # ------------------------------------------------------------- queries
    def labels(self) -> list[str]:
        """The labels as listed, top to bottom."""
        return list(self._order)

    def checkbox(self, label: str) -> QCheckBox:
        return self._rows[label].check

    def bar(self, label: str) -> ProbabilityBar:
        return self._rows[label].bar

    def is_highlighted(self, label: str) -> bool:
        return self._rows[label].bar.positive

    def value_label(self, label: str) -> QLabel:
        """The row's number ("0.83")."""
        return self._rows[label].value

    def note_label(self, label: str) -> QLabel:
        """The row's note ("no activation")."""
        return self._rows[label].note

    def note(self, label: str) -> str:
        """What the row says beside its number: "no activation" for an empty map, else ""."""
        return self._rows[label].note.text()

    # ------------------------------------------------------------- refresh
    def _entry_changed(self, index: int) -> None:
        if index == self.model.current:
            self._update_status()

    def _update_applicability(self) -> None:
        """The "Not applicable" panel in place of the findings, or the warning over findings
        scored anyway."""
        entry = self.model.entry
        outside = entry is not None and entry.status == NOT_APPLICABLE and entry.prediction is None
        self.not_applicable_area.setVisible(outside)
        self.findings_list.setVisible(not outside)
        self.not_applicable_reason.setText(f"{entry.outside_use[:1].upper()}{entry.outside_use[1:]}."
                                           if outside and entry.outside_use else "")
        scored_anyway = entry is not None and entry.prediction is not None and bool(entry.outside_use)
        self.outside_label.setText(f"⚠ Scored outside the model's use: {entry.outside_use}. These findings may "
                                   "mean nothing." if scored_anyway else "")
        self.outside_label.setVisible(scored_anyway)

    def set_brief(self, on: bool) -> None:
        """Without the explanatory notes (``True``: while comparing, when two panels share the
        column and every row counts): the tick legend, the default-threshold note and the heatmap
        caption; the findings and the controls stay."""
        self.brief = on
        self.tick_legend.setVisible(not on and not self.compact)
        self._fill(self.model.prediction)

    def set_named(self, on: bool) -> None:
        self.named = on
        self._update_title()

    def _update_title(self) -> None:
        entry = self.model.entry
        self.title.setText(f"Findings — {entry.name}" if self.named and entry is not None else "Findings")
        self.title.setToolTip(str(entry.path) if self.named and entry is not None else "")

    def refresh(self) -> None:
        self._update_title()
        pred = self.model.prediction
        clf = self.model.classifier
        labels: tuple[str, ...]
        if pred is not None:
            labels = tuple(label for label, _p, _t in pred.ranked())
        elif clf is not None:
            labels = tuple(clf.info.labels)
        else:
            labels = ()
        if list(labels) != self._order:
            self._rebuild(labels)
        self._fill(pred)
        self._update_status()

    def _rebuild(self, labels: tuple[str, ...]) -> None:
        for row in self._rows.values():
            for w in (row.check, row.bar, row.value, row.note):
                self._grid.removeWidget(w)
                w.hide()  # gone from the screen now, not when the event loop deletes it
                w.deleteLater()
        self._rows = {}
        self._order = list(labels)
        for i, label in enumerate(labels):
            row = _Row(label, self._rows_host)
            row.check.toggled.connect(lambda on, name=label: self._toggled(name, on))
            row.bar.clicked.connect(lambda name=label: self.show_only(name))
            self._grid.addWidget(row.check, i, 0)
            self._grid.addWidget(row.bar, i, 1)
            self._grid.addWidget(row.value, i, 2)
            self._grid.addWidget(row.note, i, 3)
            self._rows[label] = row
        # as wide as the rows need with the vertical scroll bar showing: a scroll bar never
        # covers the numbers ("0.8" for 0.83 in a short compare panel)
        # (summed by column: rows added to a shown panel count as hidden until the layout shows them)
        rows = list(self._rows.values())
        columns = (
            max((r.check.sizeHint().width() for r in rows), default=0),
            max((max(r.bar.minimumSizeHint().width(), r.bar.minimumWidth()) for r in rows), default=0),
            max((max(r.value.minimumWidth(), r.value.fontMetrics().horizontalAdvance("0.00") + 6) for r in rows), default=0),
            max((r.note.minimumWidth() for r in rows), default=0),
        )
        rows_width = sum(columns) + 3 * self._grid.horizontalSpacing()
        bar = self.findings_list.verticalScrollBar().sizeHint().width()
        self.findings_list.setMinimumWidth(rows_width + bar + 2)

    def _fill(self, pred: Prediction | None) -> None:
        shown = set(self.model.shown_classes())
        contour = self.model.display.mode == "contour"
        # several heatmaps on: each finding in its own colour, its swatch the legend (as in contour mode)
        hued = dict(finding_hues(pred, self.model.shown_classes(), self.model.display.mode))
        self._show_ramp(not contour, bool(hued))
        clf = self.model.classifier
        defaulted = defaulted_thresholds(clf.info.trained_on) if clf is not None else frozenset()
        self._syncing = True
        try:
            for label, row in self._rows.items():
                if pred is not None:
                    p, t = pred.probability(label), pred.thresholds[pred.labels.index(label)]
                    row.bar.set_values(p, t, label in defaulted)
                    row.value.setText(f"{p:.2f}")
                    positive = p >= t
                    row.check.setEnabled(True)
                    row.check.setChecked(label in shown)
                    row.check.setProperty("positive", positive)
                    row.value.setProperty("positive", positive)
                    empty = is_empty(pred, label)
                    row.note.setText(NO_ACTIVATION if empty else "")
                    row.note.setToolTip(
                        f"The model's map for this finding stays under {VISIBLE_LEVEL:.0%} of the film's "
                        "strongest map: there is nothing to show." if empty else ""
                    )
                    # the swatch is the legend: only for a finding that draws an outline
                    swatch = (contour and not empty) or label in hued
                    row.check.setIcon(_swatch(class_color(pred, label)) if swatch else QIcon())
                else:
                    row.note.setText("")
                    row.bar.set_values(None, None)
                    row.value.setText("")
                    row.check.setChecked(False)
                    row.check.setEnabled(False)
                    row.check.setProperty("positive", False)
                    row.value.setProperty("positive", False)
                    row.check.setIcon(QIcon())
                for w in (row.check, row.value):  # re-apply the style sheet for [positive=true]
                    w.style().unpolish(w)
                    w.style().polish(w)
        finally:
            self._syncing = False
        in_list = [label for label in self._rows if label in defaulted]
        if in_list:
            n = len(in_list)
            self.threshold_note.setText(
                ("Every threshold is" if n == len(self._rows) else f"{n} threshold{'s are' if n != 1 else ' is'}")
                + " the default: the model's validation films had too few cases to choose "
                + ("them" if n != 1 else "it") + " from."
            )
        self.threshold_note.setVisible(bool(in_list) and not self.brief)
        if pred is not None and pred.ood_flag:
            score = f" (score {pred.ood_score:.2f})" if pred.ood_score is not None else ""
            self.ood_label.setText(
                f"⚠ {OOD_MARK}{score}. This film does not look like the films the model was "
                "trained on; read the findings with extra care."
            )
            self.ood_label.setVisible(True)
        else:
            self.ood_label.setVisible(False)

    def _update_status(self) -> None:
        entry = self.model.entry
        if self.model.classifier is None:
            text = "No model loaded: File ▸ Load model."
        elif entry is None:
            text = "Open a film: File ▸ Open file (Ctrl+O), or drop files or folders here."
        elif entry.status == ERROR:
            text = f"Could not score this film: {entry.error}"
        elif entry.status == NOT_APPLICABLE:
            text = "Not scored: the model does not read this film."
        elif entry.prediction is None and entry.status in (QUEUED, READING):
            text = "Scoring…"
        elif entry.prediction is not None:
            n = len(entry.prediction.positives)
            text = f"{n} finding{'s' if n != 1 else ''} at or above threshold" if n else "No finding at or above threshold"
        else:
            text = ""
        self.status_label.setText(text)
        self._update_applicability()

    def _display_changed(self) -> None:
        d = self.model.display
        self._syncing = True
        try:
            for policy, b in self.policy_buttons.items():
                b.setChecked(d.policy == policy)
            value = int(round(d.alpha * 100))
            if self.opacity_slider.value() != value:
                self.opacity_slider.setValue(value)
            self.opacity_value.setText(f"{value}%")
            if self.colormap_combo.currentText() != d.colormap:
                self.colormap_combo.setCurrentText(d.colormap)
            self.contour_check.setChecked(d.mode == "contour")
        finally:
            self._syncing = False
        self.ramp.setPixmap(colormap_ramp(d.colormap, alpha=max(d.alpha, 0.05)))
        self._fill(self.model.prediction)

    def _show_ramp(self, heat: bool, hued: bool) -> None:
        """The colormap's ramp for one heatmap; with several, each in its own colour, the caption
        says so (the colormap is then not used)."""
        self.ramp.setVisible(heat and not hued)
        self.ramp_caption.setVisible(heat and not self.brief)
        self.ramp_caption.setText(HUED_CAPTION if hued else RAMP_CAPTION)
        self.colormap_combo.setEnabled(heat and not hued)

    # ------------------------------------------------------------- actions
    def show_only(self, label: str) -> None:
        """Show ``label``'s map alone (a click on its row's bar)."""
        self.model.set_display(policy="custom", custom=(label,))

    def _toggled(self, label: str, on: bool) -> None:
        if not self._syncing:
            self.model.set_class(label, on)

    def _opacity_moved(self, value: int) -> None:
        self.opacity_value.setText(f"{value}%")
        if not self._syncing:
            self.model.set_display(alpha=value / 100.0)

    def _colormap_chosen(self, name: str) -> None:
        if not self._syncing and name:
            self.model.set_display(colormap=name)
