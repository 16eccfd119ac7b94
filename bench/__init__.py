"""Benchmarks: each measures its own ceiling in the same run and prints one JSON line per figure.

A figure is ``{"name", "value", "unit", "ceiling", "ratio"}``; ``ratio`` is value / ceiling for
throughput and ceiling / value for latency, so higher is better for both.
"""
