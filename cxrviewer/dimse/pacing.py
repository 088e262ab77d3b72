"""How often pynetdicom's threads wake up while an association is open but quiet.

Every pynetdicom association runs two threads that poll: the DUL reactor (socket and queues;
it sleeps ``DULServiceProvider._run_loop_delay``, 1 ms, between idle turns) and the Association
reactor (the DIMSE message queue, release and abort; it sleeps a hard-coded 1 ms). Measured
here: ~5 % of a core per quiet association on each side (four: SCP 22 %, SCU 20-22 %), and
~2-3 ms of CPU for each short sending association the node opens (bench/bench_node.py).

:func:`pace`, called when an association's connection opens (``EVT_CONN_OPEN``, for the SCP's
associations and the sender's alike), makes them wake less often:

- the DUL reactor sleeps ``DUL_DELAY`` instead of 1 ms between idle turns (the knob pynetdicom
  leaves for this: "setting `_run_loop_delay` higher will use less CPU when idle, but will also
  increase the latency"). It never sleeps while data keeps coming, so a film streams as fast as
  before; a request or response waits at most ``DUL_DELAY`` more on each side to be noticed
  (C-ECHO round trip 5 -> 16 ms here);
- on the SCP's side, the Association reactor waits on its DIMSE message queue instead of
  sleeping: a request wakes it at once, and it still looks at release, abort and its timers
  every ``REACTOR_TICK`` seconds. Not on the sending side: there ``send_*`` waits on that same
  queue for its responses while the reactor is paused, so the reactor is quiet already, and
  sharing the queue's wake-ups needs care (:class:`_QueueCheckpoint`).

Both touch pynetdicom internals (checked against pynetdicom 3.0.4). Each is applied only when
the attribute is there and of the type expected; otherwise the association runs as pynetdicom
made it (today's behaviour, only costlier), :func:`pace` says which it could not apply and
tests/test_dimse_pacing.py fails.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

logger = logging.getLogger(__name__)

#: seconds the DUL reactor sleeps between idle turns (pynetdicom: 0.001)
DUL_DELAY = 0.005
#: seconds between the Association reactor's looks at release, abort and timers when no DIMSE
#: message comes (pynetdicom: 0.001); messages wake it at once
REACTOR_TICK = 0.02

_warned: set[str] = set()


class _QueueCheckpoint(threading.Event):
    """The Association reactor's pause switch (``Association._reactor_checkpoint``), set while
    the reactor may run, cleared by pynetdicom's ``send_*`` and ``release`` while they use the
    DIMSE queue themselves. pynetdicom's reactor calls ``wait()`` once a turn (after a 1 ms
    sleep): here that call first naps until a DIMSE message is queued or ``tick`` passes, then
    waits for the switch exactly as before. The reactor has already said it is paused when it
    calls ``wait()``, so a ``send_*`` that clears the switch during the nap goes ahead at once,
    and the reactor then stays paused until it is set again."""

    def __init__(self, messages: queue.Queue, tick: float) -> None:
        super().__init__()
        self.set()
        self._messages = messages
        self._tick = tick

    def wait(self, timeout: float | None = None) -> bool:
        q = self._messages
        with q.not_empty:  # the condition Queue.put() notifies
            if not q.queue:
                q.not_empty.wait(self._tick)
            if q.queue:
                # put() wakes one waiter, and this nap may have taken the wake-up (also when it
                # says it timed out: put() can notify between the timeout and the nap taking
                # the lock back). It takes no message, so it passes the wake-up on to a
                # ``send_*`` waiting for its response in ``get_msg``.
                q.not_empty.notify()
        return super().wait(timeout)


def pace(assoc: Any, dul_delay: float = DUL_DELAY, reactor_tick: float = REACTOR_TICK) -> set[str]:
    """Make ``assoc``'s threads wake less often when quiet; returns what was applied (``"dul"``;
    ``"reactor"`` for an acceptor). Call it before the association's reactor runs
    (``EVT_CONN_OPEN``)."""
    applied: set[str] = set()
    wanted = {"dul"}
    dul = getattr(assoc, "dul", None)
    if isinstance(getattr(dul, "_run_loop_delay", None), float):
        dul._run_loop_delay = dul_delay
        applied.add("dul")
    if getattr(assoc, "is_acceptor", None) is True:
        wanted.add("reactor")
        checkpoint = getattr(assoc, "_reactor_checkpoint", None)
        messages = getattr(getattr(assoc, "dimse", None), "msg_queue", None)
        if (type(checkpoint) is threading.Event and checkpoint.is_set() and isinstance(messages, queue.Queue)
                and isinstance(getattr(messages, "not_empty", None), threading.Condition)):
            assoc._reactor_checkpoint = _QueueCheckpoint(messages, reactor_tick)
            applied.add("reactor")
        elif isinstance(checkpoint, _QueueCheckpoint):
            applied.add("reactor")  # paced already
    missing = wanted - applied
    if missing:
        key = ",".join(sorted(missing))
        if key not in _warned:  # once a process: every association would say the same
            _warned.add(key)
            logger.warning("this pynetdicom (%s) does not have what cxrviewer.dimse.pacing expects for: %s; "
                           "associations poll as often as pynetdicom makes them (more CPU, same results)",
                           _pynetdicom_version(), key)
    return applied


def on_conn_open(event: Any) -> None:
    """``EVT_CONN_OPEN`` handler: :func:`pace` the association whose connection opened."""
    pace(event.assoc)


def _pynetdicom_version() -> str:
    try:
        import pynetdicom

        return str(pynetdicom.__version__)
    except Exception:  # noqa: BLE001 - only for the message
        return "unknown version"
