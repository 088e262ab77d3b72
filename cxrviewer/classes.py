"""Which findings to draw: one parser for a class list, shared by the command line and the app.

A choice is a rule (``all``, ``none``, ``positives``) or a list of findings. A finding may be
named by the model's label (``Pleural_Thickening``) or by the name people read on screen
(``Pleural Thickening``), in any letter case. Unknown names are an error everywhere: the CLI's
``--classes``, the app's ``--classes`` and its saved settings all go through :func:`resolve`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .errors import UnknownClassError

#: The rules a choice can be instead of a list of findings.
RULES = ("positives", "all", "none")
#: A list of findings picked by name.
CUSTOM = "custom"


def display_name(label: str) -> str:
    """The finding's name as people read it: ``Pleural_Thickening`` -> ``Pleural Thickening``."""
    return label.replace("_", " ")


def name_key(name: str) -> str:
    """What two names of one finding share: ``pleural_thickening`` and ``Pleural  Thickening``."""
    return " ".join(name.replace("_", " ").split()).casefold()


def resolve(names: Sequence[str], labels: Sequence[str]) -> tuple[str, ...]:
    """The model's labels for ``names`` (labels or display names, any case), in the order given.

    Raises :class:`UnknownClassError` naming what the model has.
    """
    by_key = {name_key(label): label for label in labels}
    unknown = [n for n in names if name_key(n) not in by_key]
    if unknown:
        raise UnknownClassError(
            f"Unknown finding {', '.join(repr(n) for n in unknown)}; this model has: "
            f"{', '.join(display_name(label) for label in labels)} (or all, none, positives)."
        )
    return tuple(dict.fromkeys(by_key[name_key(n)] for n in names))


@dataclass(frozen=True)
class ClassChoice:
    """A rule (``positives``, ``all``, ``none``) or the findings in ``names`` (rule ``custom``)."""

    rule: str = "positives"
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.rule not in (*RULES, CUSTOM):
            raise ValueError(f"unknown class rule {self.rule!r}; choose one of {(*RULES, CUSTOM)}")
        object.__setattr__(self, "names", tuple(self.names))

    @classmethod
    def parse(cls, spec: str | Sequence[str]) -> "ClassChoice":
        """``"all"``, ``"none"`` (or empty), ``"positives"``, ``"Mass, Pleural Thickening"``, or a list."""
        if isinstance(spec, str):
            key = spec.strip().lower()
            if key in RULES:
                return cls(key)
            if key == "":
                return cls("none")
            spec = [s.strip() for s in spec.split(",")]
        names = tuple(s for s in spec if s.strip())
        return cls(CUSTOM, names) if names else cls("none")

    def check(self, labels: Sequence[str]) -> "ClassChoice":
        """The same choice with names replaced by the model's labels; raises on unknown names."""
        if self.rule != CUSTOM:
            return self
        return ClassChoice(CUSTOM, resolve(self.names, labels))

    def labels(self, labels: Sequence[str], positives: Sequence[str]) -> tuple[str, ...]:
        """The labels this choice draws, for a film whose positive findings are ``positives``."""
        if self.rule == "all":
            return tuple(labels)
        if self.rule == "none":
            return ()
        if self.rule == "positives":
            return tuple(positives)
        return resolve(self.names, labels)
