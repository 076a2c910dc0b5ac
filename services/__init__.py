"""The I/O shells around the pure core: store, projector, API, gateway, audit, command line."""
