"""Tests of proxy.core."""
