"""What a scoring run did, for the one line the CLI and the app show at its end."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Summary:
    total: int = 0
    scored: int = 0
    failed: int = 0
    skipped: int = 0
    cancelled: bool = False
    seconds: float = 0.0
    errors: Counter = field(default_factory=Counter)
    #: films the model does not read (cxrviewer.applicability): not scored, not failures
    not_applicable: int = 0
    #: films scored although outside the model's use (``--score-all``), among ``scored``
    outside_use: int = 0

    def add(self, status: str, error_type: str | None = None, outside_use: bool = False) -> None:
        """Count one film's row by its status (``ok``, ``not_applicable`` or ``error``)."""
        if status == "ok":
            self.scored += 1
            self.outside_use += bool(outside_use)
        elif status == "not_applicable":
            self.not_applicable += 1
        else:
            self.failed += 1
            self.errors[error_type or "Error"] += 1

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def line(self) -> str:
        rate = self.scored / self.seconds if self.seconds > 0 else 0.0
        scored = f"{self.scored} scored"
        if self.outside_use:
            scored += f" ({self.outside_use} outside the model's use)"
        parts = [scored, f"{self.failed} failed"]
        if self.not_applicable:
            parts.append(f"{self.not_applicable} not applicable")
        if self.skipped:
            parts.append(f"{self.skipped} already done")
        if self.cancelled:
            parts.append("stopped early")
        errs = ", ".join(f"{k} {v}" for k, v in sorted(self.errors.items()))
        return (
            f"{', '.join(parts)} of {self.total} files in {self.seconds:.1f} s ({rate:.1f} films/s)"
            + (f"; errors: {errs}" if errs else "")
        )
