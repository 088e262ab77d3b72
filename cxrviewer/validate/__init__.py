"""Site validation: how a model does on a site's own labelled films (``cxrviewer validate``).

A department's first check before relying on a model: AUROC with a bootstrap confidence interval
(patients resampled when the labels say who they are), sensitivity and specificity at the
model's thresholds, calibration (Brier score, expected calibration error, reliability
diagrams), the same per view position, sex and age band, and optionally a copy of the model with
thresholds chosen on these films by training's rule. The films are scored by
:func:`cxrviewer.batch.score_to_csv` (the path of ``cxrviewer score``, resumed the same way).

- :mod:`.labels`: the labels file (NIH ``Data_Entry_2017`` layout or one-hot), matched by file name
- :mod:`.stats`: the figures (NumPy only)
- :mod:`.tune`: the model copy with the site's thresholds (the ``onnx`` package)
- :mod:`.report`: ``metrics.json``, ``index.html`` and its figures (matplotlib), the terminal summary
- :mod:`.site`: :func:`validate`, the whole run

No Qt, no TensorFlow; matplotlib and onnx come with the ``validate`` extra and load only when used.
"""

from __future__ import annotations

from .labels import LabelTable, read_labels
from .report import summary_text
from .site import RESULTS_NAME, Validation, validate
from .stats import Bootstrap

__all__ = ["Bootstrap", "LabelTable", "RESULTS_NAME", "Validation", "read_labels", "summary_text", "validate"]
