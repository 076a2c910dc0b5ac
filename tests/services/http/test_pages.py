"""Ready answers: codings negotiated and made once, validators, and the bounded, shared cache."""

from __future__ import annotations

import asyncio
import gzip

import brotli
import pytest
from starlette.requests import Request

from services.http.pages import COMPRESS_FROM, Pages, Ready, answer, coding, etag_matches


def request(method: str = "GET", **headers: str) -> Request:
    raw = [(k.replace("_", "-").lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "method": method, "path": "/", "headers": raw})


def ready(version: int = 1, body: bytes = b"x" * 4096) -> Ready:
    return Ready(
        version,
        body,
        "text/plain",
        f'"{version}"',
        {"Vary": "Accept-Encoding"},
        "Tue, 01 Dec 2026 18:50:03 GMT",
    )


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        ("", None),
        ("gzip", "gzip"),
        ("gzip, deflate, br", "br"),
        ("br;q=0, gzip", "gzip"),
        ("br;q=0, gzip;q=0", None),
        ("*", "br"),
        ("*;q=0", None),
        ("identity", None),
        ("BR", "br"),
        ("br;q=bogus, gzip", "gzip"),
    ],
)
def test_brotli_is_preferred_then_gzip_and_q0_refuses(accept: str, chosen: str | None) -> None:
    assert coding(accept) == chosen


def test_if_none_match_compares_weakly_and_knows_star() -> None:
    assert etag_matches('"7"', '"7"')
    assert etag_matches('W/"7"', '"7"')
    assert etag_matches('"6", "7"', '"7"')
    assert etag_matches("*", '"7"')
    assert not etag_matches('"70"', '"7"')


def test_each_coding_is_made_once_and_decodes_to_the_body() -> None:
    page = ready()
    name, first = page.form("br")
    assert name == "br"
    assert brotli.decompress(first) == page.body
    assert page.form("br")[1] is first  # made once, kept
    assert gzip.decompress(page.form("gzip")[1]) == page.body
    assert page.form(None) == (None, page.body)


def test_a_short_body_goes_as_it_is() -> None:
    page = ready(body=b"x" * (COMPRESS_FROM - 1))
    assert page.form("br") == (None, page.body)


def test_an_answer_is_304_for_its_etag_or_a_date_not_older_and_head_has_no_body() -> None:
    page = ready(7)
    assert answer(page, request(if_none_match='"7"')).status_code == 304
    assert answer(page, request(if_none_match='"6"')).status_code == 200
    # If-Modified-Since counts only without If-None-Match (RFC 9110 13.2.2)
    late = "Tue, 01 Dec 2026 18:50:03 GMT"
    assert answer(page, request(if_modified_since=late)).status_code == 304
    early = "Tue, 01 Dec 2026 18:50:02 GMT"
    assert answer(page, request(if_modified_since=early)).status_code == 200
    assert answer(page, request(if_none_match='"6"', if_modified_since=late)).status_code == 200
    assert answer(page, request(if_modified_since="garbage")).status_code == 200
    not_modified = answer(page, request(if_none_match='"7"'))
    assert not_modified.headers["etag"] == '"7"'
    assert not_modified.headers["vary"] == "Accept-Encoding"
    compressed = answer(page, request(accept_encoding="br"))
    assert compressed.headers["content-encoding"] == "br"
    assert compressed.headers["content-length"] == str(len(page.form("br")[1]))


def test_the_cache_keeps_the_newest_version_of_a_key_within_its_bytes() -> None:
    pages = Pages(max_bytes=3 * 2 * 4096)
    pages.put(("page", "a", None), ready(2))
    pages.put(("page", "a", None), ready(1))  # older: the newer stays
    assert pages.get(("page", "a", None), 2) is not None
    assert pages.get(("page", "a", None), 1) is None
    for story in "bcd":
        pages.put(("page", story, None), ready(1))
    assert pages.get(("page", "a", None), 2) is None  # least recently served: dropped first
    assert all(pages.get(("page", s, None), 1) is not None for s in "bcd")


async def test_a_crowd_asking_at_once_builds_once_and_a_reader_leaving_cancels_only_itself() -> (
    None
):
    pages = Pages()
    builds = 0
    gate = asyncio.Event()

    async def build() -> Ready:
        nonlocal builds
        builds += 1
        await gate.wait()
        return ready(3)

    crowd = [asyncio.create_task(pages.build(("state", "s", 1), build)) for _ in range(50)]
    await asyncio.sleep(0)
    crowd[0].cancel()  # this reader went away mid-build
    gate.set()
    results = await asyncio.gather(*crowd[1:])
    assert builds == 1
    assert {r.version for r in results} == {3}
    assert pages.get(("state", "s", 1), 3) is results[0]


async def test_a_failed_build_fails_its_crowd_and_the_next_asks_again() -> None:
    pages = Pages()

    async def broken() -> Ready:
        raise RuntimeError("the store went away")

    with pytest.raises(RuntimeError):
        await pages.build(("state", "s", 1), broken)

    async def fine() -> Ready:
        return ready(4)

    assert (await pages.build(("state", "s", 1), fine)).version == 4
