"""The desktop app: the only package that imports PySide6.

Layout (napari-style: a plain model, Qt widgets that listen to it, jobs off the UI thread):

- :mod:`.session` — ``FilmSession``: jobs, film cache, model loading, folder runs, export; no
  widgets: it writes into the model and emits what happened.
- :mod:`.state` — the app's state in plain Python, no Qt (contract-checked): ``ViewerModel`` (the
  opened films, their status and cached predictions, the current film, the display options; tiny
  callback events), the worklist filter, the status bar's words, the export choices.
- :mod:`.render_scheduler` — coalesced renders off the UI thread; :mod:`.workers` — ``Worker``
  (a ``QRunnable``) with a separate ``WorkerSignals`` ``QObject`` and the jobs they run.
- :mod:`.film_view`, :mod:`.findings_panel`, :mod:`.film_strip` — the widgets;
  :mod:`.actions` — the menu table; :mod:`.main_window` — layout, dialogs, status bar;
  :mod:`.app` — ``run_app(argv)``.

Every picture of a film comes from :func:`cxrviewer.render.overlay`, the renderer behind
``cxrviewer export``; the film view only converts its RGB array to a ``QImage``.
"""
