"""Tests of proxy.config."""
