"""Finding studies on a PACS: C-FIND at Study Root (PS3.4 C.4.1, C.6.2) or QIDO-RS (PS3.18 10.6).

A :class:`StudyQuery` (patient ID, patient name with ``*``/``?`` wildcards, accession number,
study date range, modalities) is asked at the STUDY level (:func:`find_studies`), then each
study's series at the SERIES level (:func:`find_series`), so that only the series of the wanted
modalities are retrieved (:mod:`.retrieve`). The same code serves a DICOM AE
(``AE@HOST:PORT``, pynetdicom) and a DICOMweb service (``https://HOST/dicom-web``,
dicomweb-client); :class:`Connection` says which, with our calling AE title, the timeout and TLS.

Nothing here logs a patient's name or ID (nor puts them in an error message): only UIDs, counts
and the PACS's address.
"""

from __future__ import annotations

import datetime as _dt
import logging
import re
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import NodeConfigError, PacsQueryError
from .destinations import DicomDestination, Destination, WebDestination, check_ae_title

logger = logging.getLogger(__name__)

#: The modalities a query asks for unless told otherwise: chest films (PS3.3 C.7.3.1.1.1).
DEFAULT_MODALITIES = ("CR", "DX")

# PS3.5 9.1: a UID is at most 64 characters of digits and dots; a PACS that answers with
# anything else is not followed (a UID names folders of the retrieve cache).
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
# PS3.5 table 6.2-1, CS: upper-case letters, digits, space and underscore, at most 16
_CS = re.compile(r"^[A-Z0-9 _]{1,16}$")
_DA = re.compile(r"^\d{8}$")


#: Libraries whose own log lines print a query's identifiers or URLs (pynetdicom dumps each
#: C-FIND identifier at INFO; dicomweb-client and urllib3 log each request's URL, query string
#: and all, at DEBUG): they hold patient names and IDs, so they are kept at WARNING.
IDENTIFYING_LOGGERS = ("pynetdicom", "dicomweb_client", "urllib3")


def quiet_identifying_loggers() -> None:
    """Keep :data:`IDENTIFYING_LOGGERS` at WARNING or above (whatever -v asked): a patient's name
    or ID is never logged. Called before every query and retrieve."""
    for name in IDENTIFYING_LOGGERS:
        lib = logging.getLogger(name)
        if lib.getEffectiveLevel() < logging.WARNING:
            lib.setLevel(logging.WARNING)


def need(module: str) -> None:
    """Import ``module`` (pynetdicom, dicomweb_client, requests) or say which extra brings it."""
    import importlib

    try:
        importlib.import_module(module)
    except ImportError:
        raise PacsQueryError(f"Query/retrieve needs {module}, which is not installed: install cxrviewer's "
                             "'pacs' extra (pip install 'cxrviewer[pacs]').") from None


def is_uid(text: str) -> bool:
    return len(text) <= 64 and _UID.match(text) is not None


@dataclass(frozen=True)
class ClientTls:
    """TLS towards the PACS (PS3.15 B.1, Basic TLS Secure Transport; https for DICOMweb)."""

    #: CA bundle the PACS's certificate must be signed by (None: the system's trusted CAs)
    ca: Path | None = None
    #: our certificate and key, for a PACS that asks for one (None: none shown)
    cert: Path | None = None
    key: Path | None = None

    def context(self) -> ssl.SSLContext:
        try:
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca) if self.ca else None)
            if self.cert is not None:
                ctx.load_cert_chain(str(self.cert), str(self.key) if self.key else None)
        except (OSError, ssl.SSLError) as exc:
            raise NodeConfigError(f"Cannot set up TLS towards the PACS: {exc}. Check the CA, certificate and key files.") from None
        return ctx


@dataclass(frozen=True)
class Connection:
    """How we talk to one PACS: where it is, who we are, how long we wait, TLS or not."""

    source: Destination
    #: our AE title (DIMSE only); the PACS must know it, and for C-MOVE it must know where we listen
    calling_ae: str = "CXRVIEWER"
    #: seconds for each network step (association, each response, each read)
    timeout: float = 30.0
    tls: ClientTls | None = None

    def __post_init__(self) -> None:
        check_ae_title(self.calling_ae, "calling AE title (ours)")
        if self.timeout <= 0:
            raise NodeConfigError(f"A timeout must be more than 0 seconds, not {self.timeout}.")

    @property
    def is_web(self) -> bool:
        return isinstance(self.source, WebDestination)


