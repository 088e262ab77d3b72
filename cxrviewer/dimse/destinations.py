"""Where DICOM objects go: a DICOM AE (C-STORE) or a DICOMweb service (STOW-RS), and AE titles.

Plain frozen dataclasses made by :func:`parse_destination` (the node's ``--send-to``) or by the
app's PACS preferences; nothing here touches the network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..errors import NodeConfigError

# PS3.5 table 6.2-1, AE: at most 16 characters of the default repertoire, no backslash and no
# control characters; leading and trailing spaces are not significant; not all spaces.
_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")


def check_ae_title(title: str, what: str = "AE title") -> str:
    value = title.strip()
    if not value or not _AE_TITLE.match(value):
        raise NodeConfigError(
            f"{title!r} is not a valid {what}: 1 to 16 characters, letters, digits, spaces and "
            "punctuation other than a backslash (DICOM PS3.5 AE)."
        )
    return value


@dataclass(frozen=True)
class DicomDestination:
    """A DICOM AE that takes our results by C-STORE: ``AE@HOST:PORT``."""

    ae_title: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


@dataclass(frozen=True)
class WebDestination:
    """A DICOMweb service root that takes our results by STOW-RS (PS3.18 10.5)."""

    url: str

    def __str__(self) -> str:
        return self.url


Destination = DicomDestination | WebDestination


def parse_destination(text: str) -> Destination:
    """``AE@HOST:PORT`` (C-STORE) or ``http(s)://HOST[:PORT]/path`` (STOW-RS)."""
    text = text.strip()
    if text.lower().startswith(("http://", "https://")):
        parts = urlsplit(text)
        if not parts.hostname:
            raise NodeConfigError(f"{text!r} has no host name; give a DICOMweb address such as https://pacs.example/dicom-web.")
        return WebDestination(text.rstrip("/"))
    m = re.match(r"^(?P<ae>[^@]+)@(?P<host>\[[0-9A-Fa-f:.]+\]|[^:@\[\]]+):(?P<port>\d{1,5})$", text)
    if m is None:
        raise NodeConfigError(
            f"{text!r} is not a destination: write AE_TITLE@HOST:PORT for a DICOM node or an "
            "http(s):// address for a DICOMweb service."
        )
    port = int(m["port"])
    if not 0 < port < 65536:
        raise NodeConfigError(f"{text!r}: the port must be between 1 and 65535.")
    return DicomDestination(check_ae_title(m["ae"], "destination AE title"), m["host"].strip("[]"), port)
