"""Guardrails and transforms (docs/guardrails.md): PII detection and redaction, content
rules, parameter checks and request/response rewriting, applied per rule."""