@dataclass(frozen=True)
class StudyQuery:
    """What to look for; empty fields match everything (PS3.4 C.2.2.2.3, universal matching)."""

    patient_id: str = ""
    #: PN with ``*`` and ``?`` wildcards (PS3.4 C.2.2.2.4), e.g. ``DOE^J*``
    patient_name: str = ""
    accession: str = ""
    #: a DA range (PS3.4 C.2.2.2.5): ``YYYYMMDD``, ``YYYYMMDD-YYYYMMDD``, ``-YYYYMMDD``, ``YYYYMMDD-``
    study_date: str = ""
    modalities: tuple[str, ...] = DEFAULT_MODALITIES
    #: only these studies (an empty tuple: any)
    study_uids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("patient_id", "patient_name", "accession"):
            if "\\" in getattr(self, name):
                raise PacsQueryError(f"A {name.replace('_', ' ')} filter cannot hold a backslash (it separates DICOM values).")
        if self.study_date:
            parse_study_date(self.study_date)
        for m in self.modalities:
            if not _CS.match(m):
                raise PacsQueryError(f"{m!r} is not a modality code: use DICOM codes such as CR, DX (PS3.3 C.7.3.1.1.1).")
        for uid in self.study_uids:
            if not is_uid(uid):
                raise PacsQueryError(f"{uid!r} is not a Study Instance UID (digits and dots, at most 64 characters).")


@dataclass(frozen=True)
class Study:
    """One study as the PACS describes it (the attributes of PS3.4 C.6.2.1.2, by DICOM keyword)."""

    StudyInstanceUID: str
    PatientID: str = ""
    PatientName: str = ""
    StudyDate: str = ""
    StudyDescription: str = ""
    ModalitiesInStudy: tuple[str, ...] = ()
    NumberOfStudyRelatedInstances: int | None = None
    AccessionNumber: str = ""
    StudyTime: str = ""

    def as_json(self) -> dict[str, Any]:
        """The object ``cxrviewer query --json`` prints (DICOM keywords as keys)."""
        return {"StudyInstanceUID": self.StudyInstanceUID, "PatientID": self.PatientID,
                "PatientName": self.PatientName, "StudyDate": self.StudyDate,
                "StudyDescription": self.StudyDescription, "ModalitiesInStudy": list(self.ModalitiesInStudy),
                "NumberOfStudyRelatedInstances": self.NumberOfStudyRelatedInstances,
                "AccessionNumber": self.AccessionNumber}


@dataclass(frozen=True)
class Series:
    """One series of a study (PS3.4 C.6.2.1.3)."""

    StudyInstanceUID: str
    SeriesInstanceUID: str
    Modality: str = ""
    SeriesDescription: str = ""
    SeriesNumber: int | None = None
    NumberOfSeriesRelatedInstances: int | None = None


def parse_study_date(text: str, today: _dt.date | None = None) -> str:
    """``today``, ``YYYYMMDD``, or a range ``A-B`` / ``A-`` / ``-B`` as a DICOM DA range string;
    a date that does not exist raises :class:`PacsQueryError`."""
    text = text.strip()
    if text.lower() == "today":
        return (today or _dt.date.today()).strftime("%Y%m%d")
    parts = text.split("-")
    if len(parts) > 2 or not any(parts):
        raise PacsQueryError(f"{text!r} is not a study date: write YYYYMMDD, a range YYYYMMDD-YYYYMMDD "
                             "(either end may be left open), or today.")
    for p in parts:
        if p and not _DA.match(p):
            raise PacsQueryError(f"{text!r} is not a study date: dates are YYYYMMDD (e.g. 20250131).")
        if p:
            try:
                _dt.datetime.strptime(p, "%Y%m%d")
            except ValueError:
                raise PacsQueryError(f"{p} is not a date that exists (YYYYMMDD).") from None
    if len(parts) == 2 and all(parts) and parts[0] > parts[1]:
        raise PacsQueryError(f"{text!r}: the range ends before it starts.")
    return text


