"""Checks on a results path before anything is written: a writable regular file, never an input."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from ..errors import OutputError, SameFileError


def output_error(path: Path, exc: OSError) -> OutputError:
    name = str(path)
    if exc.errno == errno.ENAMETOOLONG:
        return OutputError(f"{name}: the file name is too long for the file system (at most 255 bytes a name); choose a shorter one.")
    if exc.errno == errno.ELOOP:
        return OutputError(f"{name} is a symbolic link that loops back on itself; choose another results file.")
    if exc.errno == errno.ENOSPC:
        return OutputError(f"Cannot write {name}: the disk is full. Free some space, then run again to resume.")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return OutputError(f"Cannot write {name}: {exc.strerror}. Choose a folder you may write to.")
    return OutputError(f"Cannot write {name}: {exc.strerror or exc}.")


def check_output_file(path: Path) -> None:
    """Refuse, before anything is opened, an output that is not a regular file or a new name."""
    try:
        lst = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise output_error(path, exc) from None
    if stat.S_ISLNK(lst.st_mode):
        try:
            os.stat(path)
        except FileNotFoundError:
            raise OutputError(f"{path} is a broken symbolic link (it points to {os.readlink(path)}); choose another results file.") from None
        except OSError as exc:
            raise output_error(path, exc) from None
    st = os.stat(path)
    if stat.S_ISDIR(st.st_mode):
        raise OutputError(f"{path} is a folder; give a file name such as results.csv.")
    if not stat.S_ISREG(st.st_mode):
        raise OutputError(f"{path} is not a regular file (a pipe, device or socket); choose a results file on disk.")


def open_output(path: Path, flags: int) -> int:
    """Open without blocking on a pipe; refuse anything but a regular file."""
    flags |= getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a pipe nobody reads
            raise OutputError(f"{path} is not a regular file (a pipe, device or socket); choose a results file on disk.") from None
        if exc.errno == errno.EISDIR:
            raise OutputError(f"{path} is a folder; give a file name such as results.csv.") from None
        raise output_error(path, exc) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OutputError(f"{path} is not a regular file (a pipe, device or socket); choose a results file on disk.")
    if getattr(os, "O_NONBLOCK", 0):
        os.set_blocking(fd, True)  # only a pipe could have blocked; writes to a file wait as usual
    return fd


def refuse_inputs_as_output(out: Path, inputs: Iterable[Path]) -> None:
    """An output file must not be one of the inputs (same file, also through links)."""
    try:
        o = os.stat(out)
    except OSError:
        return
    for p in inputs:
        try:
            s = os.stat(p)
        except (OSError, ValueError):
            continue
        if (s.st_dev, s.st_ino) == (o.st_dev, o.st_ino):
            raise SameFileError(f"{out} is one of the films being read; writing there would destroy it. Choose another output file.")
