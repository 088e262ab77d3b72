"""What the subcommands share: exit codes, loading the model, checking the inputs."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from ..errors import MissingInputError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_OUTPUT = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl+C
EXIT_TERMINATED = 143  # 128 + SIGTERM (systemd, docker stop, timeout)


def load_classifier(args, threads: int = 0):
    from ..model import Classifier
    from ..paths import default_model_path

    return Classifier.load(args.model or default_model_path(), device=args.device, threads=threads,
                           backend=getattr(args, "backend", "auto"), precision=getattr(args, "precision", "auto"))


def check_inputs(inputs: Sequence[Path]) -> None:
    """A named input that does not exist is a typo, not a film: stop before any work. (A broken
    link or an unreadable file does exist: it gets an error row like any bad film.)"""
    for p in inputs:
        try:
            os.stat(p)
        except FileNotFoundError:
            if not os.path.islink(p):
                raise MissingInputError(f"{p}: no such file or folder.") from None
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                raise MissingInputError(f"{p}: the name is too long for the file system (at most 255 bytes a name).") from None
        except ValueError:
            raise MissingInputError(f"{p!r} is not a valid path.") from None


def sub_folder_hint(inputs: Sequence[Path | str], recursive: bool) -> str:
    """The hint for "no films found" where a folder given holds only sub-folders' films: they are
    taken with --recursive ("" when it was given, or no folder has sub-folders)."""
    if recursive:
        return ""
    for p in inputs:
        try:
            if os.path.isdir(p) and any(e.is_dir() for e in os.scandir(p)):
                return f" {p} has sub-folders: add --recursive (-r) to take the films in them."
        except OSError:
            continue
    return ""


def stop_code(stopped_by: list[int]) -> int:
    """The exit code after a stop asked by a signal: 143 for SIGTERM, else 130 (Ctrl+C)."""
    return EXIT_TERMINATED if stopped_by and stopped_by[0] == signal.SIGTERM else EXIT_INTERRUPTED


@contextlib.contextmanager
def ctrl_c_sets(stop: threading.Event, stopped_by: list[int] | None = None):
    """The first Ctrl+C (SIGINT) or SIGTERM asks the batch to stop after the films in hand, so the
    rows of every finished film reach the CSV and the summary is printed; a second one
    interrupts. ``stopped_by`` gets the first signal's number."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread (e.g. under a test runner)
        return

    def first(signum, frame) -> None:
        if stopped_by is not None and not stopped_by:
            stopped_by.append(signum)
        stop.set()
        what = "Ctrl+C" if signum == signal.SIGINT else "the signal"
        print(f"\ncxrviewer: stopping after the current films ({what} again to stop now)...", file=sys.stderr)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, first)
    previous_term = signal.signal(signal.SIGTERM, first)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_term)
