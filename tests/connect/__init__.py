"""Tests of proxy.connect."""
