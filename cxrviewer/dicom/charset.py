"""The source's text in a DICOM result: decoded from its character set, checked against its VR,
written as UTF-8.

A result (Secondary Capture, Structured Report, Presentation State) copies the patient and study
attributes of its source film (PS3.3 C.7.1.1, C.7.2.1). The source may carry them in any
Specific Character Set (0008,0005) (PS3.3 C.12.1.1.2): a single-byte set (``ISO_IR 100``), a
multi-byte one (``ISO_IR 192``, ``GB18030``), ISO 2022 code extensions (``\\ISO 2022 IR 87``
Japanese, ``\\ISO 2022 IR 149`` Korean, a lone ``ISO 2022 IR 100``) or none at all (an empty or
absent value is the default repertoire, PS3.5 6.1.2.5.1). A result is not bound to its source's
set: every result is written in ``ISO_IR 192`` (Unicode in UTF-8, PS3.5 6.1.2.5.3), which holds
the text of every set, and the copied values are decoded here, through pydicom's public decoders
(:func:`pydicom.charset.convert_encodings`, :func:`pydicom.charset.decode_element`), so that the
writer encodes them again in UTF-8.

A copied value must also fit its Value Representation (PS3.5 6.2: a PN's component group at
most 64 characters, a DA a real date, a CS of upper-case letters) and its Value Multiplicity
(PS3.6: one Patient's Name, two values of Patient Orientation). A value that does not is left
out of the result (a Type 2 attribute is then written empty, as for an unknown value) and a log
line names the attribute and what is wrong with it, never the value: the value may be a
patient's name.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Iterable

from pydicom import config as dicom_config
from pydicom.charset import decode_element, python_encoding
from pydicom.datadict import dictionary_description, dictionary_VM, dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import Tag
from pydicom.valuerep import validate_value

logger = logging.getLogger(__name__)

#: The Specific Character Set of every result: Unicode in UTF-8 (PS3.3 C.12.1.1.2, PS3.5 6.1.2.5.3).
RESULT_CHARACTER_SET = "ISO_IR 192"
_SPECIFIC_CHARACTER_SET = Tag(0x00080005)
#: The VRs whose values are checked before they are copied (PS3.5 table 6.2-1). Numbers (DS, IS)
#: and UIDs are not copied as text here: the readers that use them check them.
CHECKED_VRS = frozenset({"AE", "AS", "CS", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UT"})
#: The VRs whose values are text in the character set (PS3.5 6.1.2.3); decoded here.
TEXT_VRS = CHECKED_VRS | {"UR"}
_PN_GROUP_MAX = 64
#: Enumerated values of attributes a result copies (PS3.3 C.7.1.1 Patient's Sex; C.7.3.1
#: Laterality; C.7.6.1.1 Image Laterality): another value is left out, as highdicom refuses it.
ENUMERATED = {
    "PatientSex": frozenset({"M", "F", "O"}),
    "Laterality": frozenset({"R", "L"}),
    "ImageLaterality": frozenset({"R", "L", "U", "B"}),
}
#: Patient Orientation: each value a direction made of A, P, R, L, H, F (PS3.3 C.7.6.1.1.1).
_ORIENTATION = re.compile(r"[APRLHF]+")


def attribute_name(keyword_or_tag: str | int) -> str:
    """``Patient's Name (0010,0010)``: how a message names an attribute."""
    tag = Tag(tag_for_keyword(keyword_or_tag) if isinstance(keyword_or_tag, str) else keyword_or_tag)
    try:
        name = dictionary_description(tag)
    except KeyError:
        name = "attribute"
    return f"{name} ({tag.group:04X},{tag.element:04X})"


