"""Tests of proxy.web."""
