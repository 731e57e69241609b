"""Static credentials: a header and/or a query parameter added to every request."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sluicegate.providers.base import UpstreamRequest

if TYPE_CHECKING:
    from sluicegate.proxy.upstream import Transport


@dataclass(frozen=True, slots=True)
class StaticCredentials:
    header: tuple[str, str] | None = None
    param: tuple[str, str] | None = None
    needs_prepare: bool = field(default=False, init=False)
    signs_body: bool = field(default=False, init=False)

    async def prepare(self, http: Transport) -> None:
        return None

    def sign(self, request: UpstreamRequest) -> None:
        if self.header is not None:
            request.headers[self.header[0]] = self.header[1]
        if self.param is not None:
            request.params[self.param[0]] = self.param[1]

    def secrets(self, request: UpstreamRequest) -> list[str]:
        return [pair[1] for pair in (self.header, self.param) if pair is not None]

    def __repr__(self) -> str:
        # Never show the secret values, only where they go.
        header = self.header[0] if self.header else None
        param = self.param[0] if self.param else None
        return f"StaticCredentials(header={header!r}, param={param!r})"
