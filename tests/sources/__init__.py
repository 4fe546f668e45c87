"""Tests of proxy.sources."""
