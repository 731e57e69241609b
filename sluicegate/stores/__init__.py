"""Persistent stores of the control plane: one interface, SQLite and PostgreSQL behind it."""

from __future__ import annotations

from sluicegate.stores.base import DuplicateName, Record, Store

__all__ = ["DuplicateName", "Record", "Store"]
