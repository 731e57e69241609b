"""Choosing a target of a service: its base URLs, in turn.

A service of ``type: endpoint`` has one base URL; ``type: upstream`` has one
per upstream target. The richer algorithms (weighted, least-connections,
latency, hashing) and health-aware skipping plug in behind ``pick``.
"""

from __future__ import annotations

import itertools
from typing import Protocol


class Balancer(Protocol):
    urls: tuple[str, ...]

    def pick(self) -> str: ...


class Single:
    __slots__ = ("urls",)

    def __init__(self, url: str) -> None:
        self.urls: tuple[str, ...] = (url,)

    def pick(self) -> str:
        return self.urls[0]


class RoundRobin:
    __slots__ = ("_next", "urls")

    def __init__(self, urls: tuple[str, ...]) -> None:
        self.urls = urls
        self._next = itertools.cycle(urls).__next__

    def pick(self) -> str:
        return self._next()
