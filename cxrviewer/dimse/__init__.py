"""DICOM networking that the app and the node share: where objects go and how they get there.

:mod:`.destinations` names a DICOM AE (``AE@HOST:PORT``) or a DICOMweb service and checks AE
titles (nothing there touches the network); :mod:`.echo` is the Verification SCU (C-ECHO);
:mod:`.store` sends files by C-STORE, :mod:`.web` by STOW-RS. The app's Send to PACS and the
node's sender (:mod:`cxrviewer.node.sender`) both send through here, so the app never imports
the node. :mod:`.query` finds studies (C-FIND at Study Root, QIDO-RS) and :mod:`.retrieve` brings
their films into a retrieve cache (C-GET, C-MOVE, WADO-RS), for ``cxrviewer query`` /
``retrieve`` / ``score --pacs`` and the app's File ▸ Open from PACS (docs/pacs.md).

Importing the package loads only the destinations: pynetdicom and dicomweb-client are imported
by the calls that use them.
"""

from .destinations import Destination, DicomDestination, WebDestination, check_ae_title, parse_destination

__all__ = ["Destination", "DicomDestination", "WebDestination", "check_ae_title", "parse_destination"]
