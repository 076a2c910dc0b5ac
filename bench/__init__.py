"""Benchmarks: each hot path beside a bare baseline, held to the ratios in ``bench/floors.py``."""
