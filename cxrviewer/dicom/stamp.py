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
the items a film changes (a tracking UID, a probability, the source image); :func:`spliced`
makes such an item from its frozen template's bytes, cut around the elements that change.

Only items whose encoding is plain ASCII are frozen: those read the same in every Specific
Character Set a result may carry (PS3.5 6.1.2.3); any other item is kept as built, and pydicom
encodes it with the result's character set as before.
"""

from __future__ import annotations

import copy
import functools
import io
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_data_element, write_dataset
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


class Encoded(bytes):
    """A content item already encoded as a sequence item (PS3.5 7.5.1: its tag, its length,
    its elements): what :func:`spliced` gives for a frozen item, and what a :class:`Stamp` puts
    in its content as it is."""


def encoded(item: Dataset | Encoded) -> Dataset | Encoded:
    """``item`` as :class:`Encoded` when its bytes are at hand (frozen), else as it is."""
    return Encoded(item.cxr_item) if isinstance(item, Dataset) and "cxr_item" in item.__dict__ else item


def _item_bytes(item: Dataset | Encoded) -> bytes:
    """``item`` as a sequence item: its bytes when they are at hand, else encoded now."""
    item = encoded(item)
    return item if isinstance(item, Encoded) else _as_item(_encoded(item))


def spliced(item: Dataset, **values) -> Encoded | Dataset:
    """The frozen ``item`` with the top-level elements named by keyword set to ``values``, as
    an :class:`Encoded` item: its frozen bytes around those elements as they are, each new
    element encoded by pydicom's writer (``write_data_element``). A sequence's value is a list
    of items (datasets or :class:`Encoded`).

    What :func:`stamped` gives, without building and walking a dataset for each use. An item
    that is not frozen, or a new text value outside ASCII, gets :func:`stamped` itself (pydicom
    then encodes it with the result's character set).
    """
    keywords = tuple(values)
    order = _elements_of(keywords)
    if not is_frozen(item) or not all(_value_is_ascii(values[k], vr == "SQ") for _, vr, k in order):
        return stamped(item, **{k: _as_sequence(values[k]) if vr == "SQ" else values[k] for _, vr, k in order})
    cuts = item.__dict__.setdefault("cxr_cuts", {})
    pieces = cuts.get(keywords)
    if pieces is None:
        pieces = cuts[keywords] = _cut(item, tuple(tag for tag, _, _ in order))
    body = [pieces[0]]
    for (tag, vr, keyword), after in zip(order, pieces[1:]):
        body += (_element_bytes(tag, vr, values[keyword]), after)
    return Encoded(_as_item(b"".join(body)))


@functools.lru_cache(maxsize=256)
def _elements_of(keywords: tuple[str, ...]) -> tuple[tuple[BaseTag, str, str], ...]:
    """Each keyword's tag and VR, in the order of the tags (the order they are written in)."""
    return tuple(sorted((Tag(tag_for_keyword(k)), dictionary_VR(tag_for_keyword(k)), k) for k in keywords))


#: VRs whose explicit VR header has a 4-byte length after 2 reserved bytes (PS3.5 7.1.2)
_LONG_HEADER = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})


def _cut(item: Dataset, tags: tuple[Tag, ...]) -> tuple[bytes, ...]:
    """The frozen ``item``'s encoded elements cut out at ``tags``: the bytes before the first,
    between each, and after the last (each element's place from where it was read)."""
    data = item.cxr_item[8:]
    spans = {}
    for element in item.elements():
        if not element.is_raw:
            raise ValueError("a frozen item has only raw elements")
        start = element.value_tell - (12 if element.VR in _LONG_HEADER else 8)
        if data[start:start + 4] != struct.pack("<HH", element.tag.group, element.tag.element):
            raise ValueError(f"element {element.tag} is not where it was read")
        spans[element.tag] = (start, element.value_tell + element.length)
    missing = [t for t in tags if t not in spans]
    if missing:
        raise KeyError(f"the item has no element {missing[0]} to replace")
    pieces, at = [], 0
    for tag in tags:
        start, end = spans[tag]
        pieces.append(data[at:start])
        at = end
    pieces.append(data[at:])
    return tuple(pieces)


