"""Replicas sharing one Graph budget, one cache and one rate through Redis ([cluster])."""
