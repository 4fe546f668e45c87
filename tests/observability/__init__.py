"""Tests of proxy.observability."""
