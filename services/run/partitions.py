"""``dateline partitions upgrade``'s run: the store it names (or the embedded one of the data
dir, started for it), upgraded by ``services.store.repartition``, its lines printed by ``say``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from services.settings import Settings
from services.store.connection import connect
from services.store.embedded import EmbeddedValkey
from services.store.repartition import upgrade


def main(settings: Settings, to: int, say: Callable[[str], None]) -> None:
    """Upgrade the store of ``settings`` to ``to`` partitions."""

    async def go(url: str) -> None:
        client = connect(url)
        try:
            await upgrade(client, to, say)
        finally:
            await client.aclose()

    with contextlib.ExitStack() as stack:
        url = settings.redis_url
        if not url:
            url = stack.enter_context(EmbeddedValkey(settings.data_dir)).url
        asyncio.run(go(url))