def _element_bytes(tag: BaseTag, vr: str, value) -> bytes:
    """The element ``tag`` of ``value`` as the results encode it (Explicit VR Little Endian).

    What needs no conversion is encoded here: bytes already encoded (a :class:`Encoded` item,
    :func:`floats`), and an ASCII text of a text VR, padded to even length as pydicom pads it
    (a UID with NUL, any other text with a space: PS3.5 6.2, 9.1); a decimal string as pydicom
    writes it (its original string). Anything else goes through pydicom's writer.
    """
    if vr == "SQ":  # its items' bytes: the caller checked they are ASCII (spliced)
        items = b"".join(_item_bytes(item) for item in value)
        return _header(tag, vr, len(items)) + items
    if isinstance(value, RawDataElement):
        return _header(tag, value.VR, len(value.value)) + value.value
    else:
        text = value if isinstance(value, str) else getattr(value, "original_string", None) if vr in ("DS", "IS") else None
        if vr in _PLAIN_TEXT_VRS and isinstance(text, str) and text.isascii() and "\\" not in text:
            data = text.encode("ascii")
            if len(data) % 2:
                data += b"\0" if vr == "UI" else b" "
            return _header(tag, vr, len(data)) + data
        if vr == "FD" and type(value) is float:  # IEEE 754 double, little endian (PS3.5 6.2)
            return _header(tag, vr, 8) + struct.pack("<d", value)
        if vr == "US" and type(value) is int and 0 <= value < 1 << 16:  # unsigned short, little endian
            return _header(tag, vr, 2) + struct.pack("<H", value)
        element = DataElement(tag, vr, value)
    buf = DicomBytesIO()
    buf.is_implicit_VR, buf.is_little_endian = _IMPLICIT, _LITTLE
    write_data_element(buf, element)
    return buf.getvalue()


#: text VRs whose one ASCII value pydicom writes as it is, padded (PS3.5 6.2): a backslash,
#: a value delimiter in some of them, is left to pydicom
_PLAIN_TEXT_VRS = frozenset({"CS", "DS", "IS", "LO", "LT", "SH", "ST", "UC", "UI", "UT"})


def _header(tag: BaseTag, vr: str, length: int) -> bytes:
    """An element's tag, VR and length in Explicit VR Little Endian (PS3.5 7.1.2): a 4-byte
    length after 2 reserved bytes for the VRs of :data:`_LONG_HEADER`, else a 2-byte one."""
    if vr in _LONG_HEADER:
        return struct.pack("<HH2sHI", tag >> 16, tag & 0xFFFF, vr.encode(), 0, length)
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr.encode(), length)


def _value_is_ascii(value, sequence: bool) -> bool:
    if sequence:
        return all(isinstance(v, Encoded) or is_frozen(v) or _text_is_ascii(v) for v in value)
    if isinstance(value, (bytes, int, float)):
        return True
    values = value if isinstance(value, (list, tuple)) else [value]
    return all(str(v).isascii() for v in values)


def _as_dataset(item: Dataset | Encoded) -> Dataset:
    """An :class:`Encoded` item read back (frozen), for a sequence pydicom encodes."""
    if not isinstance(item, Encoded):
        return item
    ds = read_dataset(io.BytesIO(item[8:]), _IMPLICIT, _LITTLE)
    ds.set_original_encoding(_IMPLICIT, _LITTLE, ds._character_set)
    ds.cxr_frozen = True
    ds.cxr_item = bytes(item)
    return ds


