"""Write limits per token, shared by every API process on the store (CONTRACT second edition,
"Limits that protect the newsroom").

Rules:
- each token may write ``rate`` times a second sustained, with a burst of ``burst`` after a
  quiet spell; the allowance is one ``rate.lua`` call (GCRA) on the store, so two API processes
  share one allowance, and it is taken before anything is decided or appended;
- a refused write says how long until one is free: ``RateLimited`` with ``retry_after``, whole
  seconds, at least 1 (what ``Retry-After`` carries);
- the allowance lives in the store's memory only (never fsynced, never replicated): a restarted
  store or a failover gives every token its whole burst again, which costs nothing the record
  needs;
- ``rate`` 0 turns the limit off and asks the store nothing.
"""

from __future__ import annotations

import math

from events.errors import RateLimited
from services.store import keys, scripts
from services.store.autopipeline import AutoPipeline, Script
from services.store.connection import reachable


class WriteLimits:
    """The write allowance of every token, kept on the store."""

    def __init__(self, pipe: AutoPipeline, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.interval_us = round(1_000_000 / rate) if rate > 0 else 0
        self._take = Script(pipe, scripts.RATE)

    async def take(self, token_hash: str) -> None:
        """Take one write of the token's allowance, or raise ``RateLimited``."""
        if self.interval_us == 0:
            return
        call = scripts.rate(
            keys.write_bucket(token_hash), interval_us=self.interval_us, burst=self.burst
        )
        with reachable():
            wait_us = int(await self._take(*call))
        if wait_us > 0:
            seconds = max(1, math.ceil(wait_us / 1_000_000))
            raise RateLimited(
                f"this token may write {self.rate:g} times a second (bursts of {self.burst});"
                f" try again in {seconds} s",
                {"retry_after": seconds},
            )
