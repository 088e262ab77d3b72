"""The desktop app: the only package that imports PySide6.

Layout (napari-style: a plain model, Qt widgets that listen to it, workers off the UI thread):

- :mod:`.viewer_model` — ``ViewerModel``: the opened films, their status and cached predictions,
  the current film, the display options. Plain Python with tiny callback events; no Qt.
- :mod:`.workers` — ``Worker`` (a ``QRunnable``) with a separate ``WorkerSignals`` ``QObject``
  (``started / progress / result / error / finished``), and the jobs they run: load a model,
  read and score one film, score a folder through :func:`cxrviewer.batch.score_to_csv`.
- :mod:`.film_view`, :mod:`.findings_panel`, :mod:`.film_strip` — the widgets.
- :mod:`.main_window` — menus, status bar, wiring; :mod:`.app` — ``run_app(argv)``.

Every picture of a film comes from :func:`cxrviewer.render.overlay`, the renderer behind
``cxrviewer export``; the film view only converts its RGB array to a ``QImage``.
"""
