"""The pure core's second half: folds of events into state. No clock, no randomness, no I/O."""
