"""Failed admin logins, counted per client address, to slow down guessing the admin key.

An address with ``FAILURES`` failed tries (a wrong admin key or admin token, on ``/admin``
or the dashboard's login) within ``WINDOW`` seconds is locked: every admin login from it
is refused with 429, the right key included (answering that one would tell the guesser
which guess was right), for ``FIRST_LOCK`` seconds. After that, until ``MEMORY`` seconds
pass without a failure, each failure locks it again, twice as long as the time before, up
to ``LONGEST_LOCK``. A success clears its own address's count only.

Addresses are the connection's peer; IPv6 ones count per /64, which one client commonly
holds whole. The table keeps at most ``MAX_ADDRESSES`` of them, dropping the one whose
last failure is oldest; it lives in each process (each instance counts its own).
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

FAILURES = 10
WINDOW = 60.0
FIRST_LOCK = 1.0
LONGEST_LOCK = 900.0
MEMORY = 3600.0  # how long an address's past locks make its next one longer
MAX_ADDRESSES = 10_000


def _clock() -> float:
    return time.monotonic()


@dataclass(slots=True)
class _Address:
    failures: deque[float] = field(default_factory=deque)  # within WINDOW, oldest first
    locks: int = 0  # locks so far, each failure within MEMORY of the one before
    locked_until: float = 0.0
    last: float = 0.0


def client_of(peer: tuple[str, int] | list[object] | None) -> str:
    """The address an ASGI ``scope["client"]`` is counted under."""
    if not peer:
        return ""  # a Unix socket: every client is the same one
    host = str(peer[0])
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class LoginThrottle:
    def __init__(self, max_addresses: int = MAX_ADDRESSES) -> None:
        self.max_addresses = max_addresses
        self._addresses: OrderedDict[str, _Address] = OrderedDict()  # least recent first

    def __len__(self) -> int:
        return len(self._addresses)

    def retry_after(self, client: str) -> int | None:
        """Whole seconds until ``client`` may try again; None when it may now."""
        entry = self._addresses.get(client)
        if entry is None:
            return None
        left = entry.locked_until - _clock()
        return math.ceil(left) if left > 0 else None

    def failed(self, client: str) -> None:
        now = _clock()
        entry = self._addresses.pop(client, None)
        if entry is None or now - entry.last > MEMORY:
            entry = _Address()
        entry.last = now
        failures = entry.failures
        failures.append(now)
        while failures and failures[0] <= now - WINDOW:
            failures.popleft()
        # Once locked, an address gets one try per lock: each failure locks it again.
        if len(failures) >= FAILURES or entry.locks:
            entry.locked_until = now + min(FIRST_LOCK * 2**entry.locks, LONGEST_LOCK)
            entry.locks += 1
            failures.clear()
        self._addresses[client] = entry
        while len(self._addresses) > self.max_addresses:
            self._addresses.popitem(last=False)

    def succeeded(self, client: str) -> None:
        self._addresses.pop(client, None)
