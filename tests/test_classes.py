"""One parser for a class list: labels or display names, any case, unknown names refused."""

from __future__ import annotations

import pytest

from cxrviewer.classes import CUSTOM, ClassChoice, display_name, resolve
from cxrviewer.errors import UnknownClassError
from tinymodel import LABELS


def test_rules_and_lists_parse():
    assert ClassChoice.parse("ALL") == ClassChoice("all")
    assert ClassChoice.parse(" positives ") == ClassChoice("positives")
    assert ClassChoice.parse("") == ClassChoice("none") == ClassChoice.parse(" , ")
    assert ClassChoice.parse("Mass, Pleural Thickening") == ClassChoice(CUSTOM, ("Mass", "Pleural Thickening"))
    assert ClassChoice.parse(["Mass"]) == ClassChoice(CUSTOM, ("Mass",))


def test_labels_and_display_names_resolve_to_the_models_labels():
    assert display_name("Pleural_Thickening") == "Pleural Thickening"
    assert resolve(["pleural thickening", "PLEURAL_THICKENING", "mass"], LABELS) == ("Pleural_Thickening", "Mass")
    assert ClassChoice.parse("Pleural  Thickening").check(LABELS).names == ("Pleural_Thickening",)


def test_unknown_names_are_refused_with_what_the_model_has():
    with pytest.raises(UnknownClassError, match=r"'Mas'.*Pleural Thickening"):
        ClassChoice.parse("Mas").check(LABELS)
    with pytest.raises(UnknownClassError):
        ClassChoice.parse("Mass,Mas").labels(LABELS, ())


def test_choice_labels():
    positives = ("Mass",)
    assert ClassChoice("all").labels(LABELS, positives) == tuple(LABELS)
    assert ClassChoice("none").labels(LABELS, positives) == ()
    assert ClassChoice("positives").labels(LABELS, positives) == positives
    assert ClassChoice.parse("effusion,mass").labels(LABELS, positives) == ("Effusion", "Mass")
