"""Connections: a store that cannot be reached is the contract's 503 ``store_unavailable``."""

from __future__ import annotations

import pytest

from events.errors import StoreUnavailable
from services.store.connection import redacted
from services.store.record import Store
from tests.conftest import free_port


async def test_an_unreachable_store_is_store_unavailable() -> None:
    """Reads and writes against a closed port raise ``StoreUnavailable`` (503), never a 500."""
    store = Store.from_url(f"redis://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(StoreUnavailable) as refused:
            await store.head("nowhere")
        assert (refused.value.status, refused.value.code) == (503, "store_unavailable")
        with pytest.raises(StoreUnavailable):
            await store.ping()
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://user:s3cret@db.internal:6379/0", "redis://user:***@db.internal:6379/0"),
        ("rediss://:s3cret@db.internal/2", "rediss://:***@db.internal/2"),
        (
            "redis://db.internal:6379/0?password=s3cret&db=1",
            "redis://db.internal:6379/0?password=***&db=1",
        ),
        ("unix://user:s3cret@/run/valkey.sock?db=3", "unix://user:***@/run/valkey.sock?db=3"),
        ("unix:///run/valkey.sock?db=3", "unix:///run/valkey.sock?db=3"),
        ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
    ],
)
def test_a_store_url_is_shown_without_its_password(url: str, shown: str) -> None:
    """What ``serve`` prints of a store URL hides the password, in the userinfo or the query."""
    assert redacted(url) == shown
    assert "s3cret" not in redacted(url)