def _as_sequence(items) -> Sequence:
    return Sequence([_as_dataset(item) for item in items])


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
    there is the template :meth:`item` gives, for :func:`spliced`); ``template``: the head with
    an empty Content Sequence, frozen, that a use splices its content into.
    """

    head: Dataset
    items: tuple[Dataset, ...]
    slots: Mapping[str, int]
    template: Dataset

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
            if element.tag != _CONTENT_SEQUENCE:
                head.add(element)
        template = Dataset({element.tag: element for element in head.elements()})
        template.ContentSequence = Sequence()
        return cls(
            head=freeze(head),
            items=tuple(freeze(item) for item in content),
            slots=MappingProxyType(at),
            template=freeze(template),
        )

    def item(self, slot: str) -> Dataset:
        """The (frozen) item highdicom built in ``slot``: a template for what goes there."""
        return self.items[self.slots[slot]]

    def content(self, **items: Dataset | Encoded) -> list[Dataset | Encoded]:
        """The container's content items with ``items`` in their slots (every slot must be given)."""
        if items.keys() != self.slots.keys():
            raise TypeError(f"a stamp takes exactly the items {sorted(self.slots)}")
        content = list(self.items)
        for name, item in items.items():
            content[self.slots[name]] = item
        return content

    def __call__(self, **items: Dataset | Encoded) -> Encoded | Dataset:
        """The container with ``items`` in their slots (every slot must be given), as an
        :class:`Encoded` item: the template's bytes around its Content Sequence of the frozen
        items' bytes as they are and the others' (:func:`spliced`). A container with any text
        outside ASCII is a dataset, for pydicom to encode with the result's character set."""
        return spliced(self.template, ContentSequence=self.content(**items))


@dataclass(frozen=True)
class Nested:
    """A content item as highdicom built it, with elements to replace in an item nested in it:
    each use splices the new values into that item, and that item into each item above it.

    ``levels``: from the top, each item on the way down (frozen), the keyword of its sequence
    that leads further down, that sequence's items (frozen) and the index of the one taken.
    ``leaf``: the item whose elements a use sets (frozen).
    """

    levels: tuple[tuple[Dataset, str, tuple[Dataset, ...], int], ...]
    leaf: Dataset

    @classmethod
    def of(cls, item: Dataset, path: tuple[tuple[str, int], ...]) -> Nested:
        """``item``'s nested item at ``path`` (a sequence's keyword and an item's index, for
        each level down); ``item`` is left as it is."""
        node = copy.deepcopy(item)  # reading a raw sequence decodes it in the item itself
        levels = []
        for keyword, index in path:
            children = tuple(node[keyword].value)
            levels.append((freeze(node), keyword, tuple(freeze(child) for child in children), index))
            node = children[index]
        return cls(levels=tuple(levels), leaf=freeze(node))

    def __call__(self, **values) -> Encoded | Dataset:
        """The item with the nested item's elements named by keyword set to ``values``."""
        out = spliced(self.leaf, **values)
        for node, keyword, children, index in reversed(self.levels):
            items = list(children)
            items[index] = out
            out = spliced(node, **{keyword: items})
        return out


def put_sequence(ds: Dataset, keyword: str, items: list[Dataset | Encoded]) -> None:
    """Set the sequence ``keyword`` of ``ds``, a result's own dataset, to ``items``.

    When every item is :class:`Encoded`, frozen or ASCII, the sequence is one raw element of
    their bytes (each a sequence item, PS3.5 7.5), encoded now, which the writer copies as it
    is (``output.encode`` leaves it raw); else a sequence of the items, which pydicom encodes
    with the result's character set. Read as ``ds.<keyword>``, the raw element is decoded.
    """
    tag = Tag(tag_for_keyword(keyword))
    if tag in ds:
        del ds[tag]  # its element may be shared with a template
    if all(isinstance(item, Encoded) or is_frozen(item) or _text_is_ascii(item) for item in items):
        ds[tag] = _raw_sequence(tag, (_item_bytes(item) for item in items))
        ds.__dict__.setdefault("cxr_encoded", set()).add(tag)
    else:
        ds[tag] = DataElement(tag, "SQ", _as_sequence(items))


def is_encoded(ds: Dataset, tag: BaseTag) -> bool:
    """Whether the element ``tag`` of ``ds`` is one :func:`put_sequence` encoded (and is still raw)."""
    return tag in ds.__dict__.get("cxr_encoded", ()) and ds.get_item(tag).is_raw


def concept(item: Dataset) -> str:
    """The code value of a content item's concept name ('' for an item without one)."""
    names = item.get("ConceptNameCodeSequence")
    return str(names[0].CodeValue) if names else ""
