"""Telemetry: Prometheus metrics (and, later, traces and the audit log)."""