def character_sets(header: Dataset, name: str = "the source") -> list[str]:
    """The defined terms of ``header``'s Specific Character Set (0008,0005), as pydicom's
    decoders take them; ``["ISO_IR 6"]`` (the default repertoire) when it is absent or empty.

    A term that is not a defined one (``ISO-IR 100``, ``ISO_IR100``) is logged, naming the
    attribute, and replaced by the one pydicom reads it as (:func:`_known_term`). ``name``
    names the film in that line.
    """
    element = header.get_item(_SPECIFIC_CHARACTER_SET)
    value = None if element is None else element.value
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if value is None:
        terms: list[str] = []
    elif isinstance(value, str):
        terms = value.split("\\")
    else:
        terms = [str(v) for v in value]
    terms = [t.strip(" \x00") for t in terms]
    if not any(terms):
        return ["ISO_IR 6"]
    # an empty first value is the default repertoire, the start of a code extension (PS3.3 C.12.1.1.2)
    unknown = {t: _known_term(t) for t in terms if t and t not in python_encoding}
    if unknown:
        logger.warning(
            "%s: %s has %s, not a defined term (PS3.3 C.12.1.1.2); its text is read as %s, and "
            "the results are written in %s",
            name, attribute_name(_SPECIFIC_CHARACTER_SET), ", ".join(repr(t) for t in unknown),
            ", ".join(repr(t) for t in unknown.values()), RESULT_CHARACTER_SET,
        )
        terms = [unknown.get(t, t) for t in terms]
    return terms


def _known_term(term: str) -> str:
    """The defined term a misspelt ``term`` stands for, as pydicom corrects it (``ISO-IR 100``,
    ``ISO_IR100`` → ``ISO_IR 100``; ``ISO2022 IR 87`` → ``ISO 2022 IR 87``); a term it cannot
    correct is read as pydicom reads it, Latin-1 (``ISO_IR 100``). Done here once, without
    pydicom's warning on every decode."""
    upper = term.strip().upper()
    for candidate in (
        re.sub(r"^ISO[ _-]?IR[ _-]?", "ISO_IR ", upper),
        re.sub(r"^ISO[ _-]?2022[ _-]?IR[ _-]?", "ISO 2022 IR ", upper),
    ):
        if candidate in python_encoding:
            return candidate
    return "ISO_IR 100"


def decoded(header: Dataset, keyword: str, terms: list[str] | None = None) -> DataElement | None:
    """A copy of ``header``'s element ``keyword`` with its text decoded from the header's
    character set (``terms``, default :func:`character_sets`); ``None`` when it is absent.

    Text is decoded from the bytes as read with :func:`pydicom.charset.decode_element`, without
    pydicom's value validation (its warnings quote the value); other elements are pydicom's.
    The copy may be changed; the header is left as it is.
    """
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise KeyError(keyword)
    container = header
    meta = getattr(header, "file_meta", None)
    if tag >> 16 == 0x0002 and tag not in header and meta is not None:
        container = meta  # a file meta element (PS3.10 7.1)
    element = container.get_item(tag)
    if element is None:
        return None
    terms = character_sets(header) if terms is None else terms
    vr = element.VR or dictionary_VR(tag)
    if isinstance(element, RawDataElement) and vr in TEXT_VRS:
        # the bytes as read, trailing padding off (PS3.5 6.2), decoded below
        raw = (element.value or b"").rstrip(b" \x00")
        out = DataElement(tag, vr, raw, validation_mode=dicom_config.IGNORE)
    else:
        out = copy.deepcopy(container[tag] if isinstance(element, RawDataElement) else element)
        out.validation_mode = dicom_config.IGNORE
    if out.VR in TEXT_VRS:
        decode_element(out, terms)
    return out


