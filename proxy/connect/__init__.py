"""Delegated connections: Individual and Enterprise Connect Free/Busy, stored and routed."""
