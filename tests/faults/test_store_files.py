"""The store's files damaged (issue 11, 5): an append-only file whose tail was torn loads and the
chain verifies; one damaged in the middle is refused with a message that says what to do."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from events.chain import verify
from events.decide import parse_command, parse_open
from events.errors import StoreUnavailable
from services.store.embedded import EmbeddedValkey
from services.store.record import Store
from tests.faults.conftest import own_store

pytestmark = own_store

EVENTS = 200


async def fill(data_dir: Path, story: str) -> Path:
    """A store holding ``story`` with ``EVENTS`` events, stopped; its append-only (incr) file."""
    valkey = EmbeddedValkey(data_dir)
    store = Store.from_url(valkey.start())
    try:
        await store.append(story, parse_open({"story": story, "title": "Torn"}), actor="e:a")
        for n in range(EVENTS - 1):
            data = {"body": f"<p>Entry {n}</p>", "entry_id": f"e{n}"}
            await store.append(story, parse_command("entry.published", data), actor="e:a")
    finally:
        await store.close()
        valkey.stop()
    (aof,) = (data_dir / "appendonly").glob("*.incr.aof")
    return aof


async def test_a_torn_tail_of_the_append_only_file_loads_and_the_chain_verifies(
    tmp_path: Path, figure: Callable[[str, str], None]
) -> None:
    """Cut the file in the middle of its last write: the store starts, the chain verifies."""
    aof = await fill(tmp_path / "store", "torn")
    size = aof.stat().st_size
    cuts = [37, 300, 1_000]  # bytes cut off the end: inside the last event's commands
    stored = []
    for cut in cuts:
        with aof.open("r+b") as f:
            f.truncate(aof.stat().st_size - cut)
        valkey = EmbeddedValkey(tmp_path / "store")
        store = Store.from_url(valkey.start())
        try:
            events = await store.read("torn", 1, None)
            assert verify(events).ok
            assert [e.version for e in events] == list(range(1, len(events) + 1))
            stored.append(len(events))
        finally:
            await store.close()
            valkey.stop()  # it rewrites nothing: the next cut is of the same file
    figure(
        "torn AOF tail",
        f"{len(cuts)} cuts of the append-only file's tail ({', '.join(map(str, cuts))} bytes"
        f" of {size}): the store loaded each time with {', '.join(map(str, stored))} of"
        f" {EVENTS} events, chain verified, versions without a gap",
    )
    assert stored[0] >= EVENTS - 1


async def test_an_append_only_file_damaged_in_the_middle_is_refused_with_a_clear_message(
    tmp_path: Path, figure: Callable[[str, str], None]
) -> None:
    """Garbage in the middle of the file: the store does not start, and the error says why."""
    aof = await fill(tmp_path / "store", "damaged")
    body = bytearray(aof.read_bytes())
    middle = body.index(b"*", len(body) // 2)  # the start of a command in the middle
    body[middle : middle + 8] = b"!garbage"  # not "#": a "#" line is an annotation
    aof.write_bytes(bytes(body))
    valkey = EmbeddedValkey(tmp_path / "store")
    with pytest.raises(StoreUnavailable) as refused:
        valkey.start()
    valkey.stop()
    message = refused.value.message
    figure("damaged AOF", f"refused to start: {message.splitlines()[0][:200]}")
    assert "append-only file" in message
    assert "damaged" in message
    assert str(aof.parent) in message
