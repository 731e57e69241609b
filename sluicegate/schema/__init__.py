"""Canonical chat types and the sans-IO SSE codec."""
