"""Benchmarks (`make bench`); the settings and urlconf here are for benchmarks only, never the product."""
