"""Helpers shared by the tests (and the benchmarks): plain functions and classes, no fixtures.

Fixtures live in tests/conftest.py and are built from these.
"""
