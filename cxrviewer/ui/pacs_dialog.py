"""File ▸ PACS destination and File ▸ Send to PACS: one dialog over the saved :class:`PacsTarget`.

The dialog edits the destination (AE title, host, port, our calling AE title, which result
objects) and tests it with a C-ECHO; opened to send, it also sends. The work is the session's
(:meth:`FilmSession.echo_pacs`, :meth:`FilmSession.send_to_pacs`), on its pool: the dialog only
shows what the session says. :class:`PacsActions` keeps the Send action's state and tooltip.
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..errors import CxrError
from .pacs import KINDS, PacsTarget, load_target, save_target, send_reason

SEND_TIP = "Send the film's results (SR, Presentation State, Secondary Capture) to the PACS set in File ▸ PACS destination"


class PacsDialog(QDialog):
    """The destination's fields, a Test (C-ECHO) button and, with ``send=True``, a Send button."""

    def __init__(self, session, target: PacsTarget, parent: QWidget | None = None, *, send: bool = False) -> None:
        super().__init__(parent)
        self.setObjectName("pacsDialog")
        self.setWindowTitle("Send to PACS" if send else "PACS destination")
        self.session = session
        self.ae = QLineEdit(target.ae_title, self)
        self.ae.setPlaceholderText("e.g. ORTHANC")
        self.host = QLineEdit(target.host, self)
        self.host.setPlaceholderText("e.g. pacs.hospital.local")
        self.port = QSpinBox(self)
        self.port.setRange(1, 65535)
        self.port.setValue(target.port)
        self.calling = QLineEdit(target.calling_ae, self)
        self.kinds = {k: QCheckBox(f"{k.upper()} — {name}", self) for k, (_fmt, name) in KINDS.items()}
        for k, box in self.kinds.items():
            box.setChecked(k in target.outputs)
        for name, w in (("ae", self.ae), ("host", self.host), ("port", self.port), ("calling", self.calling)):
            w.setObjectName(f"pacs_{name}")

        form = QFormLayout()
        form.addRow("PACS AE title", self.ae)
        form.addRow("Host", self.host)
        form.addRow("Port", self.port)
        form.addRow("Our AE title (calling)", self.calling)
        objects = QVBoxLayout()
        for box in self.kinds.values():
            objects.addWidget(box)
        form.addRow("Send", objects)

        self.test_button = QPushButton("Test (C-ECHO)", self)
        self.test_button.setObjectName("pacsTest")
        self.test_button.clicked.connect(self.test)
        self.result = QLabel("", self)
        self.result.setObjectName("pacsResult")
        self.result.setWordWrap(True)
        test_row = QHBoxLayout()
        test_row.addWidget(self.test_button)
        test_row.addWidget(self.result, 1)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel, self)
        self.ok = self.buttons.addButton("Send" if send else "Save", QDialogButtonBox.ButtonRole.AcceptRole)
        self.ok.setObjectName("pacsSend" if send else "pacsSave")
        self.buttons.accepted.connect(self._accept)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(test_row)
        layout.addWidget(self.buttons)
        self.setMinimumWidth(460)
        session.pacsEchoed.connect(self._echoed)

    def target(self) -> PacsTarget:
        return PacsTarget(
            self.ae.text().strip(), self.host.text().strip(), self.port.value(), self.calling.text().strip(),
            tuple(k for k, box in self.kinds.items() if box.isChecked()),
        )

    def test(self) -> None:
        """C-ECHO the destination in the fields, off the UI thread; the answer lands in the label."""
        target = self.target()
        try:
            target.check()
        except CxrError as exc:
            self._echoed(False, str(exc))
            return
        self.test_button.setEnabled(False)
        self.result.setText(f"Testing {target}…")
        self.session.echo_pacs(target)

    def _echoed(self, ok: bool, message: str) -> None:
        self.test_button.setEnabled(True)
        self.result.setProperty("ok", ok)
        self.result.setStyleSheet("color: #2e7d32;" if ok else "color: #c62828;")
        self.result.setText(("✓ " if ok else "✗ ") + message)

    def _accept(self) -> None:
        try:
            self.target().check()
        except CxrError as exc:
            self._echoed(False, str(exc))
            return
        self.accept()

    def done(self, r: int) -> None:
        # closed: stop listening to the session, which outlives the dialog
        try:
            self.session.pacsEchoed.disconnect(self._echoed)
        except (RuntimeError, TypeError):
            pass
        super().done(r)


class PacsActions:
    """File ▸ PACS destination / Send to PACS on ``window``: the saved target, the dialogs, the status line."""

    def __init__(self, window) -> None:
        self.window = window
        self.dialog: PacsDialog | None = None
        window.session.sentToPacs.connect(lambda sent: window.statusBar().showMessage(sent.line(), 15000))

    def target(self) -> PacsTarget:
        return load_target(self.window.store)

    def sync(self) -> None:
        """Send is enabled for a scored DICOM film; otherwise its tooltip says why not."""
        w = self.window
        why = send_reason(w.model.film, w.model.prediction)
        w.act_send_pacs.setEnabled(why is None)
        w.act_send_pacs.setToolTip(SEND_TIP if why is None else why)

    def open(self, send: bool = False) -> PacsDialog:
        """Show the dialog (window-modal, not blocking); Save keeps the target, Send also sends."""
        w = self.window
        self.dialog = PacsDialog(w.session, self.target(), w, send=send)

        def accepted() -> None:
            target = self.dialog.target()
            save_target(w.store, target)
            if send:
                w.statusBar().showMessage(f"Sending to {target}…", 15000)
                w.session.send_to_pacs(target)

        self.dialog.accepted.connect(accepted)
        self.dialog.open()
        return self.dialog
