"""What the app remembers between runs, as a dataclass persisted with ``QSettings``.

:func:`open_settings` gives the store: ``$CXRVIEWER_SETTINGS`` (an INI file) when set, which is
how tests, screenshots and the packaging check keep away from the user's settings; otherwise
the platform's native store under "cxrviewer/cxrviewer".

INI files hand every value back as text (and a one-item list as a bare string), so every read
here converts and falls back to the default on anything it cannot use.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings

from ..heatmap import COLORMAPS, DEFAULT_COLORMAP
from ..model import BACKEND_CHOICES, PRECISION_CHOICES
from ..render import MODES
from .state.viewer_model import POLICIES, Display

logger = logging.getLogger(__name__)

ORG = APP = "cxrviewer"
SETTINGS_ENV = "CXRVIEWER_SETTINGS"
MAX_RECENT = 10


def open_settings() -> QSettings:
    path = os.environ.get(SETTINGS_ENV)
    if path:
        return QSettings(path, QSettings.Format.IniFormat)
    return QSettings(ORG, APP)


def _str_list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value if str(v)]


def _bool(value: Any, default: bool) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    if value is None:
        return default
    return bool(value)


def _float(value: Any, default: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


@dataclass
class AppSettings:
    opacity: float = 0.4
    colormap: str = DEFAULT_COLORMAP
    mode: str = "heatmap"
    policy: str = "positives"
    custom: list[str] = field(default_factory=list)
    invert: bool = False
    overlay: bool = False  # View ▸ Technique and demographics overlay
    last_folder: str = ""
    recent: list[str] = field(default_factory=list)
    model_path: str = ""  # a model chosen with File ▸ Load model; "" = the default
    backend: str = "auto"  # what runs the model: auto measures the fastest that keeps parity
    precision: str = "auto"
    geometry: QByteArray | None = None
    splitter: QByteArray | None = None

    # ------------------------------------------------------------------ store
    @classmethod
    def load(cls, store: QSettings) -> AppSettings:
        s = cls()
        s.opacity = min(1.0, max(0.0, _float(store.value("display/opacity"), s.opacity)))
        cmap = str(store.value("display/colormap", s.colormap))
        s.colormap = cmap if cmap in COLORMAPS else DEFAULT_COLORMAP
        mode = str(store.value("display/mode", s.mode))
        s.mode = mode if mode in MODES else "heatmap"
        policy = str(store.value("display/policy", s.policy))
        s.policy = policy if policy in POLICIES else "positives"
        s.custom = _str_list(store.value("display/custom"))
        s.invert = _bool(store.value("display/invert"), False)
        s.overlay = _bool(store.value("display/overlay"), False)
        s.last_folder = str(store.value("paths/last_folder", "") or "")
        s.recent = _str_list(store.value("paths/recent"))[:MAX_RECENT]
        s.model_path = str(store.value("model/path", "") or "")
        backend = str(store.value("model/backend", s.backend) or s.backend)
        s.backend = backend if backend in BACKEND_CHOICES else "auto"
        precision = str(store.value("model/precision", s.precision) or s.precision)
        s.precision = precision if precision in PRECISION_CHOICES else "auto"
        geometry = store.value("window/geometry")
        s.geometry = geometry if isinstance(geometry, QByteArray) else None
        splitter = store.value("window/splitter")
        s.splitter = splitter if isinstance(splitter, QByteArray) else None
        return s

    def save(self, store: QSettings) -> None:
        store.setValue("display/opacity", float(self.opacity))
        store.setValue("display/colormap", self.colormap)
        store.setValue("display/mode", self.mode)
        store.setValue("display/policy", self.policy)
        store.setValue("display/custom", list(self.custom))
        store.setValue("display/invert", bool(self.invert))
        store.setValue("display/overlay", bool(self.overlay))
        store.setValue("paths/last_folder", self.last_folder)
        store.setValue("paths/recent", list(self.recent))
        store.setValue("model/path", self.model_path)
        store.setValue("model/backend", self.backend)
        store.setValue("model/precision", self.precision)
        if self.geometry is not None:
            store.setValue("window/geometry", self.geometry)
        if self.splitter is not None:
            store.setValue("window/splitter", self.splitter)
        store.sync()

    # ---------------------------------------------------------------- display
    def display(self) -> Display:
        return Display(
            policy=self.policy, custom=tuple(self.custom), alpha=self.opacity,
            colormap=self.colormap, mode=self.mode, invert=self.invert,
        )

    def take_display(self, d: Display) -> None:
        self.opacity, self.colormap, self.mode = d.alpha, d.colormap, d.mode
        self.policy, self.custom, self.invert = d.policy, list(d.custom), d.invert

    def add_recent(self, path: Path) -> None:
        p = str(Path(path).resolve())
        self.recent = [p] + [r for r in self.recent if r != p]
        del self.recent[MAX_RECENT:]