def parse_modalities(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(x.strip().upper() for x in text.split(",") if x.strip()))
    if not names:
        raise PacsQueryError("No modality given: write codes such as CR,DX.")
    return names


# --------------------------------------------------------------------------- results
def _text(ds: Any, keyword: str) -> str:
    value = ds.get(keyword, "") if ds is not None else ""
    if value is None:
        return ""
    return str(value).strip()


def _int(ds: Any, keyword: str) -> int | None:
    value = ds.get(keyword, None)
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _multi(ds: Any, keyword: str) -> tuple[str, ...]:
    value = ds.get(keyword, None)
    if value in (None, ""):
        return ()
    if isinstance(value, str):
        return tuple(v for v in value.split("\\") if v)
    return tuple(str(v) for v in value if str(v))


def study_from(ds: Any) -> Study | None:
    uid = _text(ds, "StudyInstanceUID")
    if not is_uid(uid):
        logger.warning("a study in the answer has no valid Study Instance UID; skipped")
        return None
    return Study(uid, _text(ds, "PatientID"), _text(ds, "PatientName"), _text(ds, "StudyDate"),
                 _text(ds, "StudyDescription"), _multi(ds, "ModalitiesInStudy"),
                 _int(ds, "NumberOfStudyRelatedInstances"), _text(ds, "AccessionNumber"), _text(ds, "StudyTime"))


def series_from(ds: Any, study_uid: str) -> Series | None:
    uid = _text(ds, "SeriesInstanceUID")
    if not is_uid(uid):
        logger.warning("a series of study %s has no valid Series Instance UID; skipped", study_uid)
        return None
    return Series(study_uid, uid, _text(ds, "Modality").upper(), _text(ds, "SeriesDescription"),
                  _int(ds, "SeriesNumber"), _int(ds, "NumberOfSeriesRelatedInstances"))


def _sorted(studies: Iterable[Study]) -> list[Study]:
    """Newest first (date, time), then by UID: the order a worklist reads."""
    return sorted(studies, key=lambda s: (s.StudyDate, s.StudyTime, s.StudyInstanceUID), reverse=True)


#: Return keys of a study-level query (PS3.4 C.6.2.1.2; empty: "send me its value")
STUDY_KEYS = ("StudyInstanceUID", "PatientID", "PatientName", "StudyDate", "StudyTime", "StudyDescription",
              "ModalitiesInStudy", "NumberOfStudyRelatedInstances", "AccessionNumber")
SERIES_KEYS = ("SeriesInstanceUID", "Modality", "SeriesDescription", "SeriesNumber", "NumberOfSeriesRelatedInstances")


def _study_filters(query: StudyQuery, modality: str, study_uid: str = "") -> dict[str, str]:
    filters = {"PatientID": query.patient_id, "PatientName": query.patient_name,
               "AccessionNumber": query.accession,
               "StudyDate": parse_study_date(query.study_date) if query.study_date else "",
               "ModalitiesInStudy": modality, "StudyInstanceUID": study_uid}
    return {k: v for k, v in filters.items() if v}


def find_studies(conn: Connection, query: StudyQuery) -> list[Study]:
    """The studies ``query`` selects, newest first. One query per modality (single value matching
    of ModalitiesInStudy, PS3.4 C.2.2.2.1: multiple value matching is not asked of every PACS),
    merged by Study Instance UID; with ``study_uids``, one query per UID. A DICOM AE gets them
    all on one association."""
    quiet_identifying_loggers()
    need("requests" if conn.is_web else "pynetdicom")
    asked = [(uid, modality, _study_filters(query, modality, uid))
             for uid in (query.study_uids or ("",)) for modality in (query.modalities or ("",))]
    if conn.is_web:
        answers = [_find_web_studies(conn, filters) for _, _, filters in asked]
    else:
        answers = _find_dimse(conn, "STUDY", [filters for _, _, filters in asked], STUDY_KEYS)
    found: dict[str, Study] = {}
    for (uid, modality, _), datasets in zip(asked, answers):
        for ds in datasets:
            study = study_from(ds)
            if study is None:
                continue
            if modality and study.ModalitiesInStudy and modality not in study.ModalitiesInStudy:
                continue  # a PACS that ignored the key: hold it to what was asked
            if uid and study.StudyInstanceUID != uid:
                continue
            found.setdefault(study.StudyInstanceUID, study)
    logger.info("%s: %d stud%s found", conn.source, len(found), "y" if len(found) == 1 else "ies")
    return _sorted(found.values())


