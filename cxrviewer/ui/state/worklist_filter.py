"""The worklist's filter: which of the opened films the strip lists.

"All films", "Any positive" (a finding at or above its threshold), "Positive for FINDING",
"Out of distribution" (the model flags the film as unusual), "Not applicable" (the model does not
read the film, by its DICOM header: :mod:`cxrviewer.applicability`; also once scored anyway) or
"Unreadable". Films not scored
yet match only "All films": they appear under a finding's filter once scored, as a folder run
reaches them. The filter hides rows and never reorders them, so it combines with View ▸ Sort
films by suspicion.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .viewer_model import ERROR, NOT_APPLICABLE, SCORED, FilmEntry

ALL, POSITIVE, FINDING, OOD, UNREADABLE = "all", "positive", "finding", "ood", "error"
OUTSIDE = NOT_APPLICABLE


@dataclass(frozen=True)
class FilmFilter:
    """One choice of the filter: ``kind`` (one of the names above) and, for ``FINDING``, its label."""

    kind: str = ALL
    label: str = ""

    def __post_init__(self) -> None:
        if self.kind not in (ALL, POSITIVE, FINDING, OOD, UNREADABLE, OUTSIDE):
            raise ValueError(f"unknown worklist filter {self.kind!r}")
        if (self.kind == FINDING) != bool(self.label):
            raise ValueError("a finding's filter names its label, and only it does")

    @property
    def text(self) -> str:
        return {
            ALL: "All films",
            POSITIVE: "Any positive",
            OOD: "Out of distribution",
            OUTSIDE: "Not applicable",
            UNREADABLE: "Unreadable",
        }.get(self.kind) or f"Positive for {self.label.replace('_', ' ')}"

    def matches(self, entry: FilmEntry) -> bool:
        if self.kind == ALL:
            return True
        if self.kind == UNREADABLE:
            return entry.status == ERROR
        if self.kind == OUTSIDE:
            return entry.status == NOT_APPLICABLE or entry.outside_use is not None
        pred = entry.prediction
        if entry.status != SCORED or pred is None:
            return False
        if self.kind == POSITIVE:
            return bool(pred.positives)
        if self.kind == OOD:
            return bool(pred.ood_flag)
        return self.label in pred.positives


def filter_choices(labels: Sequence[str]) -> tuple[FilmFilter, ...]:
    """The filter's choices for a model with ``labels``, in the order the combo lists them."""
    fixed = (FilmFilter(ALL), FilmFilter(POSITIVE), FilmFilter(OOD), FilmFilter(OUTSIDE), FilmFilter(UNREADABLE))
    return fixed + tuple(FilmFilter(FINDING, label) for label in labels)


def count_text(shown: int, total: int) -> str:
    """"12 of 200 films", or "200 films" when nothing is hidden."""
    noun = "film" if total == 1 else "films"
    return f"{total} {noun}" if shown == total else f"{shown} of {total} {noun}"
