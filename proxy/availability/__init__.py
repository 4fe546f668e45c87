"""The availability service: every per-request duty between a consumer and the source chain."""
