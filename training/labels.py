"""The label vocabulary: the ChestX-ray14 findings and the raw value of an uncertain label.

Apart from :mod:`training.data` (which reads films with the app's reader) so that the metrics,
which leave uncertain labels out, need nothing but NumPy.
"""

from __future__ import annotations

#: The raw value of an uncertain label (CheXpert, MIMIC-CXR); one value with the metrics that leave it out.
from cxrviewer.metrics import UNCERTAIN  # noqa: F401 - re-exported

#: The 14 ChestX-ray14 findings in the order the models here use (alphabetical, as the course CSVs).
NIH_LABELS: tuple[str, ...] = (
    "Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion", "Emphysema", "Fibrosis",
    "Hernia", "Infiltration", "Mass", "Nodule", "Pleural_Thickening", "Pneumonia", "Pneumothorax",
)
NO_FINDING = "No Finding"
