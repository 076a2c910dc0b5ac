"""The store's identity: which record a Dateline process writes to, so that a store wiped or
replaced under running services is refused loudly instead of being written to as a new one.

Rules (issue 11, 5):
- a store Dateline uses carries one id (128 random bits, hex) on every partition
  (``keys.mark``), written once, when Dateline first uses the store;
- a process learns the id once (``learn``): the one it is given (``DATELINE_STORE_ID``: ``serve``
  hands its workers the id it found, and keeps it in its data dir, so neither a restarted worker
  nor a restarted ``serve`` takes an emptied store for a new one), else the marks it finds. On a
  store with no mark at all it writes a new id on every partition (``SET NX``, so two processes
  starting at once agree); a store made before marks existed gets its marks the same way;
- marks that disagree, a partition without one, or marks other than the id given: the store is
  not the record this process knows (``lost``): writes are refused with 503
  ``store_unavailable`` (``details.store`` = ``"lost"``), ``/healthz`` says why, and nothing is
  written until the data is back;
- every append carries the id and ``append.lua`` checks it in the same step as the write, so a
  wipe between a check and a write cannot slip a version 1 in;
- before it reads a mark, a process adopts the store's partition count (``adopt_layout``,
  ``keys.PARTITIONS_KEY``; none: 16). A new store gets the count asked for
  (``DATELINE_PARTITIONS``), set once (``SET NX``) before its marks; a store whose partitions
  are being upgraded (``services.store.repartition``) is refused until the upgrade is done.
"""

from __future__ import annotations

import secrets

from pydantic import JsonValue

from events.errors import StoreUnavailable
from services.store import keys
from services.store.connection import Client, reachable


def lost(expected: str | None, found: set[str | None]) -> StoreUnavailable:
    """The refusal for a store whose marks (``found``) are not the record ``expected``."""
    seen = sorted("none" if f is None else f for f in found)
    return StoreUnavailable(
        "the store does not hold the record this server writes to"
        f" (store id {expected or 'unknown'}; found {', '.join(seen)}): it was emptied or"
        " replaced. Nothing is written until its data is back (restore its append-only file"
        " and restart it); docs/operations.md",
        {"store": "lost", "expected": expected, "found": list[JsonValue](seen)},
    )


def upgrading(state: str) -> StoreUnavailable:
    """The refusal for a store whose partitions are being upgraded."""
    return StoreUnavailable(
        f"the store's partitions are being upgraded ({state}): nothing is read or written until"
        " `dateline partitions upgrade` has finished (run it again if it was stopped);"
        " docs/operations.md",
        {"store": "upgrading"},
    )


async def adopt_layout(client: Client, fresh: int = keys.LEGACY_PARTITIONS) -> int:
    """Adopt the store's partition count in this process (``keys.adopt``) and return it. A store
    with no count and no marks (a new one) is given ``fresh``. Raises ``StoreUnavailable`` while
    an upgrade of its partitions is under way."""
    with reachable():
        async with client.pipeline(transaction=False) as pipe:
            pipe.get(keys.PARTITIONS_KEY)
            pipe.get(keys.REPARTITION_KEY)
            pipe.get(keys.LEGACY_MARK)
            raw, state, legacy_mark = await pipe.execute()
        if state is not None:
            raise upgrading(state.decode())
        if raw is None and legacy_mark is None and fresh != keys.LEGACY_PARTITIONS:
            await client.set(keys.PARTITIONS_KEY, fresh, nx=True)  # a new store: once
            raw = await client.get(keys.PARTITIONS_KEY)
    count = int(raw) if raw is not None else keys.LEGACY_PARTITIONS
    keys.adopt(count)
    return count


async def marks(client: Client) -> list[str | None]:
    """The mark of every partition, in order (None where there is none)."""
    with reachable():
        async with client.pipeline(transaction=False) as pipe:
            for p in range(keys.partitions()):
                pipe.get(keys.mark(p))
            found: list[bytes | None] = await pipe.execute()
    return [None if m is None else m.decode() for m in found]


async def learn(
    client: Client, given: str | None = None, fresh: int = keys.LEGACY_PARTITIONS
) -> str:
    """The store's id: ``given``, checked against the marks; else the marks; else a new one
    (and, on a new store, ``fresh`` partitions).

    Raises ``StoreUnavailable`` (``details.store`` = ``"lost"``) when the marks disagree, some
    partitions have none, or they are not ``given``; (``"upgrading"``) while its partitions are
    being upgraded.
    """
    await adopt_layout(client, fresh)
    found = await marks(client)
    if given:
        if set(found) != {given}:
            raise lost(given, set(found))
        return given
    if set(found) == {None}:
        new_id = secrets.token_hex(16)
        with reachable():
            async with client.pipeline(transaction=False) as pipe:
                for p in range(keys.partitions()):
                    pipe.set(keys.mark(p), new_id, nx=True)
                await pipe.execute()
        found = await marks(client)  # another process may have won a partition: look again
    if len(set(found)) != 1 or None in found:
        raise lost(None, set(found))
    mark = found[0]
    assert mark is not None
    return mark


async def check(client: Client, expected: str) -> StoreUnavailable | None:
    """None while every partition still carries ``expected``; else the refusal that says why."""
    found = set(await marks(client))
    return None if found == {expected} else lost(expected, found)
