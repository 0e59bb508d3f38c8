"""Benchmarks: their format and builder, the evaluation runner and the metrics. Product code never
imports this package."""
