"""pynetdicom's association threads wake less often when quiet (cxrviewer.dimse.pacing).

Real associations on loopback between pynetdicom AEs in this process: what the pacing applies
with the installed pynetdicom, the CPU that four quiet associations cost with and without it,
C-ECHO round trips, a release, and what happens with a pynetdicom that lacks what it expects.
"""

from __future__ import annotations

import logging
import os
import queue
import statistics
import threading
import time
from types import SimpleNamespace

import pytest

pynetdicom = pytest.importorskip("pynetdicom")
from pynetdicom import AE, evt
from pynetdicom.sop_class import Verification

from cxrviewer.dimse import pacing


class _Pair:
    """An SCP and the associations an SCU opened to it, both sides paced or neither."""

    def __init__(self, paced: bool, n: int, reactor_tick: float = pacing.REACTOR_TICK) -> None:
        self.reactor_tick = reactor_tick
        self.applied: list[set[str]] = []
        self.applied_lock = threading.Lock()
        handlers = [(evt.EVT_CONN_OPEN, self._on_open)] if paced else []
        scp = AE(ae_title="SCP")
        scp.add_supported_context(Verification)
        self.scp = scp
        self.server = scp.start_server(("127.0.0.1", 0), block=False, evt_handlers=handlers)
        scu = AE(ae_title="SCU")
        scu.add_requested_context(Verification)
        scu.dimse_timeout = 5  # a lost wake-up would show as a 5 s C-ECHO
        port = self.server.server_address[1]
        self.assocs = [scu.associate("127.0.0.1", port, ae_title="SCP", evt_handlers=handlers) for _ in range(n)]
        assert all(a.is_established for a in self.assocs)

    def _on_open(self, event) -> None:
        with self.applied_lock:
            self.applied.append(pacing.pace(event.assoc, reactor_tick=self.reactor_tick))

    def close(self) -> None:
        for a in self.assocs:
            if a.is_established:
                a.release()
        if self.server is not None:
            self.server.shutdown()
            self.server = None


@pytest.fixture
def pairs():
    made: list[_Pair] = []
    yield lambda paced, n, **kw: made.append(_Pair(paced, n, **kw)) or made[-1]
    for p in made:
        p.close()