def find_prior(conn: Connection, study: Study, modalities: Sequence[str] = DEFAULT_MODALITIES) -> Study | None:
    """The same patient's most recent study of ``modalities`` before ``study`` (by Study Date,
    then Study Time), or None; a study without a Patient ID has no prior we can find."""
    if not study.PatientID or not study.StudyDate:
        return None
    earlier = [s for s in find_studies(conn, StudyQuery(patient_id=study.PatientID, study_date=f"-{study.StudyDate}",
                                                        modalities=tuple(modalities)))
               if s.StudyInstanceUID != study.StudyInstanceUID and s.PatientID == study.PatientID
               and (s.StudyDate, s.StudyTime) < (study.StudyDate, study.StudyTime)]
    return max(earlier, key=lambda s: (s.StudyDate, s.StudyTime, s.StudyInstanceUID), default=None)


def find_series(conn: Connection, study_uid: str, modalities: Sequence[str] = DEFAULT_MODALITIES) -> list[Series]:
    """The series of ``study_uid`` whose Modality is one of ``modalities`` (all when empty), by
    Series Number."""
    return find_series_of(conn, [study_uid], modalities)


def find_series_of(conn: Connection, study_uids: Sequence[str], modalities: Sequence[str] = DEFAULT_MODALITIES) -> list[Series]:
    """:func:`find_series` of each study in turn (one association for them all), in that order."""
    for uid in study_uids:
        if not is_uid(uid):
            raise PacsQueryError(f"{uid!r} is not a Study Instance UID.")
    quiet_identifying_loggers()
    need("requests" if conn.is_web else "pynetdicom")
    if not study_uids:
        return []
    if conn.is_web:
        answers = [_find_web_series(conn, uid) for uid in study_uids]
    else:
        answers = _find_dimse(conn, "SERIES", [{"StudyInstanceUID": uid} for uid in study_uids], SERIES_KEYS)
    wanted = {m.upper() for m in modalities}
    out = []
    for uid, datasets in zip(study_uids, answers):
        found = [s for s in (series_from(ds, uid) for ds in datasets)
                 if s is not None and (not wanted or s.Modality in wanted)]
        out.extend(sorted(found, key=lambda s: (s.SeriesNumber is None, s.SeriesNumber or 0, s.SeriesInstanceUID)))
    return out


def check_connection(conn: Connection) -> str:
    """Whether the PACS answers: a C-ECHO (PS3.7 9.1.5) for a DICOM AE, a one-study QIDO-RS
    search for a DICOMweb service; returns what it answered, else raises :class:`PacsQueryError`."""
    from ..errors import PacsSendError

    need("requests" if conn.is_web else "pynetdicom")
    if conn.is_web:
        qido(conn, "studies", {"limit": "1"}, ())
        return f"{conn.source} answered a QIDO-RS search"
    from .echo import echo
    from .store import unreachable

    assert isinstance(conn.source, DicomDestination)
    try:
        echo(conn.calling_ae, conn.source, conn.timeout)
    except PacsSendError as exc:
        why = unreachable(conn.source, conn.timeout)  # pynetdicom says "aborted" for both
        raise PacsQueryError(f"{conn.source} {why}: check the host and port." if why else str(exc)) from None
    return f"{conn.source} answered the C-ECHO"


