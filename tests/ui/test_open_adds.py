"""File ▸ Open adds to the worklist (issue 28): a second folder or one more film joins the strip
instead of replacing it; File ▸ Close all empties it; the results link follows the current run."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6")

from uihelpers import WAIT_MS, open_and_wait  # noqa: E402

pytestmark = pytest.mark.gui


def test_open_adds_to_the_strip_and_close_all_clears_it(qtbot, window, film_folder, tmp_path, nih_images):
    first = film_folder(3)
    with qtbot.waitSignal(window.scoringFinished, timeout=60_000):
        assert window.open_paths([first])
    run1 = window.session.last_results
    assert window.status_extras.current_file() == run1 and window.status_extras.results.isVisible()
    names = [e.path.name for e in window.model.entries]
    assert len(names) == 3

    # one more film, opened by name: it joins the strip and is shown
    single = tmp_path / "extra.png"
    single.write_bytes(nih_images[1].read_bytes())
    assert open_and_wait(qtbot, window, [single]) is True
    assert [e.path.name for e in window.model.entries] == [*names, "extra.png"]
    assert window.model.entry.path == single and window.strip.isVisible()
    assert window.status_extras.current_file() == run1  # no new run: the link still names the CSV of these films

    # a second folder: its films join too, scored in a run of their own, and the link follows it
    second = tmp_path / "second"
    second.mkdir()
    for i, src in enumerate(nih_images[:2]):
        (second / f"b{i}.png").write_bytes(src.read_bytes())
    with qtbot.waitSignal(window.session.scoringStarted, timeout=WAIT_MS):
        assert window.open_paths([second])
    assert len(window.model.entries) == 6 and window.model.entry.path.parent == second
    run2 = window.session.last_results
    assert run2 != run1 and window.status_extras.current_file() == run2
    qtbot.waitUntil(lambda: window.session.scoring is False, timeout=60_000)
    assert window.status_extras.current_file() == run2

    # opening a film already in the list shows it, without a second entry
    open_again = window.model.entries[0].path
    window.open_paths([open_again])
    assert len(window.model.entries) == 6 and window.model.entry.path == open_again

    window.act_close_all.trigger()
    assert window.model.entries == [] and window.model.entry is None
    assert not window.status_extras.results.isVisible() and window.status_extras.current_file() is None
    assert not window.strip.isVisible()
    assert open_and_wait(qtbot, window, [single]) is True  # and it opens as before
    assert [e.path for e in window.model.entries] == [single]
