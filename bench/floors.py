"""The targets each benchmark is held to, written down before measuring, each with why.

Every target is a ratio to a baseline measured in the same run, on the same fresh server, so a
slow or noisy machine moves both sides alike. ``ratio`` is always ``ours / baseline``: for a rate
it must be at least the target (``at_least``), for a latency at most (``at_most``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class Floor:
    """One target: what of ours, against which baseline, the ratio it must reach, and why."""

    key: str
    ours: str
    baseline: str
    target: float
    sense: Literal["at_least", "at_most"]
    why: str

    def passes(self, ratio: float) -> bool:
        return ratio >= self.target if self.sense == "at_least" else ratio <= self.target

    @property
    def wanted(self) -> str:
        return f"{'>=' if self.sense == 'at_least' else '<='} {self.target:g}x"


APPEND_THROUGHPUT = Floor(
    key="append.throughput",
    ours="Store.append events/s",
    baseline="bare version-checked EVALSHA events/s, same concurrency",
    target=0.8,
    sense="at_least",
    why="deciding and sealing in Python may cost a fifth of what the store alone can take, no more",
)
APPEND_LATENCY = Floor(
    key="append.latency",
    ours="Store.append p50, one writer, unpipelined",
    baseline="plain XADD round trip p50",
    target=1.3,
    sense="at_most",
    why="an append is one round trip: the decision and the seal must stay small beside it",
)
HTTP_APPEND = Floor(
    key="http.append",
    ours="POST /stories/{story}/events requests/s (dateline api)",
    baseline="20-line Starlette + orjson handler making the same kind of script call",
    target=0.7,
    sense="at_least",
    why="auth, validation, decision and the hash chain may cost 30% over a bare handler, no more",
)
PROJECTOR = Floor(
    key="projector.rate",
    ours="real projector (FastStream batch consumers + Projector) events/s",
    baseline="bare XREADGROUP COUNT 100 + fold in memory + XACK loop events/s",
    target=0.5,
    sense="at_least",
    why="writing the state and the consumer framework may halve the pure read-and-fold rate, no more",
)

ALL = (APPEND_THROUGHPUT, APPEND_LATENCY, HTTP_APPEND, PROJECTOR)
