"""Races: 16 writers with ``expected_version`` on every version of a story (issue 11, 3).

Each round, 16 HTTP writers race for the same next version, each saying it expects the version
the story is at now. Exactly one may win each version; the others get 409 ``version_conflict``
naming the version that is now current; the chain has no gap and no fork."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

import httpx

from tests.services.http.conftest import events, open_story

WRITERS = 16
VERSIONS = 500


async def test_exactly_one_writer_wins_each_version(
    http: httpx.AsyncClient, story_id: str, figure: Callable[[str, str], None]
) -> None:
    """Sixteen writers race for each of 500 versions: one wins each, the rest get 409."""
    await open_story(http, story_id)
    winners: list[str] = []
    losers = 0
    for version in range(1, VERSIONS + 1):

        async def write(n: int, expected: int = version) -> httpx.Response:
            body = {
                "type": "entry.published",
                "data": {"body": f"<p>writer {n} for {expected + 1}</p>"},
                "expected_version": expected,
            }
            return await http.post(f"/stories/{story_id}/events", json=body)

        answers = await asyncio.gather(*(write(n) for n in range(WRITERS)))
        won = [a for a in answers if a.status_code == 201]
        lost = [a for a in answers if a.status_code == 409]
        assert len(won) == 1, [a.status_code for a in answers]
        assert len(lost) == WRITERS - 1
        for answer in lost:
            error = answer.json()["error"]
            assert error["code"] == "version_conflict"
            assert error["details"] == {"current_version": version + 1}
        winners.append(won[0].json()["hash"])
        losers += len(lost)
    history = await events(http, story_id)
    versions = [e["version"] for e in history]
    assert versions == list(range(1, VERSIONS + 2))  # no gap, no duplicate
    assert [e["hash"] for e in history[1:]] == winners  # every winner, and only them
    for before, after in itertools.pairwise(history):
        assert after["prev_hash"] == before["hash"]
    figure(
        "races",
        f"{VERSIONS} versions x {WRITERS} writers: exactly one winner each "
        f"({VERSIONS} of {VERSIONS}), {losers} refused with version_conflict, gaps 0",
    )
