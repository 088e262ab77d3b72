"""Scoring at archive scale: the same per-film work as :mod:`cxrviewer.batch` on a Ray cluster.

:func:`~cxrviewer.scale.ray_engine.score_on_ray` streams the films through Ray Data actors that
each hold one model session and run :func:`cxrviewer.batch.score_films` (read → preprocess →
model → row), while the driver writes the rows to the same resumable results (a CSV, or a folder
of Parquet shards: :mod:`cxrviewer.results`). Ray comes with the ``ray`` extra and is imported
only when this engine runs; the local thread pool needs none of it. See docs/scale.md.
"""

from .ray_engine import RayOptions, score_on_ray

__all__ = ["RayOptions", "score_on_ray"]
