"""Fault points: the places where a test can make a Dateline process die at its worst moment.

Rules (issue 11, 2):
- a fault point is armed only by ``DATELINE_FAULT_POINTS``, read once when this module is first
  imported: ``"api.replying=40,projector.written=25"`` makes the process kill itself the 40th
  time it reaches ``api.replying`` (and the 25th at ``projector.written``). Unset, ``ARMED`` is
  empty and each call site is one falsy test of a module global (``if faults.ARMED:``), so the
  production path pays nothing for it;
- a point that fires sends this process SIGKILL: no ``finally``, no flush, no goodbye to the store
  or the client, as when the kernel's OOM killer or a power cut takes it;
- the points, each placed where losing the process is worst:

  ``api.replying``       the append is stored (its answer too, under its Idempotency-Key), the
                         201 not yet written to the client;
  ``projector.written``  a batch's ``project.lua`` calls have written the stories' state and
                         changes (and acknowledged their feed entries in the same script); the
                         rest of the batch (events already applied, poison events) is not yet
                         settled, and the process's view cache is not yet updated;
  ``gateway.delivering`` a change from the tail has been written to some of a story's live
                         subscribers and not yet to the others.
"""

from __future__ import annotations

import os
import signal

POINTS = ("api.replying", "projector.written", "gateway.delivering")
"""Every fault point the code has."""


def _armed(spec: str) -> dict[str, int]:
    """``"point=N,..."`` as {point: N}; an unknown point or a bad count is refused at start."""
    armed: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        point, _, count = part.partition("=")
        if point not in POINTS or not count.isdigit() or int(count) < 1:
            raise ValueError(f"DATELINE_FAULT_POINTS: {part!r} is not one of {POINTS} with =N >= 1")
        armed[point] = int(count)
    return armed


ARMED: dict[str, int] = _armed(os.environ.get("DATELINE_FAULT_POINTS", ""))
"""Armed points and how many passes each has left (empty in production)."""


def reached(point: str) -> None:
    """Count one pass of ``point``; on its armed count, SIGKILL this process."""
    left = ARMED.get(point)
    if left is None:
        return
    if left > 1:
        ARMED[point] = left - 1
        return
    os.kill(os.getpid(), signal.SIGKILL)
