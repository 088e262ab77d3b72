"""Log lines never break ``cxrviewer score``'s progress bar (a terminal: the bar only shows on one)."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import termios
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import synthetic_pixels, write_png

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not hasattr(pty, "openpty"), reason="needs a pseudo-terminal")
def test_warnings_are_lines_of_their_own_above_the_bar(tmp_path, tiny_model):
    films = tmp_path / "films"
    films.mkdir()
    for i in range(3):
        write_png(films / f"f{i}.png", synthetic_pixels(96, 96))
    (films / "broken.png").write_bytes(b"not a picture")  # a per-film problem during the run
    leader, follower = pty.openpty()
    # a terminal 100 columns wide (a pty starts at 0 × 0, where tqdm draws an empty bar)
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "100"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cxrviewer", "score", str(films), "--out", str(tmp_path / "r.csv"),
         "--model", str(tiny_model), "--batch-size", "1"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=follower, stdin=subprocess.DEVNULL,
    )
    os.close(follower)
    out = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    proc.wait(timeout=120)
    os.close(leader)
    text = out.decode("utf-8", "replace")
    assert proc.returncode == 1, text  # one film could not be read
    assert "%|" in text, text  # the bar was drawn
    # every log line starts a line of its own: nothing of the bar (its "|" gauge) precedes it
    lines = re.split(r"[\r\n]+", text)
    warnings = [line for line in lines if "WARNING" in line]
    assert any("DEMO model" in w for w in warnings), text
    for line in warnings:
        assert line.lstrip().startswith("WARNING"), repr(line)