def _wakes(thread: threading.Thread) -> int:
    """How many times the thread has gone to sleep and woken (Linux: voluntary context switches)."""
    with open(f"/proc/self/task/{thread.native_id}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("voluntary_ctxt_switches"))


def _quiet_cost(pair: _Pair, seconds: float) -> tuple[float, float]:
    """Wake-ups a second and CPU (a fraction of one core) of the SCP's association threads
    (each association's reactor and DUL) while nothing is sent, on their own clocks."""
    time.sleep(0.3)  # the associations settle
    threads = [t for a in pair.scp.active_associations for t in (a, a.dul)]
    assert len(threads) == 2 * len(pair.assocs)
    clocks = [time.pthread_getcpuclockid(t.ident) for t in threads]
    w0, c0, t0 = sum(map(_wakes, threads)), sum(map(time.clock_gettime, clocks)), time.perf_counter()
    time.sleep(seconds)
    elapsed = time.perf_counter() - t0
    return (sum(map(_wakes, threads)) - w0) / elapsed, (sum(map(time.clock_gettime, clocks)) - c0) / elapsed


def test_both_threads_are_paced_with_the_installed_pynetdicom(pairs):
    """Fails when a pynetdicom release renames or changes what the pacing relies on: the
    associations would then poll every millisecond again (same results, more CPU)."""
    pair = pairs(True, 1)
    deadline = time.monotonic() + 2
    while len(pair.applied) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sorted(pair.applied, key=len) == [{"dul"}, {"dul", "reactor"}]  # the SCU's side, the SCP's
    assoc = pair.assocs[0]
    assert assoc.dul._run_loop_delay == pacing.DUL_DELAY
    assert type(assoc._reactor_checkpoint) is threading.Event  # the SCU's reactor is left as it is
    (acceptor,) = pair.scp.active_associations
    assert acceptor.dul._run_loop_delay == pacing.DUL_DELAY
    assert isinstance(acceptor._reactor_checkpoint, pacing._QueueCheckpoint)


@pytest.mark.slow
@pytest.mark.skipif(not (hasattr(time, "pthread_getcpuclockid") and os.path.isdir("/proc/self/task")),
                    reason="needs per-thread CPU clocks and Linux's /proc")
def test_quiet_associations_wake_less_and_cost_less_cpu(pairs):
    plain = pairs(False, 4)
    wakes_as_made, cpu_as_made = _quiet_cost(plain, 1.5)
    plain.close()
    paced = pairs(True, 4)
    wakes, cpu = _quiet_cost(paced, 1.5)
    paced.close()
    # measured here: ~10,000 wake-ups a second and 16-22 % of a core as pynetdicom makes them,
    # ~1,400 and ~4-5 % paced (the CPU figures shrink on a busy machine, the ratio with them)
    said = f"4 quiet associations: {wakes:.0f} wake-ups/s and {cpu:.1%} of a core paced, {wakes_as_made:.0f} and {cpu_as_made:.1%} as made"
    assert wakes < 0.4 * wakes_as_made, said
    assert cpu < 0.8 * cpu_as_made, said


def test_echoes_and_release_stay_prompt(pairs):
    pair = pairs(True, 1)
    assoc = pair.assocs[0]
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        status = assoc.send_c_echo()
        times.append(time.perf_counter() - t0)
        assert status.Status == 0x0000
    # each request and response waits at most DUL_DELAY more on each side to be noticed: ~16 ms
    # here (~5 ms as pynetdicom makes them); bounds left wide for a busy machine
    assert statistics.median(times) < 0.04, f"C-ECHO round trips: median {statistics.median(times) * 1000:.1f} ms"
    assert max(times) < 2.5  # a response the SCU's reactor took from under send_c_echo would take 5 s
    t0 = time.perf_counter()
    assoc.release()
    deadline = time.monotonic() + 2
    while pair.scp.active_associations and time.monotonic() < deadline:
        time.sleep(0.005)
    assert not pair.scp.active_associations
    assert time.perf_counter() - t0 < 1.0


def test_no_response_is_lost_when_the_reactors_nap_ends_as_it_comes():
    """The SCU's reactor naps on the queue that its ``send_*`` waits on for the response. When
    the nap times out just as the response is queued (put() holding the queue's lock while the
    napper waits to take it back), put()'s one wake-up goes to the napper, which then says
    "timed out": ``send_*`` waited out its whole DIMSE timeout. 30 s sending rounds in the
    node's sender on a busy machine (bench/bench_node.py). Here that interleaving is forced:
    the queue's lock is held across the end of the nap, and the response is queued as
    Queue.put does it."""
    messages = queue.Queue()
    checkpoint = pacing._QueueCheckpoint(messages, tick=0.3)
    reactor = threading.Thread(target=checkpoint.wait)
    got: list[float] = []

    def send() -> None:  # what Association.send_c_echo does after sending the request
        messages.get(timeout=5)
        got.append(time.perf_counter())

    t0 = time.perf_counter()
    reactor.start()  # naps first, so it is first in line for put()'s wake-up
    time.sleep(0.05)
    user = threading.Thread(target=send)
    user.start()
    time.sleep(0.05)
    with messages.not_empty:  # put(), with its lock held past the end of the nap (0.3 s)
        time.sleep(0.45)
        messages.queue.append((1, "C-ECHO-RSP"))
        messages.unfinished_tasks += 1
        messages.not_empty.notify()
        queued = time.perf_counter()
    reactor.join(2)
    user.join(6)
    assert got, "the response was never taken"
    assert got[0] - queued < 0.5, f"the response waited {got[0] - queued:.1f} s in the queue"
    assert queued - t0 > 0.3  # the nap had timed out when the response came


def test_a_pynetdicom_without_those_parts_is_left_as_it_is(caplog, monkeypatch):
    monkeypatch.setattr(pacing, "_warned", set())
    changed = SimpleNamespace(dul=SimpleNamespace(), _reactor_checkpoint=threading.Event(), dimse=SimpleNamespace(),
                              is_acceptor=True)
    changed._reactor_checkpoint.set()
    with caplog.at_level(logging.WARNING, logger="cxrviewer.dimse.pacing"):
        assert pacing.pace(changed) == set()
        assert pacing.pace(changed) == set()
    assert not hasattr(changed.dul, "_run_loop_delay")
    assert type(changed._reactor_checkpoint) is threading.Event
    warnings = [r for r in caplog.records if "does not have what" in r.getMessage()]
    assert len(warnings) == 1  # once a process, not once an association
    assert "dul,reactor" in warnings[0].getMessage()
