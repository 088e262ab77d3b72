"""Keep ``None``, ``True`` and ``False`` alive under PySide6 builds that assume they are immortal.

PySide6 6.12.0 returns ``None`` from every C++ method declared ``void`` (``QLabel.setText``,
``QWidget.update``, ``QCoreApplication.processEvents``...), and ``True`` from
``SignalInstance.emit``, without taking a new reference: harmless from Python 3.12 on, where
those objects are immortal (PEP 683), but on Python 3.11 each call takes one reference from
them. A busy window makes tens of such calls per film, so after a few thousand calls the count
reaches zero and the interpreter aborts (``Fatal Python error: none_dealloc``), wherever the
last call happens to be. No calling pattern avoids it: every Qt setter is such a call.

:func:`protect_singletons` measures whether the running PySide6 has the fault and, if so, gives
the three objects what Python 3.12 gives them: a reference count so large that no session can
spend it. It is idempotent and does nothing on Python 3.12+ or on a PySide6 without the fault.
"""

from __future__ import annotations

import ctypes
import logging
import sys

logger = logging.getLogger(__name__)

#: References added to each singleton: 2**40 calls is about 35 years at 1,000 calls a second.
RESERVE = 2**40
_PROBES = 64
_protected: dict[str, bool] = {}


def _lost_per_call() -> tuple[float, float]:
    """References of ``None`` lost per void Qt call and of ``True`` per ``emit``, measured."""
    from PySide6.QtCore import QObject, Signal

    class _Probe(QObject):
        ping = Signal()

    probe = _Probe()
    probe.setObjectName("cxrviewer-refcount-probe")
    probe.ping.emit()
    none0, true0 = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(_PROBES):
        probe.setObjectName("cxrviewer-refcount-probe")
    none1 = sys.getrefcount(None)
    for _ in range(_PROBES):
        probe.ping.emit()
    true1 = sys.getrefcount(True)
    probe.deleteLater()
    return (none0 - none1) / _PROBES, (true0 - true1) / _PROBES


def _add_references(obj: object, count: int) -> None:
    # ob_refcnt is the first field of every object in a release build of CPython 3.11 (the
    # debug build's Py_TRACE_REFS puts two pointers before it: refused by the caller).
    cell = ctypes.c_ssize_t.from_address(id(obj))
    cell.value += count


def protect_singletons() -> bool:
    """Give None/True/False a reserve of references if this PySide6 drops them; True if it did."""
    if "done" in _protected:
        return _protected["done"]
    protected = False
    if sys.version_info < (3, 12) and sys.implementation.name == "cpython" and not hasattr(sys, "gettotalrefcount"):
        none_lost, true_lost = _lost_per_call()
        if none_lost > 0.5 or true_lost > 0.5:
            import PySide6

            logger.info(
                "PySide6 %s on Python %s drops a reference to None per void call (%.0f) and to True "
                "per emit (%.0f): giving None, True and False a reserve of %d references",
                PySide6.__version__, sys.version.split()[0], none_lost, true_lost, RESERVE,
            )
            for obj in (None, True, False):
                _add_references(obj, RESERVE)
            protected = True
    _protected["done"] = protected
    return protected
