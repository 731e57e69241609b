"""The realtime sessions each consumer holds open in this process (``realtime_sessions``)."""

from __future__ import annotations

from sluicegate.errors import RateLimited


class TooManySessions(RateLimited):
    default_code = "too_many_sessions"


class Sessions:
    def __init__(self) -> None:
        self._open: dict[tuple[str, str], int] = {}

    def begin(self, gateway: str, consumer: str, most: int | None) -> None:
        """Count one more, or refuse it when ``most`` are open already."""
        key = (gateway, consumer)
        count = self._open.get(key, 0)
        if most is not None and count >= most:
            plural = "" if most == 1 else "s"
            raise TooManySessions(
                f"This consumer may hold {most} realtime session{plural} open at once "
                f"(realtime_sessions); close one first.",
                headers={"retry-after": "1"},
            )
        self._open[key] = count + 1

    def end(self, gateway: str, consumer: str) -> None:
        key = (gateway, consumer)
        count = self._open.get(key, 0) - 1
        if count > 0:
            self._open[key] = count
        else:
            self._open.pop(key, None)
