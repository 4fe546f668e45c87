"""Tests of proxy.run."""
