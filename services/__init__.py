"""The I/O shells around the pure core, one room per step of the way a write travels.

Read top to bottom, the rooms are the flow (docs/architecture.md walks one request through it)::

    http/       a newsroom tool's POST: parsing, tokens, the decision (events/), the error mapping
    store/      the record: key layout, connections and auto-pipeline, append.lua, the read model,
                tokens, the embedded Valkey, the Lua scripts and their named arguments
    projector/  feeds -> the fold (projections/) -> project.lua: state and change streams at once
    realtime/   change streams -> the subscription core -> the gateway shell -> every browser
    reader/     the reader page: rendering, embeds and player URLs, JSON-LD, its policy and assets
    audit/      replay to any version or moment, revisions, the chain re-walked
    cli/        the ``dateline`` command: its HTTP client, newsroom, tokens, audit, tail
    run/        processes: ``serve``, ``api``, ``projector``, ``gateway`` and their wiring
    demo/       ``dateline demo``: a sample story played in through the API

Arrows point down the flow and into the core (``events/``, ``projections/``), never back: the
store knows nothing of HTTP, the projector nothing of the gateway, and a room's constants live
with what they describe (layout constants such as the consumer group with the key layout).
``settings.py`` is the one module every process reads its configuration from; ``faults.py`` holds
the fault points a test can arm to kill a process at its worst moment (off in production).
"""
