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

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def line(self) -> str:
        rate = self.scored / self.seconds if self.seconds > 0 else 0.0
        parts = [f"{self.scored} scored", f"{self.failed} failed"]
        if self.skipped:
            parts.append(f"{self.skipped} already done")
        if self.cancelled:
            parts.append("stopped early")
        errs = ", ".join(f"{k} {v}" for k, v in sorted(self.errors.items()))
        return (
            f"{', '.join(parts)} of {self.total} files in {self.seconds:.1f} s ({rate:.1f} films/s)"
            + (f"; errors: {errs}" if errs else "")
        )
