"""The server's stop, as the streams it cuts short see it.

At SIGTERM uvicorn stops taking connections and gives the requests in flight
its graceful-shutdown time before it cancels them, which would end a stream
without a word and leave it recorded as answered. Here the stop is noticed
when it begins (the protocol's ``shutdown``, sluicegate.http_protocol), and
``gateway.drain_timeout`` later ``over`` is done: every stream still running
then ends with the dialect's error event (sluicegate.proxy.streaming). uvicorn's
own grace is set a little longer (``sluicegate serve``), so those events go out
before anything is cancelled.
"""

from __future__ import annotations

import asyncio

# How much longer than the drain uvicorn waits before it cancels what is still running: the
# time for the cut streams to send their error events and be recorded.
DRAIN_MARGIN = 3.0


class Drain:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._over: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    @property
    def over(self) -> asyncio.Future[None]:
        """Done once the drain time has passed; made on first use, in the server's loop."""
        if self._over is None:
            self._over = asyncio.get_running_loop().create_future()
        return self._over

    def begin(self) -> None:
        """The server is stopping: the drain time runs from now (once)."""
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.seconds, self._end)

    def _end(self) -> None:
        if not self.over.done():
            self.over.set_result(None)
