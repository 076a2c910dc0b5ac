"""Settings, from the environment (``DATELINE_*``) and the command line (CONTRACT "Command line")."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from events.errors import UsageError

DEFAULT_API_URL = "http://127.0.0.1:8000"
"""Where the command line finds the API when neither ``--api-url`` nor ``DATELINE_API_URL`` says."""


class Settings(BaseSettings):
    """Everything a Dateline process can be told; each field is also ``DATELINE_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="DATELINE_", extra="ignore")

    @classmethod
    def load(cls, **given: object) -> Settings:
        """The environment's settings, overridden by the options ``given`` (None: not given).

        A value that cannot be read (``DATELINE_HTTP_PORT=abc``) is a ``UsageError`` naming the
        setting, so every command says so in one line and exits 2, never with a traceback.
        """
        fields = {name: value for name, value in given.items() if value is not None}
        try:
            return cls(**fields)  # type: ignore[arg-type]  # pydantic validates each field's type
        except ValidationError as error:
            problems = "; ".join(
                f"{'DATELINE_' + '_'.join(map(str, e['loc'])).upper()}: {e['msg']}"
                for e in error.errors()
            )
            raise UsageError(f"a setting cannot be read: {problems}") from None

    redis_url: str | None = None
    """A Redis 7+ or Valkey 8+ server; without one, ``serve`` starts the embedded Valkey."""
    data_dir: Path = Path("dateline-data")
    host: str = "127.0.0.1"
    http_port: int = 8000
    ws_port: int = 8001
    admin_token: str | None = None
    """When set, accepted as an admin token with actor ``admin:bootstrap``."""
    api_url: str = DEFAULT_API_URL
    """The API the command line's newsroom, token and audit commands talk to."""
    token: str | None = None
    """The token those commands send (``--token`` wins over it)."""
    ws_url: str | None = None
    """The websocket URL to announce and to ``tail`` (default: built from host and ws port)."""
    fsync: str = Field(default="always", pattern="^(always|everysec)$")
    """The embedded Valkey's ``appendfsync``: ``always`` loses no acknowledged event."""
    store_id: str = ""
    """The id of the store this server writes to (``services.store.identity``): ``serve`` sets it
    for its workers from the store and its data dir; a split ``api`` learns it from the store."""
    ack_replicas: int = Field(default=0, ge=0)
    """On a cluster, how many replicas must have an event in their append-only files before its
    append is answered 201 (``WAITAOF``; CONTRACT "Outgrowing one Redis"). Ignored on one server."""
    ack_timeout_ms: int = Field(default=1000, ge=1)
    """How long an append waits for those replicas before it is answered 503 ``store_unavailable``
    with ``details.acked_replicas``."""
    partitions: int = 16
    """How many partitions a new store gets (``services.store.keys``; on a cluster, more spread
    stories more evenly over primaries). An existing store keeps its own count: see
    ``dateline partitions upgrade``."""

    @field_validator("partitions")
    @classmethod
    def _a_count_a_store_may_have(cls, value: int) -> int:
        if value not in (16, 64, 256, 1024):  # keys.COUNTS: settings imports no room
            raise ValueError("must be 16, 64, 256 or 1024")
        return value

    origins: str = ""
    """More browser origins allowed on the websocket, comma-separated (the API's own always is)."""
    max_body: int = 256 * 1024
    """Largest request body accepted (CONTRACT: 256 KiB); larger is 413 ``payload_too_large``."""
    cache_seconds: int = Field(default=1, ge=0, le=5)
    """How long a shared cache (a CDN, nginx) may serve a public read as fresh: ``s-maxage``."""
    stale_seconds: int = Field(default=30, ge=0, le=3600)
    """How long after that a shared cache may serve it while it fetches the new one:
    ``stale-while-revalidate`` (a stale reader page still catches up: it subscribes ``since``
    its own version)."""

    hsts_seconds: int = Field(default=0, ge=0)
    """``Strict-Transport-Security: max-age`` on every HTTP answer, in seconds; 0: not sent. Set
    it when TLS ends at the balancer (``services/http/security.py``; browsers ignore it over
    plain http)."""

    write_rate: float = Field(default=20, ge=0)
    """Writes a second each token may make, sustained (``DATELINE_WRITE_RATE``; 0: no limit)."""
    write_burst: int = Field(default=100, ge=1)
    """Writes a token may make at once after a quiet spell (``DATELINE_WRITE_BURST``)."""

    ws_ops_rate: float = Field(default=20, ge=0)
    """Websocket ops a second per connection, sustained (``DATELINE_WS_OPS_RATE``; 0: no limit)."""
    ws_ops_burst: int = Field(default=200, ge=1)
    """Websocket ops a connection may send at once (``DATELINE_WS_OPS_BURST``): a client can
    still subscribe to its 100 stories at once."""

    def public_ws_url(self) -> str:
        """The websocket URL browsers and ``dateline tail`` use."""
        return self.ws_url or f"ws://{self.host}:{self.ws_port}/ws"

    def allowed_origins(self) -> list[str]:
        """The HTTP API's own origin (both loopback spellings) plus the configured ones."""
        hosts = {self.host}
        if self.host in ("127.0.0.1", "localhost", "0.0.0.0", "::1"):  # noqa: S104 - names, not binds
            hosts |= {"127.0.0.1", "localhost"}
        own = [f"http://{h}:{self.http_port}" for h in sorted(hosts)]
        extra = [o.strip().rstrip("/") for o in self.origins.split(",") if o.strip()]
        return own + extra
