"""The film strip's studies: which opened films belong together, in what order, under what heading.

A DICOM film names its study in its header (PS3.3 C.7.2.1 General Study Module): the Study
Instance UID, the Study Date and the Study Description; the patient is a hash of the Patient ID
(:func:`cxrviewer.io.dicom_header.patient_key`), so that nothing here says who. A chest study is
often a frontal (PA or AP) and a lateral film: :func:`group_films` lists them together, frontal
first, one patient's studies newest first. Films without a study (PNG, JPEG, a DICOM file
without a Study Instance UID) are listed last, under "Other films", in the order they have.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: the heading of the films without a study
OTHER = "Other films"

#: View Position (PS3.3 C.8.11.5.1.1 / C.8.1.1.1.1) ranks: frontal views first, then laterals,
#: then the rest (oblique, unknown)
_VIEW_RANK = {"PA": 0, "AP": 1, "LL": 2, "RL": 2, "LAT": 2, "LATERAL": 2}


@dataclass(frozen=True)
class StudyKey:
    """One study of one patient: ``patient`` is a hash of the Patient ID, never the ID."""

    patient: str
    uid: str
    date: str = ""  # DA, YYYYMMDD
    description: str = ""


def study_of(metadata: Mapping[str, Any]) -> StudyKey | None:
    """The study a film's metadata (:attr:`cxrviewer.types.Film.metadata`, or the header facts of
    :func:`cxrviewer.io.dicom_header.read_study_facts`) names; ``None`` without a Study Instance UID."""
    uid = str(metadata.get("study_uid") or "")
    if not uid:
        return None
    return StudyKey(str(metadata.get("patient_key") or ""), uid, str(metadata.get("study_date") or ""),
                    str(metadata.get("study_description") or ""))


def view_rank(view_position: str) -> int:
    """0 for PA, 1 for AP, 2 for a lateral view, 3 for anything else."""
    return _VIEW_RANK.get(view_position.strip().upper(), 3)


@dataclass(frozen=True)
class StudyGroup:
    """One heading of the strip and the films listed under it (indices into the model's entries)."""

    key: StudyKey | None  # None: "Other films"
    films: tuple[int, ...]

    @property
    def heading(self) -> str:
        """"2025-03-14 · CHEST PA AND LAT · 2 films" (the parts the header has), or
        "Other films · 3 films"."""
        n = len(self.films)
        count = f"{n} film" if n == 1 else f"{n} films"
        if self.key is None:
            return f"{OTHER} · {count}"
        parts = [format_date(self.key.date) or "no date"]
        if self.key.description:
            parts.append(self.key.description)
        parts.append(count)
        return " · ".join(parts)


def format_date(da: str) -> str:
    """A DICOM DA value (YYYYMMDD) as YYYY-MM-DD; anything else as it is."""
    da = da.strip()
    return f"{da[:4]}-{da[4:6]}-{da[6:8]}" if len(da) == 8 and da.isdigit() else da


def group_films(studies: Sequence[StudyKey | None], views: Sequence[str] = ()) -> tuple[StudyGroup, ...]:
    """Group films by patient and study: ``studies[i]`` and ``views[i]`` are film ``i``'s study
    and View Position. Patients in the order their first film comes; a patient's studies newest
    first (a study without a date after the dated ones; ties by first film); within a study, PA
    and AP before laterals, then the films' own order. Films without a study come last, in one
    "Other films" group. No films with a study: one "Other films" group, or none for no films."""
    views = list(views) + [""] * (len(studies) - len(views))
    patients: dict[str, int] = {}
    firsts: dict[StudyKey, int] = {}
    members: dict[StudyKey, list[int]] = {}
    other: list[int] = []
    for i, key in enumerate(studies):
        if key is None:
            other.append(i)
            continue
        patients.setdefault(key.patient, len(patients))
        firsts.setdefault(key, i)
        members.setdefault(key, []).append(i)

    def order(key: StudyKey) -> tuple[int, int, str, int]:
        dated = len(key.date) == 8 and key.date.isdigit()
        # newest first: negate the date as a number
        return (patients[key.patient], 0 if dated else 1, f"{99999999 - int(key.date):08d}" if dated else "", firsts[key])

    groups = [StudyGroup(key, tuple(sorted(members[key], key=lambda i: (view_rank(views[i]), i))))
              for key in sorted(members, key=order)]
    if other:
        groups.append(StudyGroup(None, tuple(other)))
    return tuple(groups)
