"""Shared test configuration; the service fixtures live in tests/fixtures/services.py."""
