"""Policies applied around the request: rate limits (and, later, budgets, cache, guardrails)."""
