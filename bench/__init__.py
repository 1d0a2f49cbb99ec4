"""Benchmarks: ``python -m bench.<name>`` (each program is self-contained)."""
