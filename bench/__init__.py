"""Benchmarks of streamfeat against their baselines, measured in one run: ``make bench``."""
