"""Content items highdicom builds once, encoded once, and stamped into every result that uses them.

An SR of one model repeats the same content items in every film's report: each group's
algorithm identification (TID 4019), each finding's code, its threshold, its present and
absent evaluations, the observer context. highdicom builds (and checks) each item in Python,
and pydicom encodes each again for every file: ~0.2 s of CPU a report, the most expensive
thing the DICOM node does after inference. Here an item built by highdicom is *frozen*: encoded
once (Explicit VR Little Endian, the results' transfer syntax) and read back as a dataset of
raw elements with that encoding, which pydicom's writer copies as they are
(``Dataset.set_original_encoding``: "to enable optimized writing ... without decoding the data
elements"). A :class:`Stamp` is a container whose frozen items are reused and whose slots take
the items a film changes (a tracking UID, a probability, the source image).

Only items whose encoding is plain ASCII are frozen: those read the same in every Specific
Character Set a result may carry (PS3.5 6.1.2.3); any other item is kept as built, and pydicom
encodes it with the result's character set as before.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag

#: the encoding every result is written in (output.encode: Explicit VR Little Endian)
_IMPLICIT, _LITTLE = False, True


def _encoded(ds: Dataset) -> bytes:
    buf = DicomBytesIO()
    buf.is_implicit_VR, buf.is_little_endian = _IMPLICIT, _LITTLE
    write_dataset(buf, ds)
    return buf.getvalue()


def freeze(ds: Dataset) -> Dataset:
    """``ds`` encoded once and read back: a dataset that pydicom writes by copying its bytes.

    The result must not be changed (it is shared by every report that uses it); :func:`stamped`
    makes a changed copy. An item with any non-ASCII text is returned as it is (see above).
    """
    if not _text_is_ascii(ds):
        return ds
    data = _encoded(ds)
    frozen = read_dataset(io.BytesIO(data), _IMPLICIT, _LITTLE)
    frozen.set_original_encoding(_IMPLICIT, _LITTLE, frozen._character_set)
    # nothing in it to resolve or mark: the encoder need not look inside (output.py); and its
    # bytes as a sequence item, for the stamps that put it in one (Stamp.__call__)
    frozen.cxr_frozen = True
    frozen.cxr_item = _as_item(data)
    return frozen


def is_frozen(ds: Dataset) -> bool:
    """Whether ``ds`` came from :func:`freeze` (a :func:`stamped` copy does not)."""
    return ds.__dict__.get("cxr_frozen", False)


def _as_item(encoded: bytes) -> bytes:
    """An encoded dataset as a sequence item of defined length (PS3.5 7.5.1)."""
    return _ITEM_TAG + struct.pack("<I", len(encoded)) + encoded


_ITEM_TAG = struct.pack("<HH", 0xFFFE, 0xE000)
_CONTENT_SEQUENCE = Tag(0x0040A730)
_TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"})


def _text_is_ascii(ds: Dataset) -> bool:
    """Whether every text value that ``ds`` would encode now, nested ones too, is ASCII (its
    other bytes are binary values, a float or a length, which no character set changes).
    Raw elements and frozen items were checked when they were frozen."""
    for element in ds.elements():
        if element.is_raw:
            continue
        if element.VR == "SQ":
            if not all(is_frozen(item) or _text_is_ascii(item) for item in element.value):
                return False
        elif element.VR in _TEXT_VRS and element.value is not None:
            values = element.value if isinstance(element.value, (list, tuple)) else [element.value]
            # a person name or a number is written as its str()
            if not all((v if isinstance(v, (str, bytes)) else str(v)).isascii() for v in values):
                return False
    return True


def stamped(item: Dataset, **values) -> Dataset:
    """A copy of the frozen ``item`` with the elements named by keyword set to ``values``.

    The other elements are shared with ``item`` (raw, written as they are); the ones set are
    encoded by pydicom as any built element.
    """
    # the elements set get new DataElements: setting a keyword that is there would change the
    # value of the element object ``item`` shares
    changed = {tag_for_keyword(keyword) for keyword in values}
    out = Dataset({element.tag: element for element in item.elements() if element.tag not in changed})
    if item.original_encoding != (None, None):
        out.set_original_encoding(*item.original_encoding, out._character_set)
    for keyword, value in values.items():
        if isinstance(value, RawDataElement):  # already encoded (floats())
            out[value.tag] = value
        else:
            setattr(out, keyword, value)
    return out


def frozen_sequence(keyword: str, items: Sequence) -> RawDataElement | Sequence:
    """The sequence element ``keyword`` of ``items``, for :func:`stamped`: when every item is
    frozen, one raw element of their bytes (each a sequence item, PS3.5 7.5), which the writer
    copies as it is; else the items as a sequence, for pydicom to encode."""
    if not all(is_frozen(item) for item in items):
        return Sequence(items)
    return _raw_sequence(Tag(tag_for_keyword(keyword)), (item.cxr_item for item in items))


def _raw_sequence(tag: BaseTag, items) -> RawDataElement:
    value = b"".join(items)
    return RawDataElement(tag, "SQ", len(value), value, 0, _IMPLICIT, _LITTLE)


def floats(keyword: str, values: np.ndarray) -> RawDataElement:
    """The FL element ``keyword`` of ``values``, encoded as the results are (IEEE 754 single
    precision, little endian: PS3.5 6.2, A.2), for :func:`stamped`.

    A long list of numbers (a polyline's points) costs pydicom a checked Python float each when
    it is set, more than the rest of its item; numpy encodes them at once, with the rounding
    pydicom's writer applies (``struct`` format ``f``: to nearest).
    """
    tag = Tag(tag_for_keyword(keyword))
    if dictionary_VR(tag) != "FL":
        raise ValueError(f"{keyword} is not an FL element")
    data = np.ascontiguousarray(values, dtype="<f4").tobytes()
    return RawDataElement(tag, "FL", len(data), data, 0, _IMPLICIT, _LITTLE)


@dataclass(frozen=True)
class Stamp:
    """A container content item as highdicom built it, to be filled again for each film.

    ``head``: the container without its content; ``items``: its content items in order, frozen;
    ``slots``: for each name, the position of the item that each use replaces (the frozen item
    there is the template :meth:`item` gives, for :func:`stamped`).
    """

    head: Dataset
    items: tuple[Dataset, ...]
    slots: Mapping[str, int]

    @classmethod
    def of(cls, container: Dataset, slots: Mapping[str, Callable[[Dataset], bool]]) -> Stamp:
        """The stamp of the highdicom-built ``container``; each slot names the one item of its
        content that its test picks (a test that picks none, or more than one, is a bug)."""
        content = list(container.ContentSequence)
        at = {}
        for name, test in slots.items():
            hits = [i for i, item in enumerate(content) if test(item)]
            if len(hits) != 1:
                raise ValueError(f"slot {name!r} matches {len(hits)} items of the container")
            at[name] = hits[0]
        head = Dataset()
        for element in container.elements():
            if element.tag != 0x0040A730:  # Content Sequence
                head.add(element)
        return cls(
            head=freeze(head),
            items=tuple(freeze(item) for item in content),
            slots=MappingProxyType(at),
        )

    def item(self, slot: str) -> Dataset:
        """The (frozen) item highdicom built in ``slot``: a template for what goes there."""
        return self.items[self.slots[slot]]

    def __call__(self, **items: Dataset) -> Dataset:
        """The container with ``items`` in their slots (every slot must be given).

        When every item is frozen or ASCII, the container's Content Sequence is written here
        as one raw element: the frozen items' bytes as they are, the others encoded now, each
        as a sequence item (PS3.5 7.5); the writer then copies the whole group. Otherwise it is
        a sequence of the items, for pydicom to encode with the result's character set.
        """
        if items.keys() != self.slots.keys():
            raise TypeError(f"a stamp takes exactly the items {sorted(self.slots)}")
        content = list(self.items)
        for name, item in items.items():
            content[self.slots[name]] = item
        out = stamped(self.head)
        if not all(is_frozen(item) for item in self.items) or not all(
                is_frozen(item) or _text_is_ascii(item) for item in items.values()):
            out.ContentSequence = Sequence(content)
            return out
        out[_CONTENT_SEQUENCE] = _raw_sequence(
            _CONTENT_SEQUENCE, (item.cxr_item if is_frozen(item) else _as_item(_encoded(item)) for item in content))
        out.cxr_frozen = True  # all of it is encoded (it is not shared: nothing needs its item bytes)
        return out


def concept(item: Dataset) -> str:
    """The code value of a content item's concept name ('' for an item without one)."""
    names = item.get("ConceptNameCodeSequence")
    return str(names[0].CodeValue) if names else ""