def problem(element: DataElement) -> str | None:
    """What is wrong with ``element``'s value for its VR and VM, in words without the value;
    ``None`` when it fits (or is empty, or is of a VR that is not checked here)."""
    if element.VR not in CHECKED_VRS or element.is_empty:
        return None
    value = element.value
    values = list(value) if isinstance(value, (list, tuple, MultiValue)) else [value]
    try:
        vm = dictionary_VM(element.tag)
    except KeyError:
        vm = "1-n"
    if not _vm_fits(len(values), vm):
        return f"{len(values)} value{'' if len(values) == 1 else 's'} where the standard allows {vm} (PS3.6)"
    keyword = element.keyword
    for v in values:
        if v is None or v == "":
            continue
        if element.VR == "PN":
            groups = str(v).split("=")
            if any(len(group) > _PN_GROUP_MAX for group in groups):
                # PS3.5 table 6.2-1: 64 characters a component group (pydicom checks each component)
                return f"a component group longer than {_PN_GROUP_MAX} characters (PS3.5 table 6.2-1, PN)"
            if len(groups) > 3 or any(group.count("^") > 4 for group in groups):
                return "more than 3 component groups or 5 components (PS3.5 6.2.1.1, PN)"
        if keyword in ENUMERATED and str(v).strip() not in ENUMERATED[keyword]:
            return f"a value that is not one of its enumerated values {', '.join(sorted(ENUMERATED[keyword]))} (PS3.3)"
        if keyword == "PatientOrientation" and not _ORIENTATION.fullmatch(str(v).strip()):
            return "a value that is not a direction of A, P, R, L, H and F (PS3.3 C.7.6.1.1.1)"
        try:
            validate_value(element.VR, v, dicom_config.RAISE)
        except (ValueError, TypeError):
            return f"a value that is not a valid {element.VR} (PS3.5 table 6.2-1: its length, characters or format)"
    return None


def _vm_fits(n: int, vm: str) -> bool:
    """Whether ``n`` values fit a Value Multiplicity of PS3.6 (``1``, ``2``, ``1-3``, ``1-n``, ``2-2n``)."""
    m = re.fullmatch(r"(\d+)(?:-(\d*)(n?))?", vm.strip())
    if m is None:
        return True  # a VM this reader does not know: not judged
    low = int(m.group(1))
    if m.group(2) is None and not m.group(3):
        return n == low
    if m.group(3):  # "1-n", "2-2n": at least ``low``, in steps of the multiplier
        step = int(m.group(2) or 1)
        return n >= low and n % step == 0
    return low <= n <= int(m.group(2))


def source_name(header: Dataset) -> str:
    """The file name ``header`` was read from, for log lines (``the source`` when unknown)."""
    filename = getattr(header, "filename", None)
    if not isinstance(filename, str) or not filename:
        return "the source"
    return filename.rstrip("/").replace("\\", "/").rsplit("/", 1)[-1]


def checked(header: Dataset, keyword: str, name: str | None = None, terms: list[str] | None = None
            ) -> DataElement | None:
    """:func:`decoded`, or ``None`` when the value does not fit its VR or VM: then a log line
    names the attribute and the film (``name``, default :func:`source_name`), and the result
    leaves the value out."""
    name = source_name(header) if name is None else name
    element = decoded(header, keyword, character_sets(header, name) if terms is None else terms)
    if element is None:
        return None
    why = problem(element)
    if why is not None:
        logger.warning("%s: %s has %s; it is left out of the results", name, attribute_name(keyword), why)
        return None
    return element


def checked_elements(header: Dataset, keywords: Iterable[str], name: str | None = None) -> dict[str, DataElement]:
    """:func:`checked` for each of ``keywords`` that ``header`` has and that fits its VR."""
    name = source_name(header) if name is None else name
    terms = character_sets(header, name)
    out = {}
    for keyword in keywords:
        element = checked(header, keyword, name, terms)
        if element is not None:
            out[keyword] = element
    return out


def as_text(element: DataElement | None) -> str:
    """A decoded element's value as one string (multiple values joined by ``\\``, PS3.5 6.4)."""
    if element is None or element.value is None:
        return ""
    value = element.value
    if isinstance(value, bytes):  # a VR this module does not decode (OB, UN): not text
        return ""
    if isinstance(value, (list, tuple, MultiValue)):
        text = "\\".join(str(v) for v in value)
    else:
        text = str(value)
    return text.strip(" \x00").rstrip("=")


def use_result_character_set(ds: Dataset) -> None:
    """Give the result ``ds`` the character set of every result, :data:`RESULT_CHARACTER_SET`."""
    if _SPECIFIC_CHARACTER_SET in ds:
        del ds[_SPECIFIC_CHARACTER_SET]
    ds.SpecificCharacterSet = RESULT_CHARACTER_SET
