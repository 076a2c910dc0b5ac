"""The pure core's first half: event schemas, the hash chain, and the decisions.

Nothing here reads the clock, draws random numbers or does I/O: the shell passes those in as a
:class:`events.stamp.Stamp`. ``projections/`` imports this package, never the reverse.
"""
