"""A picture of a film outside the model's use (review): `export` of a lateral asked for by name,
or the Secondary Capture of `score --score-all`, goes to a reader or a PACS; the picture itself
says the findings lie outside the model's use, as the app's warning does."""

from __future__ import annotations

import numpy as np

from cxrviewer.io import read_film
from cxrviewer.model import Classifier
from cxrviewer.types import ANY, Applicability
from cxrviewer.render import OUTSIDE_USE_MARK, annotate, outside_use_mark
from gatefilms import frontal_chest, lateral_chest


def test_a_lateral_films_picture_carries_the_outside_use_banner(tmp_path, tiny_model):
    clf = Classifier.load(tiny_model, device="cpu")
    lateral = read_film(lateral_chest(tmp_path / "l"))
    frontal = read_film(frontal_chest(tmp_path / "f"))
    assert outside_use_mark(lateral, clf.info) == f"{OUTSIDE_USE_MARK}: lateral view (View Position LL)"
    assert outside_use_mark(frontal, clf.info) is None
    pred = clf.predict_one(lateral)
    import dataclasses

    drawn = annotate(lateral, pred, clf.info)
    # the same film for a model that reads any view: only the banner may differ
    any_view = dataclasses.replace(clf.info, applicable=Applicability(view_positions=ANY))
    as_frontal = annotate(lateral, pred, any_view)
    assert drawn.shape == as_frontal.shape
    differs = np.argwhere((drawn != as_frontal).any(axis=2))
    band_top = drawn.shape[0] - (drawn.shape[0] - differs[:, 0].min())
    assert differs.size and band_top > drawn.shape[0] * 0.9  # only the bottom band differs: the banner
    assert (drawn[-5:, 5] != as_frontal[-5:, 5]).any()  # coloured across the width
