"""Values, rules and ports: what availability is and may be; no aiohttp, no I/O."""
