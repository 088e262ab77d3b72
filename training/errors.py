"""Errors a training user can cause. Each message says what happened and what to do next."""

from __future__ import annotations

from cxrviewer.errors import CxrError


class TrainingError(CxrError):
    """Base class of the errors ``cxr-train`` reports on one line."""


class DataError(TrainingError):
    """A labels file, image folder or class-folder tree cannot be used as training data."""


class LeakageError(TrainingError):
    """A patient appears in more than one of train/valid/test."""


class WeightsError(TrainingError):
    """A weights file does not fit the DenseNet121 + GAP + Dense architecture."""


class RunError(TrainingError):
    """A run directory is missing files that ``evaluate`` or ``export`` need."""


class Int8RejectedError(TrainingError):
    """The int8 model failed its parity check (the report says by how much)."""
