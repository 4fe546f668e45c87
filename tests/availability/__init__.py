"""Tests of proxy.availability."""
