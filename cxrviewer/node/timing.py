"""Where the node's CPU goes: seconds per stage, summed over films (bench/bench_node.py).

Each stage is timed with the CPU clock of the thread doing it (``time.thread_time``), so a
stage's figure stays its own when the node's threads (SCP, workers, sender) share the cores;
the scoring processes time themselves and report their figures with their results.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager


class CpuTally:
    """CPU seconds per stage, added from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seconds: Counter[str] = Counter()

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self._seconds[stage] += seconds

    def add_all(self, seconds: Mapping[str, float]) -> None:
        with self._lock:
            self._seconds.update(seconds)

    @contextmanager
    def thread_cpu(self, stage: str) -> Iterator[None]:
        start = time.thread_time()
        try:
            yield
        finally:
            self.add(stage, time.thread_time() - start)

    def seconds(self) -> dict[str, float]:
        with self._lock:
            return dict(self._seconds)
