"""``python -m services`` is the ``dateline`` command (used by tests and compose)."""

from services.cli.app import main

main()