# --------------------------------------------------------------------------- DIMSE
def associate(conn: Connection, contexts: Sequence[tuple[str, Sequence[str] | None]], *, roles=None,
              evt_handlers=None):
    """An established association with ``conn``'s AE proposing ``contexts`` ((abstract syntax,
    transfer syntaxes or None for pynetdicom's default)), with TLS when ``conn`` has it; raises
    :class:`PacsQueryError` saying why not."""
    from pynetdicom import AE

    from .store import unreachable

    dest = conn.source
    assert isinstance(dest, DicomDestination)
    ae = AE(ae_title=conn.calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = conn.timeout
    for abstract, syntaxes in contexts:
        if syntaxes is None:
            ae.add_requested_context(abstract)
        else:
            ae.add_requested_context(abstract, list(syntaxes))
    tls_args = (conn.tls.context(), dest.host) if conn.tls is not None else None
    handlers = list(evt_handlers or [])
    assoc = ae.associate(dest.host, dest.port, ae_title=dest.ae_title, ext_neg=roles or None,
                         evt_handlers=handlers, tls_args=tls_args)
    if not assoc.is_established:
        if assoc.is_rejected:
            why = (f"rejected the association: check that its AE title is {dest.ae_title} and that it "
                   f"knows {conn.calling_ae} (our AE title) from this computer")
        else:
            why = unreachable(dest, conn.timeout) or (
                "aborted the association" + (" (a TLS handshake that failed?)" if conn.tls else
                                             " (does it speak TLS only?)"))
        raise PacsQueryError(f"{dest} {why}.")
    return assoc


def _find_dimse(conn: Connection, level: str, filter_sets: Sequence[dict[str, str]], keys: Sequence[str]) -> list[list[Any]]:
    """One C-FIND per filter set, on one association; the matches of each."""
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FIND

    assoc = associate(conn, [(FIND, None)])
    try:
        out = [_c_find(conn, assoc, FIND, _identifier(level, filters, keys), i + 1) for i, filters in enumerate(filter_sets)]
    finally:
        if assoc.is_established:
            assoc.release()
    logger.debug("%s: %d C-FIND(s) at %s level: %d match(es)", conn.source, len(out), level, sum(map(len, out)))
    return out


def _identifier(level: str, filters: dict[str, str], keys: Sequence[str]):
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.QueryRetrieveLevel = level  # PS3.4 C.6.2.1: Study Root, STUDY or SERIES level
    for key in keys:
        setattr(ds, key, "")
    if level == "SERIES":
        ds.StudyInstanceUID = ""  # a unique key of the level above (PS3.4 C.4.1.2.1)
    for key, value in filters.items():
        setattr(ds, key, value)
    return ds


def _c_find(conn: Connection, assoc, model, ds, msg_id: int) -> list[Any]:
    out: list[Any] = []
    for status, identifier in assoc.send_c_find(ds, model, msg_id=msg_id):
        if not status or "Status" not in status:
            raise PacsQueryError(f"{conn.source} did not answer the C-FIND within {conn.timeout:.0f} s "
                                 "(or ended the association); try again, or wait longer.")
        code = int(status.Status)
        if code in (0xFF00, 0xFF01):  # Pending: one match each (PS3.4 C.4.1.1.4)
            if identifier is not None:
                out.append(identifier)
        elif code == 0x0000:
            break
        elif code == 0xFE00:
            raise PacsQueryError(f"{conn.source} cancelled the C-FIND.")
        else:
            reason = {0xA700: "out of resources", 0xA900: "the query does not match the SOP class",
                      0xC000: "unable to process"}.get(code, "failed")
            if code == 0x0122 or (code >> 8) == 0x01:
                reason = "Study Root C-FIND is not supported or not allowed for us"
            raise PacsQueryError(f"{conn.source} answered the C-FIND with status 0x{code:04X} ({reason}); "
                                 f"check that it allows queries from {conn.calling_ae}.")
    return out


# --------------------------------------------------------------------------- DICOMweb
def web_session(conn: Connection):
    """A requests session with ``conn``'s TLS (CA bundle, our certificate)."""
    import requests

    session = requests.Session()
    if conn.tls is not None:
        if conn.tls.ca is not None:
            session.verify = str(conn.tls.ca)
        if conn.tls.cert is not None:
            session.cert = (str(conn.tls.cert), str(conn.tls.key)) if conn.tls.key else str(conn.tls.cert)
    return session


def web_client(conn: Connection):
    """A dicomweb-client for ``conn``'s service, with its TLS and timeout."""
    from dicomweb_client.api import DICOMwebClient

    return DICOMwebClient(url=str(conn.source), session=web_session(conn), timeout=conn.timeout)


def web_error(conn: Connection, exc: BaseException, what: str) -> str:
    """What went wrong with a DICOMweb request, without its URL (its query string carries the
    patient filters)."""
    import requests

    response = getattr(exc, "response", None)
    if response is not None and getattr(response, "status_code", None):
        code = response.status_code
        hint = {401: "it asks for credentials", 403: "it refuses us", 404: "no such DICOMweb service or object"}.get(code, "")
        return f"{conn.source} answered {what} with HTTP {code}" + (f" ({hint})" if hint else "")
    if isinstance(exc, requests.exceptions.SSLError):
        return f"{conn.source}: the TLS handshake failed (check --tls-ca)"
    if isinstance(exc, requests.Timeout):
        return f"{conn.source} did not answer {what} within {conn.timeout:.0f} s"
    if isinstance(exc, requests.ConnectionError):
        return f"{conn.source} could not be reached"
    return f"{conn.source}: {what} failed ({type(exc).__name__})"


def _from_json(items: list[dict]) -> list[Any]:
    from pydicom.dataset import Dataset

    out = []
    for item in items:
        try:
            out.append(Dataset.from_json(item))
        except (ValueError, TypeError, KeyError):
            logger.warning("an answer of the DICOMweb service is not DICOM JSON; skipped")
    return out


def qido(conn: Connection, path: str, params: dict[str, str], fields: Sequence[str]) -> list[Any]:
    """A QIDO-RS search (PS3.18 10.6) of ``path`` (``studies``, ``studies/UID/series``): the
    matches as pydicom data sets. The query string is built here, leaving ``*`` and ``?`` as they
    are: dicomweb-client percent-encodes them, and a server may then match them literally (Orthanc
    1.10's plugin does: ``DOE%2A`` finds nothing where ``DOE*`` finds DOE^JOHN), where PS3.18
    8.3.4.1 wants wildcards. (The PN separator ``^`` has the same problem, and urllib3 always
    encodes it: :func:`_find_web_studies` asks with ``?`` in its place.)"""
    import urllib.parse

    import requests

    query = [*params.items(), *(("includefield", f) for f in fields)]
    url = f"{str(conn.source).rstrip('/')}/{path}?" + urllib.parse.urlencode(query, safe="*?^,-")
    session = web_session(conn)
    what = "the QIDO-RS search"
    items: list[dict] = []
    offset = 0
    while True:
        page_url = url + (f"&offset={offset}" if offset else "")
        try:
            response = session.get(page_url, headers={"Accept": "application/dicom+json"}, timeout=conn.timeout)
            response.raise_for_status()
            page = response.json() if response.content.strip() else []
        except (requests.RequestException, OSError, ValueError) as exc:
            raise PacsQueryError(web_error(conn, exc, what) + "; check the address and that the service is running.") from None
        if not isinstance(page, list):
            raise PacsQueryError(f"{conn.source} answered {what} with something that is not DICOM JSON.")
        items.extend(page)
        # a server that stopped short says so in a Warning header (PS3.18 8.3.4.4): ask for the rest
        if not page or "Warning" not in response.headers:
            break
        offset += len(page)
    return _from_json(items)


def name_matches(pattern: str, name: str) -> bool:
    """Whether the Patient Name ``name`` matches ``pattern`` with the wildcards ``*`` and ``?``
    (PS3.4 C.2.2.2.4), case-insensitively as most PACS match names."""
    import fnmatch

    translated = "".join("[[]" if c == "[" else c for c in pattern.upper())
    return fnmatch.fnmatchcase(name.upper(), translated)


def _find_web_studies(conn: Connection, filters: dict[str, str]) -> list[Any]:
    # QIDO-RS, PS3.18 10.6: attribute matching as in C-FIND (wildcards, date ranges). The name is
    # asked with "?" for each "^" (see qido()), and what comes back is held to the name asked.
    name = filters.get("PatientName", "")
    if "^" in name:
        filters = {**filters, "PatientName": name.replace("^", "?")}
    found = qido(conn, "studies", filters, STUDY_KEYS)
    if "^" in name:
        found = [ds for ds in found if name_matches(name, _text(ds, "PatientName"))]
    return found


def _find_web_series(conn: Connection, study_uid: str) -> list[Any]:
    return qido(conn, f"studies/{study_uid}/series", {}, SERIES_KEYS)
