"""The private names of other packages that cxrviewer still uses (training/compat.py, the one
module allowed to) are all there in the installed versions: when a release moves one, this test
says which, and on what versions it was checked."""

from __future__ import annotations

import logging

import pytest

pytestmark = pytest.mark.training


def test_every_touch_point_is_there_in_the_installed_versions():
    pytest.importorskip("tensorflow")
    from training import compat

    assert compat.TOUCH_POINTS
    problems = compat.check()
    assert problems == [], "training/compat.py's workarounds no longer apply:\n" + "\n".join(problems)


def test_a_workaround_that_does_not_apply_says_so(caplog):
    pytest.importorskip("tensorflow")
    from training import compat

    class NotKeras:  # a model without the private method (as a Keras that renamed it)
        pass

    with caplog.at_level(logging.WARNING, logger="training.compat"):
        assert compat.build_from_a_local_batch(NotKeras(), dataset=None) is False
    assert "_maybe_symbolic_build" in caplog.text and "checked on keras" in caplog.text
