"""Connections: a store that cannot be reached is the contract's 503 ``store_unavailable``."""

from __future__ import annotations

import pytest

from events.errors import StoreUnavailable
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
