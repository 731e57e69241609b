"""The response cache: exact and semantic, per rule (docs/cache.md)."""
