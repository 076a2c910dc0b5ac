"""A websocket connection's op allowance (CONTRACT second edition, "Limits that protect the
newsroom"): a pure rule with the clock passed in, as ``subscription.py`` is.

Rules:
- an allowance is GCRA (the generic cell rate algorithm, the rule ``rate.lua`` applies to HTTP
  writes on the store): ``rate`` ops a second sustained, ``burst`` at once after a quiet spell, so a
  client can still subscribe to its 100 stories at once;
- every frame a client sends is an op (a ping, a malformed frame, too): what a flood costs the
  gateway is the frame, whatever it says;
- an op within the allowance is performed; past it, it is refused (``rate_limited``) and not
  performed, but it still counts against a second allowance at ``FLOOD`` times the rate with
  twice the burst: a client that is still sending past that one is closed (1008), since it is
  not waiting for anything (at twenty times the rate that takes about 2 s with the defaults, at
  once for a burst of more than twice ``burst`` frames);
- ``rate`` 0 turns the limit off.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

FLOOD = 10
"""A connection sending at this many times its op rate is closed with 1008 (policy violation)."""


EPSILON = 1e-9
"""Seconds of float rounding forgiven: an op exactly on time is on time."""


class Verdict(Enum):
    PERFORM = "perform"
    REFUSE = "refuse"
    CLOSE = "close"


@dataclass(slots=True)
class Allowance:
    """GCRA: ``tat`` is the theoretical arrival time of the next op at the sustained rate."""

    interval: float
    """Seconds between ops at the sustained rate (0: no limit)."""
    burst: int
    tat: float = 0.0

    def take(self, now: float) -> bool:
        """Take one op at ``now`` (seconds, any monotonic clock), if the allowance has one."""
        if self.interval == 0:
            return True
        tat = max(self.tat, now)
        if tat + self.interval - self.interval * self.burst > now + EPSILON:
            return False
        self.tat = tat + self.interval
        return True


@dataclass(slots=True)
class Ops:
    """One connection's two allowances: its op rate, and the flood rate it is closed past."""

    ops: Allowance
    flood: Allowance

    @classmethod
    def of(cls, rate: float, burst: int) -> Ops:
        interval = 1.0 / rate if rate > 0 else 0.0
        return cls(Allowance(interval, burst), Allowance(interval / FLOOD, 2 * burst))

    def judge(self, now: float) -> Verdict:
        """What to do with a frame that arrived at ``now``."""
        if not self.flood.take(now):
            return Verdict.CLOSE
        if not self.ops.take(now):
            return Verdict.REFUSE
        return Verdict.PERFORM
