"""File ▸ Open from PACS… and File ▸ Open DICOM CD…

:class:`PacsQueryDialog` searches a PACS (the destination of the PACS preferences, or a DICOMweb
address typed in) with the core's :func:`cxrviewer.dimse.query.find_studies`, lists the studies
in a sortable table and, on a double-click (or Open), retrieves the study's films into the
retrieve cache (:func:`cxrviewer.dimse.retrieve.retrieve_studies`, C-GET or WADO-RS) and opens
them in the window. Search and retrieve run on the session's thread pool as :class:`Worker` s;
the dialog shows their progress and can cancel the retrieve (C-CANCEL). A failed or cancelled
retrieve opens nothing: what had arrived of the series in hand is not kept.

:class:`CdDialog` lists the studies of a DICOMDIR, or of a folder's DICOM files by their headers
(:func:`cxrviewer.io.dicomdir.read_cd`), and opens one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..dimse import parse_destination
from ..dimse.query import Connection, Study, StudyQuery, check_connection, find_prior, find_studies, parse_modalities
from ..dimse.retrieve import DEFAULT_CACHE_BYTES, RetrieveCache, default_cache_dir, retrieve_studies
from ..errors import CxrError, NodeConfigError
from .pacs import TIMEOUT, load_target
from .workers import Worker, WorkerError, WorkerHandle

logger = logging.getLogger(__name__)

COLUMNS = ("Date", "Patient ID", "Patient name", "Description", "Modalities", "Images", "Study Instance UID")
STUDY_ROLE = Qt.ItemDataRole.UserRole


def _date(text: str) -> str:
    return f"{text[:4]}-{text[4:6]}-{text[6:]}" if len(text) == 8 and text.isdigit() else text


def _item(text: str, sort_value=None) -> QTableWidgetItem:
    item = QTableWidgetItem()
    item.setData(Qt.ItemDataRole.DisplayRole, text if sort_value is None else sort_value)
    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
    return item


def retrieve_study(conn: Connection, query: StudyQuery, cache: RetrieveCache, study: Study, *, progress, cancel) -> list[Path]:
    """The films of ``study`` (the series of ``query``'s modalities), from the cache or the PACS."""
    got = retrieve_studies(conn, query, cache, studies=[study], cancel=cancel, progress=progress)
    if not got.files:
        raise CxrError(f"Study {study.StudyInstanceUID} has no {', '.join(query.modalities) or ''} film to open.")
    return got.files


def retrieve_with_prior(conn: Connection, query: StudyQuery, cache: RetrieveCache, study: Study, *, progress,
                        cancel) -> tuple[list[Path], list[Path], Study | None]:
    """The films of ``study`` and of the same patient's previous study (none when there is none)."""
    files = retrieve_study(conn, query, cache, study, progress=progress, cancel=cancel)
    prior = find_prior(conn, study, query.modalities)
    if prior is None:
        return files, [], None
    return files, retrieve_study(conn, query, cache, prior, progress=progress, cancel=cancel), prior


class PacsQueryDialog(QDialog):
    """Search a PACS, list its studies, retrieve and open one."""

    def __init__(self, window, cache: RetrieveCache | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent or window)
        self.setObjectName("pacsQueryDialog")
        self.setWindowTitle("Open from PACS")
        self.window = window
        self._cache = cache
        self._job: Worker | None = None
        self._query: StudyQuery | None = None
        target = load_target(window.store)
        self.calling_ae = target.calling_ae or "CXRVIEWER"

        self.source = QComboBox(self)
        self.source.setObjectName("pacs_source")
        self.source.setEditable(True)
        if target.ae_title.strip() and target.host.strip():
            self.source.addItem(str(target))
        self.source.setToolTip("The PACS of File ▸ PACS destination (AE@HOST:PORT), or a DICOMweb address "
                               "(https://HOST/dicom-web)")
        self.patient_id = QLineEdit(self)
        self.patient_name = QLineEdit(self)
        self.patient_name.setPlaceholderText("DOE^J*")
        self.accession = QLineEdit(self)
        self.study_date = QLineEdit(self)
        self.study_date.setPlaceholderText("20250101-20251231, or today")
        self.modalities = QLineEdit("CR,DX", self)
        for name in ("patient_id", "patient_name", "accession", "study_date", "modalities"):
            getattr(self, name).setObjectName(f"pacs_{name}")
            getattr(self, name).returnPressed.connect(self.search)
        form = QFormLayout()
        form.addRow("PACS", self.source)
        form.addRow("Patient ID", self.patient_id)
        form.addRow("Patient name", self.patient_name)
        form.addRow("Accession number", self.accession)
        form.addRow("Study date", self.study_date)
        form.addRow("Modalities", self.modalities)

        self.test_button = QPushButton("&Test", self)
        self.test_button.setObjectName("pacs_test")
        self.test_button.setToolTip("Ask the PACS whether it answers (C-ECHO; a QIDO-RS search for DICOMweb)")
        self.test_button.clicked.connect(self.test)
        self.search_button = QPushButton("&Search", self)
        self.search_button.setObjectName("pacs_search")
        self.search_button.clicked.connect(self.search)
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setObjectName("pacs_results")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.verticalHeader().setVisible(False)
        self.table.cellDoubleClicked.connect(lambda row, _col: self.open_row(row))
        self.progress = QProgressBar(self)
        self.progress.setObjectName("pacs_progress")
        self.progress.setVisible(False)
        self.status = QLabel("", self)
        self.status.setObjectName("pacs_status")
        self.status.setWordWrap(True)
        self.open_button = QPushButton("&Open", self)
        self.open_button.setObjectName("pacs_open")
        self.open_button.clicked.connect(lambda: self.open_row(self.table.currentRow()))
        self.prior_button = QPushButton("Open with &prior", self)
        self.prior_button.setObjectName("pacs_open_prior")
        self.prior_button.setToolTip("Open the study and the same patient's previous one side by side (View ▸ Compare)")
        self.prior_button.clicked.connect(lambda: self.open_row(self.table.currentRow(), with_prior=True))
        self.cancel_button = QPushButton("Cancel retrieve", self)
        self.cancel_button.setObjectName("pacs_cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        close = QPushButton("Close", self)
        close.clicked.connect(self.reject)

        buttons = QHBoxLayout()
        buttons.addWidget(self.search_button)
        buttons.addWidget(self.test_button)
        buttons.addStretch(1)
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.prior_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addLayout(buttons)
        self.resize(900, 560)

    @property
    def busy(self) -> bool:
        """A search or a retrieve is running."""
        return self._job is not None

    # ------------------------------------------------------------------ inputs
    def connection(self) -> Connection:
        text = self.source.currentText().strip()
        if not text:
            raise NodeConfigError("No PACS is set: give one in File ▸ PACS destination, or type AE@HOST:PORT or a "
                                  "DICOMweb address here.")
        return Connection(parse_destination(text), calling_ae=self.calling_ae, timeout=TIMEOUT)

    def query(self) -> StudyQuery:
        return StudyQuery(patient_id=self.patient_id.text().strip(), patient_name=self.patient_name.text().strip(),
                          accession=self.accession.text().strip(), study_date=self.study_date.text().strip(),
                          modalities=parse_modalities(self.modalities.text() or "CR,DX"))

    def cache(self) -> RetrieveCache:
        if self._cache is None:
            self._cache = RetrieveCache(default_cache_dir(), DEFAULT_CACHE_BYTES)
        return self._cache

    # ------------------------------------------------------------------ jobs
    def _start(self, fn, *args, reports: bool = False, **callbacks) -> Worker:
        worker = Worker(fn, *args, reports=reports)
        worker.handle = WorkerHandle(self, worker, finished=self._finished, **callbacks)
        self._job = worker
        self._busy(True, retrieving=reports)
        self.window.session.pool.start(worker)
        return worker

    def _busy(self, busy: bool, retrieving: bool = False) -> None:
        self.search_button.setEnabled(not busy)
        self.test_button.setEnabled(not busy)
        self.open_button.setEnabled(not busy)
        self.prior_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy and retrieving)
        self.progress.setVisible(busy)
        if busy:
            self.progress.setRange(0, 0)  # busy until the first count comes

    def _finished(self) -> None:
        self._job = None
        self._busy(False)

    def _failed(self, err: WorkerError) -> None:
        self.status.setText(str(err))

    def test(self) -> None:
        if self._job is not None:
            return
        try:
            conn = self.connection()
        except CxrError as exc:
            self.status.setText(str(exc))
            return
        self.status.setText(f"Asking {conn.source}…")
        self._start(check_connection, conn, result=lambda said: self.status.setText(f"✓ {said}"), error=self._failed)

    def search(self) -> None:
        if self._job is not None:
            return
        try:
            conn, query = self.connection(), self.query()
        except CxrError as exc:
            self.status.setText(str(exc))
            return
        self._query = query
        self.status.setText(f"Searching {conn.source}…")
        self._start(find_studies, conn, query, result=self._found, error=self._failed)

    def _found(self, studies: Sequence[Study]) -> None:
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(studies))
        for row, s in enumerate(studies):
            cells = [_item(_date(s.StudyDate)), _item(s.PatientID), _item(s.PatientName.replace("^", " ")),
                     _item(s.StudyDescription), _item(",".join(s.ModalitiesInStudy)),
                     _item("", s.NumberOfStudyRelatedInstances if s.NumberOfStudyRelatedInstances is not None else 0),
                     _item(s.StudyInstanceUID)]
            cells[0].setData(STUDY_ROLE, s)
            for col, item in enumerate(cells):
                self.table.setItem(row, col, item)
        self.table.setSortingEnabled(True)
        self.status.setText(f"{len(studies)} stud{'y' if len(studies) == 1 else 'ies'} found"
                            + ("; double-click one to open it" if studies else ""))
        if studies:
            self.table.selectRow(0)

    def study_at(self, row: int) -> Study | None:
        item = self.table.item(row, 0) if row >= 0 else None
        return item.data(STUDY_ROLE) if item is not None else None

    def open_row(self, row: int, with_prior: bool = False) -> None:
        study = self.study_at(row)
        if study is None or self._job is not None:
            return
        try:
            conn = self.connection()
            query = self._query or self.query()
            cache = self.cache()
        except CxrError as exc:
            self.status.setText(str(exc))
            return
        self.status.setText(f"Retrieving study {study.StudyDescription or study.StudyInstanceUID}…")
        if with_prior:
            self._start(retrieve_with_prior, conn, query, cache, study, reports=True, result=self._retrieved_with_prior,
                        error=self._failed, progress=self._progress)
            return
        self._start(retrieve_study, conn, query, cache, study, reports=True, result=self._retrieved,
                    error=self._failed, progress=self._progress)

    def _progress(self, p) -> None:
        if p.expected:
            self.progress.setRange(0, p.expected)
            self.progress.setValue(min(p.received, p.expected))
        self.progress.setFormat(f"series {min(p.series_done + 1, p.series_total)} of {p.series_total}: %v / %m")

    def _retrieved(self, files: list[Path]) -> None:
        self.status.setText(f"{len(files)} film(s) retrieved")
        if self.window.open_paths(files):
            self.accept()

    def _retrieved_with_prior(self, got: tuple[list[Path], list[Path], Study | None]) -> None:
        files, prior_files, prior = got
        if not self.window.open_paths([*files, *prior_files]):
            return
        w = self.window
        if prior is None:
            w.statusBar().showMessage("No earlier study of this patient on the PACS: the study is open alone.", 10000)
        else:
            # the study in the main view, the prior's first film beside it (View ▸ Compare)
            w.act_compare.setChecked(True)
            if w.compare.active:
                w.compare.show_entry(len(files))
            w.statusBar().showMessage(f"Compared with the prior study of {_date(prior.StudyDate)}", 10000)
        self.accept()

    def cancel(self) -> None:
        if self._job is not None:
            self._job.cancel()
            self.status.setText("Cancelling…")

    def done(self, r: int) -> None:  # noqa: D102 - Qt API: closing cancels a retrieve in hand
        if self._job is not None:
            self._job.cancel()
        super().done(r)


