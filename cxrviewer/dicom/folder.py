"""The DICOM results of a folder run: where each film's go, which are missing, writing them.

One scheme names every file: ``FOLDER/<StudyInstanceUID>/<SOPInstanceUID>.<sr|pr|sc>.dcm``, the
UIDs being the *source* image's. A UID names one image forever (PS3.5 9.1), so the name is the
same whichever path the film was read from (DICOM exports often name every file ``IM0001``),
a study's results sit together as a PACS files them, and a result that exists is a result for
that very image: a resumed run keeps it and writes only what is missing. UIDs are digits and
dots (PS3.5 9.1), safe as file names everywhere; a header whose UIDs are not is refused (such
an image could not be referenced either).

Only DICOM films get DICOM results: a PNG or JPEG has no image for a Structured Report or a
Presentation State to point at, and a Secondary Capture of it would open a study of its own
with no patient in it, which a PACS cannot file. :func:`dicom_uids` says ``None`` for those.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom import config as dicom_config
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import UID

from ..errors import CxrError, DicomResultError
from ..io.sniff import HEAD_BYTES, sniff_format
from ..render import RenderOptions
from ..storage import atomic_write_bytes, check_writable_dir, is_url
from ..types import Film, ModelInfo, Prediction
from .gsps import build_gsps, export_dicom_gsps
from .output import write as write_dataset
from .sc import build_sc_dataset, encode_dataset, export_dicom_sc
from .source import FilmSource, open_source
from .sr import build_sr, export_dicom_sr

logger = logging.getLogger(__name__)

#: The results a folder run can write, in the order they are written.
FORMATS = ("sr", "gsps", "sc")
#: Each result's file name suffix: ``pr`` is the DICOM name of a Presentation State (PS3.3 A.33).
SUFFIXES = {"sr": "sr", "gsps": "pr", "sc": "sc"}
_UID_TAGS = [Tag("StudyInstanceUID"), Tag("SOPInstanceUID")]
#: The private block that holds the key of the film a result was made from (PS3.5 7.8.1): its
#: group, its Private Creator, and the element in the block (LO: a hex digest, 32 characters).
KEY_GROUP, KEY_CREATOR, KEY_ELEMENT = 0x0077, "CXRVIEWER SOURCE KEY", 0x01
_KEY_TAGS = [Tag(KEY_GROUP, 0x0010), Tag(KEY_GROUP, 0x1000 | KEY_ELEMENT)]
_WHAT = {"sr": "Structured Report", "gsps": "Presentation State", "sc": "Secondary Capture"}


def source_digest(size: int, mtime_ns: int) -> str:
    """The key a result keeps of the film file it was made from: a digest of its size and
    modification time (the results CSV's resume key), so the result does not carry the file's
    time itself (it may date the visit)."""
    return hashlib.sha256(f"{int(size)} {int(mtime_ns)}".encode()).hexdigest()[:32]


def stored_digest(location: Path | str) -> str | None:
    """The :func:`source_digest` recorded in the result at ``location`` (a path or a URL);
    ``None`` when the result has none (written before results kept it, or by the node) or
    cannot be read."""
    try:
        with open_source(location) as f:
            # the block a result gets is the group's first (PS3.5 7.8.1: creator (0077,0010),
            # its elements (0077,10xx)); only those two are read (~0.8 ms for an SR of 70 kB)
            ds = pydicom.dcmread(f, stop_before_pixels=True, force=True, specific_tags=_KEY_TAGS)
        block = ds.private_block(KEY_GROUP, KEY_CREATOR)
        value = block[KEY_ELEMENT].value
    except Exception:  # noqa: BLE001 - a damaged or foreign file: no key, so it is made again
        return None
    return value.decode("ascii", "replace").strip(" \0") if isinstance(value, bytes) else str(value).strip()


def _put_digest(ds: Dataset, digest: str) -> None:
    ds.private_block(KEY_GROUP, KEY_CREATOR, create=True).add_new(KEY_ELEMENT, "LO", digest)


def parse_formats(text: str) -> tuple[str, ...]:
    """``"sr,gsps"`` → ``("sr", "gsps")`` in :data:`FORMATS` order; raises ``ValueError``."""
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in FORMATS]
    if unknown or not names:
        raise ValueError(f"{', '.join(unknown) or 'nothing'}: choose from {', '.join(FORMATS)}")
    return tuple(f for f in FORMATS if f in names)


@dataclass(frozen=True)
class DicomUids:
    """The source image's Study and SOP Instance UIDs: the file names of its results."""

    study: str
    instance: str


def location_name(location: Path | str) -> str:
    """The file name of a film's path or URL, for messages."""
    return str(location).rstrip("/").rsplit("/", 1)[-1] if is_url(location) else Path(location).name


def dicom_uids(location: Path | str) -> DicomUids | None:
    """The UIDs naming the results of the film at ``location`` (a path or a URL); ``None`` when
    it is not DICOM, or cannot be read any more.

    Reads two elements of the header (and the file meta, where a SOP Instance UID may be only),
    through :func:`~cxrviewer.dicom.source.open_source` as the result builders do: from a URL
    the first :data:`~cxrviewer.dicom.source.HEADER_CHUNK` bytes, not the pixel data.
    Raises :class:`DicomResultError` when they cannot be read, are missing or are not UIDs.
    """
    name = location_name(location)
    try:
        f = open_source(location)
    except (OSError, CxrError):
        return None
    with f:
        try:
            if sniff_format(f.read(HEAD_BYTES)) != "dicom":
                return None
            f.seek(0)
            ds = pydicom.dcmread(f, stop_before_pixels=True, force=True, specific_tags=_UID_TAGS)
        except Exception as exc:  # noqa: BLE001 - pydicom raises many types on a damaged header
            raise DicomResultError(f"Cannot read the DICOM header of {name} ({type(exc).__name__}) "
                                   "to name its DICOM results; check the file.") from None
    return header_uids(ds, name)


def header_uids(ds: Dataset, name: str) -> DicomUids:
    """The Study and SOP Instance UIDs of the header ``ds`` of the film ``name``; raises
    :class:`DicomResultError` when they are missing or malformed."""
    meta = getattr(ds, "file_meta", None)
    study = str(ds.get("StudyInstanceUID", "") or "").strip("\0 ")
    instance = str(ds.get("SOPInstanceUID", "") or (meta.get("MediaStorageSOPInstanceUID", "") if meta else "") or "")
    instance = instance.strip("\0 ")
    for what, uid in (("Study Instance UID", study), ("SOP Instance UID", instance)):
        # PS3.5 9.1: digits and dots, no leading zero in a component, at most 64 characters;
        # the same check a result's reference passes (cxrviewer.dicom.source.read_source)
        if not (uid and UID(uid, dicom_config.IGNORE).is_valid):
            raise DicomResultError(
                f"The DICOM header of {name} has {'a malformed' if uid else 'no'} {what}, so its "
                "DICOM results could neither point at it nor be named after it. Fix the header, or "
                "export the film on its own."
            )
    return DicomUids(study, instance)


@dataclass(frozen=True)
class DicomResultsFolder:
    """Where a folder run writes the DICOM results of each film, and which are still missing."""

    folder: Path
    formats: tuple[str, ...] = FORMATS

    def paths(self, uids: DicomUids) -> dict[str, Path]:
        base = self.folder / uids.study
        return {f: base / f"{uids.instance}.{SUFFIXES[f]}.dcm" for f in self.formats}

    def missing(self, location: Path | str) -> tuple[str, ...]:
        """The formats not yet written for the film at ``location`` (a path or a URL; none for a
        film that is not DICOM; all of them when its header cannot name them, so that the film
        is tried again)."""
        try:
            uids = dicom_uids(location)
        except DicomResultError:
            return self.formats
        return () if uids is None else self.missing_of(uids)

    def missing_of(self, uids: DicomUids, digest: str | None = None) -> tuple[str, ...]:
        """The formats whose file is missing, or (with ``digest``, the film's
        :func:`source_digest`) made from another version of the film: stale."""
        return tuple(
            f for f, p in self.paths(uids).items()
            if not p.is_file() or (digest is not None and stored_digest(p) != digest)
        )

    def write(
        self,
        uids: DicomUids,
        film: Film,
        prediction: Prediction,
        info: ModelInfo,
        options: RenderOptions,
        *,
        only: Sequence[str] | None = None,
        digest: str | None = None,
    ) -> list[Path]:
        """Write the results of the film whose source has ``uids`` (``only`` those formats;
        default all), each atomically (a temporary file renamed), so a file that exists is
        whole. The SR and the Presentation State outline the regions of ``options.classes``,
        the Secondary Capture draws what ``options`` asks, as ``cxrviewer export`` does.
        ``digest``: the film file's :func:`source_digest`, recorded in each result.
        The first result that cannot be made raises; :meth:`write_each` goes on.
        """
        written, errors = self.write_each(uids, film, prediction, info, options, only=only, digest=digest,
                                          stop=True)
        return written

    def write_each(
        self,
        uids: DicomUids,
        film: Film,
        prediction: Prediction,
        info: ModelInfo,
        options: RenderOptions,
        *,
        only: Sequence[str] | None = None,
        digest: str | None = None,
        stop: bool = False,
    ) -> tuple[list[Path], dict[str, CxrError]]:
        """:meth:`write`, each result on its own: one that cannot be made (a header highdicom
        refuses, a colour film's Presentation State) leaves the others be. Returns the files
        written and, for each format not written, the error (``stop``: raise the first)."""
        targets = self.paths(uids)
        source = FilmSource(film, prediction)  # the source's header read once for all of them
        written: list[Path] = []
        errors: dict[str, CxrError] = {}
        for f in self.formats:
            if only is not None and f not in only:
                continue
            try:
                written.append(write_result(f, targets[f], film, prediction, info, options, source=source,
                                            digest=digest))
            except CxrError as exc:
                if stop:
                    raise
                errors[f] = exc
        return written, errors


def write_result(
    fmt: str, path: Path, film: Film, prediction: Prediction, info: ModelInfo, options: RenderOptions,
    *, anonymize: bool = False, source: FilmSource | None = None, digest: str | None = None,
) -> Path:
    """One DICOM result (``sr``, ``gsps`` or ``sc``) of ``film`` at ``path``: the findings of
    ``options.classes`` are drawn (SC) or get their regions (SR, Presentation State). The one
    dispatch behind ``score --dicom-out`` and the DICOM node. ``source``: the film's source,
    shared by its SR and Presentation State (:class:`~cxrviewer.dicom.source.FilmSource`: its
    header read, its reference and regions made once for both); default: read for this one.
    ``digest``: the film file's :func:`source_digest`, recorded in the result (a private
    attribute) so that a later run can tell a result of a replaced film."""
    if digest is not None:
        return _write_with_digest(fmt, path, film, prediction, info, options, anonymize, source, digest)
    if fmt == "sc":
        return export_dicom_sc(path, film, prediction, info, options, anonymize=anonymize)
    if fmt not in FORMATS:
        raise ValueError(f"unknown DICOM result {fmt!r}; choose among {', '.join(FORMATS)}")
    export = export_dicom_sr if fmt == "sr" else export_dicom_gsps
    return export(path, film, prediction, info, region_labels=options.classes, anonymize=anonymize, source=source)


def _write_with_digest(
    fmt: str, path: Path, film: Film, prediction: Prediction, info: ModelInfo, options: RenderOptions,
    anonymize: bool, source: FilmSource | None, digest: str,
) -> Path:
    """:func:`write_result` of a result that records ``digest``: built, given the key, written."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown DICOM result {fmt!r}; choose among {', '.join(FORMATS)}")
    path = Path(path)
    check_writable_dir(path.parent if str(path.parent) else Path("."))
    if fmt == "sc":
        ds = build_sc_dataset(film, prediction, info, options, anonymize=anonymize)
        _put_digest(ds, digest)
        out = atomic_write_bytes(path, encode_dataset(ds))
        logger.info("wrote DICOM SC %s (study %s, series %s, instance %s)",
                    out, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        return out
    build = build_sr if fmt == "sr" else build_gsps
    ds = build(film, prediction, info, region_labels=options.classes, anonymize=anonymize, source=source)
    _put_digest(ds, digest)
    return write_dataset(path, ds, _WHAT[fmt])
