"""The app's state, in plain Python: no Qt (an import-linter contract in pyproject.toml checks it,
and tests/ui/test_state_without_qt.py imports it in a process without PySide6).

- :mod:`.viewer_model` — ``ViewerModel``: the opened films, their status and cached predictions,
  the current film, the display options, the measurements; tiny callback events.
- :mod:`.worklist_filter` — the film strip's filter choices and the count's words.
- :mod:`.studies` — the film strip's studies: how films group by patient and study, and the headings.
- :mod:`.status_text` — the status bar's words (film size, window/level, the cursor readout, the
  folder run's message).
- :mod:`.export_choice` — the export dialog's file types and what each one writes.

The widgets in :mod:`cxrviewer.ui` wrap these and listen to their events (napari's split of
``components`` and ``_qt``).
"""