class CdDialog(QDialog):
    """The studies of a DICOMDIR; double-click (or Open) opens one."""

    def __init__(self, window, studies, parent: QWidget | None = None) -> None:
        super().__init__(parent or window)
        self.setObjectName("cdDialog")
        self.setWindowTitle("Open DICOM CD")
        self.window = window
        self.studies = list(studies)
        self.table = QTableWidget(len(self.studies), 6, self)
        self.table.setObjectName("cd_studies")
        self.table.setHorizontalHeaderLabels(("Patient name", "Patient ID", "Date", "Description", "Modalities", "Images"))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        for row, s in enumerate(self.studies):
            cells = [_item(s.PatientName.replace("^", " ")), _item(s.PatientID), _item(_date(s.StudyDate)),
                     _item(s.StudyDescription), _item(",".join(s.modalities)), _item("", len(s.files))]
            cells[0].setData(STUDY_ROLE, row)
            for col, item in enumerate(cells):
                self.table.setItem(row, col, item)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.setSortingEnabled(True)
        self.table.cellDoubleClicked.connect(lambda row, _col: self.open_row(row))
        open_button = QPushButton("&Open", self)
        open_button.clicked.connect(lambda: self.open_row(self.table.currentRow()))
        close = QPushButton("Close", self)
        close.clicked.connect(self.reject)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(open_button)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        self.resize(760, 420)
        if self.studies:
            self.table.selectRow(0)

    def open_row(self, row: int) -> None:
        item = self.table.item(row, 0) if row >= 0 else None
        if item is None:
            return
        study = self.studies[int(item.data(STUDY_ROLE))]
        if self.window.open_paths(list(study.files)):
            self.accept()


def open_pacs_dialog(window) -> PacsQueryDialog:
    """File ▸ Open from PACS…: the dialog, window-modal, not blocking."""
    dialog = PacsQueryDialog(window)
    window.pacs_query_dialog = dialog
    dialog.open()
    return dialog


def open_dicom_cd(window, path: Path | str | None = None) -> CdDialog | None:
    """File ▸ Open DICOM CD…: choose the CD's folder (its DICOMDIR is read; without one, the
    headers of its DICOM files), then a study."""
    from ..io.dicomdir import read_cd

    if path is None:
        path = QFileDialog.getExistingDirectory(window, "Open a DICOM CD (its top folder)", window.prefs.last_folder)
        if not path:
            return None
    try:
        studies = read_cd(path)
    except CxrError as exc:
        QMessageBox.warning(window, "Open DICOM CD", str(exc))
        return None
    if not studies:
        QMessageBox.information(window, "Open DICOM CD", f"{path} holds no DICOM study.")
        return None
    dialog = CdDialog(window, studies)
    window.cd_dialog = dialog
    dialog.open()
    return dialog
