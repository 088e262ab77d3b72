"""What the subcommands share: exit codes, loading the model, checking the inputs."""

from __future__ import annotations

import errno
import os
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
