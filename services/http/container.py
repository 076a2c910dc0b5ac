"""The ``Services`` container: what the API's routes use, built once per process."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

from services.audit.replay import Audit
from services.http.current import Current
from services.http.heads import Heads
from services.http.pages import Pages
from services.settings import Settings
from services.store.connection import Client, connect
from services.store.limits import WriteLimits
from services.store.readmodel import ReadModel
from services.store.record import Store
from services.store.tokens import Tokens


@dataclass
class Services:
    """The store's client and its views, the settings, and the process's metrics."""

    client: Client
    store: Store
    tokens: Tokens
    limits: WriteLimits
    """Each token's write allowance, shared with every API process on the store."""
    reads: ReadModel
    audit: Audit
    settings: Settings
    heads: Heads
    """Each followed story's current version, from the change tail (``app.py`` runs it)."""
    current: Current
    registry: CollectorRegistry
    appends: Counter
    refusals: Counter
    lag: Gauge
    pending: Gauge
    bypassed: Gauge
    parked: Gauge

    @classmethod
    def connect(cls, settings: Settings, url: str) -> Services:
        client = connect(url)
        registry = CollectorRegistry()
        store = Store(
            client,
            settings.store_id,
            ack_replicas=settings.ack_replicas,
            ack_timeout=settings.ack_timeout_ms / 1000,
            partitions=settings.partitions,
        )
        reads = ReadModel(client)
        heads = Heads()
        answered = Counter(
            "dateline_public_reads",
            "Public reads of a story (state, reader page) by how they were answered: unchanged "
            "(304 from the change tail's version, no store round trip), ready (kept bytes), "
            "built (read from the store and rendered)",
            ["answer"],
            registry=registry,
        )
        return cls(
            client=client,
            store=store,
            tokens=Tokens(client, settings.admin_token),
            limits=WriteLimits(store.pipe, settings.write_rate, settings.write_burst),
            reads=reads,
            audit=Audit(client, store, reads),
            settings=settings,
            heads=heads,
            current=Current(settings, reads, heads, Pages(), answered),
            registry=registry,
            appends=Counter(
                "dateline_appends", "Events appended, by type", ["type"], registry=registry
            ),
            refusals=Counter(
                "dateline_refusals", "Requests refused, by error code", ["code"], registry=registry
            ),
            lag=Gauge(
                "dateline_projector_lag",
                "Events on the feeds not yet delivered to the projectors",
                registry=registry,
            ),
            pending=Gauge(
                "dateline_projector_pending",
                "Events delivered to a projector and not yet acknowledged",
                registry=registry,
            ),
            parked=Gauge(
                "dateline_projector_parked",
                "Stories whose projection is parked behind an event it cannot fold",
                registry=registry,
            ),
            bypassed=Gauge(
                "dateline_checkpoints_bypassed",
                "Replay checkpoints found damaged or stale and passed by (this process)",
                registry=registry,
            ),
        )
