"""Command line: ``cxrviewer score | validate | export | info | listen | query | retrieve``; no subcommand starts the desktop app.

Exit codes: 0 every film scored; 1 some films could not be scored (their rows say why); 2 usage
or setup errors (bad arguments, a missing input, an output that is one of the inputs, an unusable
model); 3 the results cannot be written (a full disk, an I/O error, an output that is not a
regular file, a name too long, a results file of something else, another run writing the same
file; the rows written before stay and the file stays resumable); 130 after Ctrl+C and 143 after
SIGTERM (both finish the films in hand, write their rows and print the summary first). Errors are
one line on stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from .. import __version__
from ..io.dicom import install_decoder_traceback_filter
from ..errors import (
    ClusterError,
    CxrError,
    EngineError,
    MissingFolderError,
    ModelError,
    NoDicomSourceError,
    NoDisplayError,
    OutputError,
    OutputFormatError,
    OutputInUseError,
    PacsQueryError,
    PacsRetrieveError,
    RetrieveCancelledError,
    SpoolError,
    UnknownClassError,
    UnknownResultsFileError,
)
from . import export, info, listen, query, retrieve, score, validate
from .common import EXIT_INTERRUPTED, EXIT_OK, EXIT_OUTPUT, EXIT_USAGE

logger = logging.getLogger("cxrviewer")

#: The subcommands, each a module with ``add_parser(subparsers)`` and ``run(args) -> exit code``.
COMMANDS = {"score": score, "validate": validate, "export": export, "info": info, "listen": listen, "query": query,
            "retrieve": retrieve}
SUBCOMMANDS = tuple(COMMANDS)

#: The options to name when an error of this kind is printed (library messages name none). A
#: subcommand's module may have its own ``FLAG_HINTS``, asked first; and a subcommand that knows
#: which option an error came from sets ``flags`` on it (``cxrviewer listen`` does, for
#: :class:`NodeConfigError`): that one is named instead.
FLAG_HINTS: dict[type, str] = {
    UnknownResultsFileError: "--out / --overwrite",
    OutputInUseError: "--out",
    EngineError: "--backend / --precision / --device",
    ModelError: "--model",
    UnknownClassError: "--classes",
    NoDicomSourceError: "--format dicom-sc",
    MissingFolderError: "--out / --parents",
    OutputFormatError: "--out / --format",
    SpoolError: "--spool",
    ClusterError: "--engine ray / --ray-address",
    RetrieveCancelledError: "",
    PacsQueryError: "--pacs / --calling-ae / --timeout / --tls-ca",
    PacsRetrieveError: "--pacs / --method / --move-to-port / --calling-ae",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cxrviewer",
        description="Chest X-ray viewer and scorer. Run with no subcommand (or with files) to open the desktop app.",
    )
    parser.add_argument("--version", action="version", version=f"cxrviewer {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(SUBCOMMANDS) + "}")
    for name in SUBCOMMANDS:
        COMMANDS[name].add_parser(sub)
    # `cxrviewer listen ... -v` works as well as `cxrviewer -v listen ...`: the flag is accepted after
    # the subcommand too (SUPPRESS keeps a -v given before it from being reset to 0).
    for subparser in sub.choices.values():
        subparser.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                               help="more log output (-vv for debug)")
    return parser


#: Libraries whose INFO lines describe their own internals (highdicom logs ~30 lines for each
#: object it builds): with -v they stay at WARNING so that -v means "a line per film"; -vv shows them.
QUIET_LIBRARIES = ("highdicom", "pydicom", "pynetdicom", "PIL", "matplotlib")


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING if verbosity <= 1 else logging.DEBUG)
    # a film pydicom cannot decode is one error line of ours, not pydicom's traceback too
    install_decoder_traceback_filter()


def _wants_cli(argv: Sequence[str]) -> bool:
    """CLI when the first argument (after -v flags) is a subcommand or --help/--version."""
    for a in argv:
        if a in ("-v", "-vv", "-vvv", "--verbose"):
            continue
        return a in SUBCOMMANDS or a in ("-h", "--help", "--version")
    return False


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not _wants_cli(argv):
        return gui_main(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    command = COMMANDS[args.command]
    if hasattr(command, "check_args"):
        command.check_args(args, parser)
    _configure_logging(args.verbose)
    try:
        return command.run(args)
    except CxrError as exc:
        hints = [*getattr(command, "FLAG_HINTS", {}).items(), *FLAG_HINTS.items()]
        hint = getattr(exc, "flags", None) or next((flags for kind, flags in hints if isinstance(exc, kind)), None)
        print(f"cxrviewer: error: {exc}" + (f" ({hint})" if hint else ""), file=sys.stderr)
        return EXIT_OUTPUT if isinstance(exc, OutputError) else EXIT_USAGE
    except KeyboardInterrupt:
        print("cxrviewer: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `cxrviewer info | head`: the reader left; not an error of ours
        sys.stderr.close()
        return EXIT_OK


def gui_main(argv: Sequence[str] | None = None) -> int:
    """Start the desktop app with optional files/folders to open."""
    try:
        from ..ui.app import run_app
    except ImportError as exc:
        print(f"cxrviewer: the desktop app needs PySide6 ({exc}). Install it with `pip install PySide6-Essentials`, "
              "or use the `score`, `export` and `info` subcommands.", file=sys.stderr)
        return EXIT_USAGE
    try:
        return run_app(list(sys.argv[1:] if argv is None else argv))
    except NoDisplayError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
