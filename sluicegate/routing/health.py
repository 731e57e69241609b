"""The health of one target: active probes, passive ejection, half-open trials.

States, and what moves between them:

    healthy ──(passive: N consecutive failures)──▶ ejected ──(cooldown over)──▶ half-open
       ▲                                                                         │
       └─────────────(the one trial request succeeds)────────────────────────────┘
                           (it fails: ejected again for another cooldown)

    healthy ◀──(active: healthy_successes probes pass)──▶ down (active: unhealthy_failures fail)

A target is used when it is healthy, or half-open with no trial in flight. Upstream
targets have the checks their upstream's ``healthchecks`` asks for; the one target of an
endpoint service has passive checks, ``ENDPOINT_PASSIVE`` unless it says otherwise.
Everything here is synchronous and allocation-free on the request path (a change of
state, which is rare, writes one log line); the probing loop lives in ``routing.probes``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

log = logging.getLogger("sluicegate")


@dataclass(frozen=True, slots=True)
class PassivePolicy:
    statuses: frozenset[int]
    failures: int
    timeouts: int
    cooldown: float


# An endpoint service without ``healthchecks``: its one target is ejected after 5 failures
# (or 3 timeouts) in a row, so that a provider that is down costs a few requests their
# wait instead of all of them; a short cooldown, since nothing else serves while it lasts.
ENDPOINT_PASSIVE = PassivePolicy(frozenset({500, 502, 503, 504}), 5, 3, 10.0)


@dataclass(frozen=True, slots=True)
class ActivePolicy:
    path: str
    interval: float
    timeout: float
    healthy_successes: int
    unhealthy_failures: int


class TargetHealth:
    __slots__ = (
        "_probe_fails",
        "_probe_oks",
        "active",
        "consecutive_failures",
        "consecutive_timeouts",
        "down",
        "ejected_until",
        "passive",
        "trial_in_flight",
        "where",
    )

    def __init__(
        self,
        passive: PassivePolicy | None = None,
        active: ActivePolicy | None = None,
        where: str = "a target",
    ):
        self.passive = passive
        self.active = active
        self.where = where  # "service 'x' target http://…", for the log
        self.down = False  # set by active probes
        self.ejected_until = 0.0  # set by passive checks; 0: not ejected
        self.trial_in_flight = False
        self.consecutive_failures = 0
        self.consecutive_timeouts = 0
        self._probe_oks = 0
        self._probe_fails = 0

    # ------------------------------------------------------------ the request path
    def state(self, now: float | None = None) -> str:
        if self.down:
            return "down"
        if self.ejected_until:
            now = time.monotonic() if now is None else now
            return "ejected" if now < self.ejected_until else "half-open"
        return "healthy"

    def available(self, now: float) -> bool:
        if self.down:
            return False
        if not self.ejected_until:
            return True
        return now >= self.ejected_until and not self.trial_in_flight

    def begin(self, now: float) -> None:
        """A request is about to use this target."""
        if self.ejected_until and now >= self.ejected_until:
            self.trial_in_flight = True  # half-open: this request is the one trial
            log.info("circuit half-open: %s gets one trial request", self.where)

    def succeeded(self) -> None:
        self.consecutive_failures = 0
        self.consecutive_timeouts = 0
        if self.ejected_until:
            self.ejected_until = 0.0
            self.trial_in_flight = False
            log.info("circuit closed: %s answered its trial request; back in use", self.where)

    def failed(self, kind: str, status: int | None, now: float) -> None:
        """Passive check: a failure seen on real traffic."""
        policy = self.passive
        if policy is None:
            return
        if kind == "status" and (status is None or status not in policy.statuses):
            self.succeeded()  # the target answered; the request itself was at fault
            return
        if self.trial_in_flight:  # the half-open trial failed
            self.trial_in_flight = False
            self.ejected_until = now + policy.cooldown
            log.warning(
                "circuit open: %s failed its trial request; ejected for another %gs",
                self.where,
                policy.cooldown,
            )
            return
        if kind == "timeout":
            self.consecutive_timeouts += 1
            if self.consecutive_timeouts >= policy.timeouts:
                self._eject(now, policy, f"{policy.timeouts} timeouts")
            return
        self.consecutive_failures += 1
        if self.consecutive_failures >= policy.failures:
            self._eject(now, policy, f"{policy.failures} failures")

    def _eject(self, now: float, policy: PassivePolicy, why: str) -> None:
        log.warning(
            "circuit open: %s ejected for %gs after %s in a row", self.where, policy.cooldown, why
        )
        self.ejected_until = now + policy.cooldown
        self.consecutive_failures = 0
        self.consecutive_timeouts = 0

    # ------------------------------------------------------------ active probes
    def probed(self, ok: bool) -> None:
        policy = self.active
        if policy is None:
            return
        if ok:
            self._probe_fails = 0
            self._probe_oks += 1
            if self.down and self._probe_oks >= policy.healthy_successes:
                self.down = False
                log.info(
                    "%s is up: %d health checks passed; back in use", self.where, self._probe_oks
                )
        else:
            self._probe_oks = 0
            self._probe_fails += 1
            if not self.down and self._probe_fails >= policy.unhealthy_failures:
                self.down = True
                log.warning(
                    "%s is down: %d health checks failed; not used until they pass",
                    self.where,
                    self._probe_fails,
                )
