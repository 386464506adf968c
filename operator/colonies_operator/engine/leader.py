"""Leader election on a coordination.k8s.io/v1 Lease, in the event loop (as controller-runtime does it).

One instance of the operator holds the Lease and does all the work; the others wait, ready to take over.
- Acquiring and renewing are writes conditioned on the Lease's resourceVersion: of two instances writing at
  once, one wins and the other is told 409.
- A candidate never compares the holder's renewTime with its own clock (clocks may be skewed): it takes over
  only after it has seen the Lease unchanged for its leaseDurationSeconds, on its own monotonic clock.
- The holder steps down when it could not renew for the renew deadline (shorter than the lease duration), on
  its monotonic clock: it has stopped working before anyone may take over.
- Releasing writes an empty holder with a 1-second lease: the next instance takes over at its next retry.
A Lease is not fencing: an instance that stops being scheduled for longer than the lease may work on for a moment
after another took over. The deterministic Job names and Colonies' single assignment of each process are the
second line of defence.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import math
import random
from typing import Any, Callable

from ..kube.api import KubeApi, KubeError

log = logging.getLogger(__name__)

JITTER = 0.2  # a candidate retries after retry_period × (1 + up to JITTER)


@dataclasses.dataclass(frozen=True)
class LeaseTimings:
    """controller-runtime's defaults: a crashed leader is replaced after 15-17 s; one cut off from the API
    server stops after 10 s, 5 s before anyone may take over; a released Lease is taken within a retry period."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def problem(self) -> str | None:
        """What makes these timings unsafe, or None."""
        if not 0 < self.retry_period * (1 + JITTER) < self.renew_deadline:
            return (f"the retry period ({self.retry_period:g}s, with its {JITTER:.0%} jitter) must be positive and "
                    f"shorter than the renew deadline ({self.renew_deadline:g}s)")
        if not self.renew_deadline < self.lease_duration:
            return (f"the renew deadline ({self.renew_deadline:g}s) must be shorter than the lease duration "
                    f"({self.lease_duration:g}s): the leader must stop before anyone may take over")
        return None


class LeadershipLost(Exception):
    """This instance no longer holds the Lease (it could not renew it in time, or another instance took it)."""


