"""A film that cannot be opened leaves the current film on screen and says why once."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")

from uihelpers import WAIT_MS, open_and_wait, shown  # noqa: E402

from cxrviewer.paths import samples_dir  # noqa: E402

pytestmark = pytest.mark.gui


@pytest.mark.parametrize("name,data", [("notes.png", b"this is not a picture\n"), ("scan.dcm", b"\0" * 128 + b"DICM" + b"\1" * 64)])
def test_a_failed_open_keeps_the_film_and_says_it_once(qtbot, window, dialogs, tmp_path, name, data):
    good = samples_dir() / "00000103_000.png"
    assert open_and_wait(qtbot, window, [good]) is True
    before = shown(qtbot, window).copy()
    bad = tmp_path / name
    bad.write_bytes(data)
    window.open_paths([bad])
    qtbot.waitUntil(lambda: len(dialogs) >= 1, timeout=WAIT_MS)
    qtbot.wait(500)  # any further dialogs would come now
    qtbot.waitUntil(window.render_idle, timeout=WAIT_MS)
    errors = [d for d in dialogs if name in d[2]]
    assert len(dialogs) == 1 and len(errors) == 1, dialogs
    assert window.model.entry is not None and window.model.entry.path == good
    assert window.model.prediction is not None
    assert np.array_equal(shown(qtbot, window), before)
