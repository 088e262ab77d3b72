"""`-v` works before or after the subcommand, and means a line per film, not the libraries' internals."""

from __future__ import annotations

import logging

from cxrviewer.cli import _configure_logging, build_parser


def test_verbose_after_the_subcommand():
    parser = build_parser()
    assert parser.parse_args(["listen", "--status", "--spool", "S", "-v"]).verbose == 1
    assert parser.parse_args(["-v", "listen", "--status", "--spool", "S"]).verbose == 1
    assert parser.parse_args(["info", "-vv"]).verbose == 2
    assert parser.parse_args(["info"]).verbose == 0


def test_verbose_keeps_library_chatter_out():
    root = logging.getLogger()
    saved = root.level, list(root.handlers)
    try:
        root.handlers[:] = []  # as in a fresh `cxrviewer` process (pytest installs its own handlers)
        _configure_logging(1)
        assert logging.getLogger("cxrviewer.node").getEffectiveLevel() == logging.INFO
        assert logging.getLogger("highdicom.sr").getEffectiveLevel() == logging.WARNING
        root.handlers[:] = []
        _configure_logging(2)
        assert logging.getLogger("highdicom.sr").getEffectiveLevel() == logging.DEBUG
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
        for name in ("highdicom", "pydicom", "pynetdicom", "PIL", "matplotlib"):
            logging.getLogger(name).setLevel(logging.NOTSET)
