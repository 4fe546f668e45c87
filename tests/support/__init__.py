"""Builders, fakes and guards the tests share (fixtures stay in tests/conftest.py)."""
