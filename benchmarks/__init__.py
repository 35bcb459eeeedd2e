"""Reproducible quality, speed and size benchmarks of cdkd (``python -m benchmarks``)."""
