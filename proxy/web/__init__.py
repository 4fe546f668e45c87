"""Inbound HTTP: the app factory, routes, the one envelope and error path, and the dialects."""
