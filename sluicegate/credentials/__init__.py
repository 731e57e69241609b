"""Credentials sign an ``UpstreamRequest`` after the adapter built it."""

from __future__ import annotations

from typing import Protocol

from sluicegate.providers.base import UpstreamRequest


class Signer(Protocol):
    def sign(self, request: UpstreamRequest) -> None: ...
