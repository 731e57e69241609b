"""Active health checks: a background loop per target that asks ``path`` every ``interval``.

A probe passes on any 2xx or 3xx answer within ``timeout``; the verdict goes
to the target's ``TargetHealth``, which flips it down or up once the
configured number of probes in a row agree.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass

from sluicegate.credentials import Signer
from sluicegate.errors import TransportError
from sluicegate.providers.base import UpstreamRequest
from sluicegate.proxy.upstream import Timeouts, Transport
from sluicegate.routing.balancer import Balancer, Target
from sluicegate.routing.health import ActivePolicy


@dataclass(frozen=True, slots=True, eq=False)
class Probe:
    pool: Balancer
    policy: ActivePolicy
    signer: Signer | None
    tls: ssl.SSLContext | None = None  # the upstream's tls_* fields, as its services use them


async def probe_once(target: Target, probe: Probe, http: Transport) -> bool:
    policy = probe.policy
    request = UpstreamRequest("GET", target.url + policy.path, {"accept": "application/json"}, b"")
    if probe.signer is not None:
        try:
            if probe.signer.needs_prepare:
                await probe.signer.prepare(http)
            probe.signer.sign(request)
        except TransportError:
            return False
    timeouts = Timeouts(connect=policy.timeout, read=policy.timeout, total=policy.timeout)
    try:
        response = await http.open(request, timeouts, tls=probe.tls)
    except TransportError:
        return False
    response.release()
    return 200 <= response.status < 400


async def _loop(target: Target, probe: Probe, http: Transport) -> None:
    while True:
        target.health.probed(await probe_once(target, probe, http))
        await asyncio.sleep(probe.policy.interval)


class Prober:
    """Owns the probing tasks of one routing table."""

    def __init__(self, probes: tuple[Probe, ...], http: Transport) -> None:
        self._tasks = [
            asyncio.create_task(_loop(target, probe, http), name=f"probe {target.url}")
            for probe in probes
            for target in probe.pool.targets
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
