"""One run at a time per results file: an OS lock on ``OUT.lock`` that dies with its process."""

from __future__ import annotations

import datetime
import errno
import logging
import os
import socket
from pathlib import Path

from ..errors import OutputInUseError
from .output_paths import open_output, output_error

logger = logging.getLogger(__name__)

def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


class RunLock:
    """One run per results file: an OS lock on ``<file>.lock`` that names its holder.

    ``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows: the kernel drops the lock when the
    process ends, however it ends. The lock file holds the holder's PID, host and start time for
    the message another run shows; it is removed on release.
    """

    def __init__(self, target: Path) -> None:
        self.target = Path(target)
        self.path = lock_path(self.target)
        self._fd: int | None = None
        for _ in range(20):
            fd = open_output(self.path, os.O_RDWR | os.O_CREAT)
            try:
                _lock(fd)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK, errno.EDEADLK):
                    os.close(fd)
                    raise output_error(self.path, exc) from None
                holder = _read_holder(fd)
                os.close(fd)
                raise OutputInUseError(
                    f"{self.target} is being written by another run ({holder or 'holder unknown'}); "
                    "wait for it to finish or stop it, or choose another results file."
                ) from None
            # the file we locked may have been removed by a holder releasing it just before
            if os.name == "nt" or _same_inode(fd, self.path):
                break
            os.close(fd)
        else:  # pragma: no cover - only under a storm of runs starting and stopping
            raise OutputInUseError(f"{self.target}: could not take its lock; try again.")
        self._fd = fd
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        note = f"pid {os.getpid()} on {socket.gethostname()}, started {started}\n".encode("utf-8", "replace")
        try:
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, note)
        except OSError:
            logger.debug("could not write the lock note %s", self.path)  # the lock itself holds

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        if os.name != "nt":
            try:
                os.unlink(self.path)  # while still locked: a run waiting on it checks the inode
            except OSError:
                pass
        try:
            os.close(fd)  # drops the lock
        except OSError:
            pass


def _lock(fd: int) -> None:
    if os.name == "nt":
        import msvcrt

        # a byte far past the note, so that another run can still read the note
        os.lseek(fd, 1 << 20, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _read_holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 512).decode("utf-8", "replace").strip()
    except OSError:
        return ""


def _same_inode(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