def micro_time(now: dt.datetime | None = None) -> str:
    """A Kubernetes MicroTime."""
    return (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Competes for the Lease `namespace/name` as `identity`. `on_change(leading)` is told of every change."""

    def __init__(self, kube: KubeApi, namespace: str, name: str, identity: str,
                 timings: LeaseTimings = LeaseTimings(), *,
                 on_change: Callable[[bool], None] | None = None) -> None:
        self.kube, self.namespace, self.name, self.identity = kube, namespace, name, identity
        self.timings = timings
        self._on_change = on_change
        self.leading = False
        self._lease: dict[str, Any] | None = None  # as last read or written
        self._seen_spec: dict[str, Any] | None = None
        self._seen_at = 0.0  # the loop's (monotonic) time when the Lease's spec last changed
        self._renewed_at = 0.0
        self._last_error: str | None = None

    @property
    def where(self) -> str:
        return f"Lease {self.namespace}/{self.name}"

    @property
    def holder(self) -> str:
        """The holder the Lease named when last seen ("" for none)."""
        return ((self._lease or {}).get("spec") or {}).get("holderIdentity") or ""

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _set_leading(self, leading: bool) -> None:
        if leading != self.leading:
            self.leading = leading
            if self._on_change:
                self._on_change(leading)

    # -- the three things an instance does ------------------------------------------------------------------

    async def acquire(self) -> None:
        """Returns once this instance holds the Lease; until then, tries again every retry period."""
        waiting_for: str | None = None
        while True:
            try:
                if await self._try_acquire_or_renew():
                    self._set_leading(True)
                    log.info("leading: %s holds %s; starting the work", self.identity, self.where)
                    return
                if self.holder != waiting_for:
                    waiting_for = self.holder
                    log.info("standing by: %s holds %s; this instance (%s) takes no work and takes over if it "
                             "stops renewing (within %gs)", waiting_for or "nobody", self.where, self.identity,
                             self.timings.lease_duration)
            except KubeError as err:
                self._log_error(err)
            await asyncio.sleep(self.timings.retry_period * (1 + random.random() * JITTER))

    async def hold(self) -> None:
        """Renews the Lease every retry period. Raises LeadershipLost, after stepping down, when it could not renew
        for the renew deadline or another instance holds it; never returns otherwise."""
        timings = self.timings
        while True:
            await asyncio.sleep(timings.retry_period)
            deadline = self._renewed_at + timings.renew_deadline
            while True:
                left = deadline - self._now()
                if left <= 0:
                    self._set_leading(False)
                    raise LeadershipLost(f"could not renew {self.where} for {timings.renew_deadline:g}s "
                                         f"({self._last_error or 'no answer'})")
                try:
                    if await asyncio.wait_for(self._try_acquire_or_renew(), left):
                        break
                except asyncio.TimeoutError:
                    continue
                except KubeError as err:
                    self._log_error(err)
                else:
                    if self.holder and self.holder != self.identity:
                        self._set_leading(False)
                        raise LeadershipLost(f"{self.holder} holds {self.where} now")
                await asyncio.sleep(min(timings.retry_period, max(0.0, deadline - self._now())))

    async def release(self) -> bool:
        """Hands the Lease over (an empty holder, a 1-second lease) so the next instance takes over at its next
        retry; True when done. Stepping down first: nothing may be done as leader after this."""
        if not self.leading or self._lease is None:
            return False
        self._set_leading(False)
        now = micro_time()
        spec = dict(self._lease.get("spec") or {})
        spec.pop("holderIdentity", None)
        spec.update({"leaseDurationSeconds": 1, "renewTime": now, "acquireTime": now})
        try:
            self._lease = await self.kube.replace_lease({**self._lease, "spec": spec})
        except KubeError as err:
            log.warning("cannot release %s (%s): the next instance takes over when it expires, within %gs",
                        self.where, err, self.timings.lease_duration)
            return False
        log.info("released %s", self.where)
        return True

    # -- one try ---------------------------------------------------------------------------------------------

    async def _try_acquire_or_renew(self) -> bool:
        lease = await self.kube.get_lease(self.namespace, self.name)
        if lease is None:
            try:
                self._observe(await self.kube.create_lease(self.namespace, self.name, self._spec(None)))
            except KubeError as err:
                if err.status == 409:  # another instance created it first
                    return False
                raise
            self._renewed_at = self._now()
            return True
        self._observe(lease)
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        if holder and holder != self.identity and not self._expired(spec):
            return False
        try:
            written = await self.kube.replace_lease({**lease, "spec": self._spec(spec)})
        except KubeError as err:
            if err.status == 409:  # written by another instance since it was read
                return False
            raise
        self._observe(written)
        self._renewed_at = self._now()
        self._last_error = None
        return True

    def _observe(self, lease: dict[str, Any]) -> None:
        self._lease = lease
        spec = lease.get("spec") or {}
        if spec != self._seen_spec:
            self._seen_spec, self._seen_at = spec, self._now()

    def _expired(self, spec: dict[str, Any]) -> bool:
        """True once the Lease has not changed for its duration, on this instance's own clock."""
        duration = spec.get("leaseDurationSeconds") or self.timings.lease_duration
        return self._now() >= self._seen_at + duration

    def _spec(self, old: dict[str, Any] | None) -> dict[str, Any]:
        now = micro_time()
        renewing = bool(old) and old.get("holderIdentity") == self.identity
        transitions = int((old or {}).get("leaseTransitions") or 0)
        return {"holderIdentity": self.identity, "leaseDurationSeconds": math.ceil(self.timings.lease_duration),
                "acquireTime": old.get("acquireTime") if renewing and old.get("acquireTime") else now,
                "renewTime": now, "leaseTransitions": transitions if renewing or old is None else transitions + 1}

    def _log_error(self, err: KubeError) -> None:
        if str(err) != self._last_error:
            hint = (f"; grant the operator get, create and update on leases in namespace {self.namespace} (the chart "
                    "does)" if err.status == 403 else "")
            log.warning("cannot read or write %s: %s%s", self.where, err, hint)
        self._last_error = str(err)
