"""Leases for building a key once per fleet: what a lease says and the pure decisions about it.

A lease is a small JSON object next to the plans (``leases/<key>.lease``) created with the store's conditional
write (create-if-absent). Its holder renews it while it builds (every third of its time to live) and deletes it
when the plan is stored. A lease is expired when

* its version (ETag) has not changed for its time to live on the observer's own monotonic clock (a holder that
  renews changes it three times as often), or
* the writer's recorded renewal time is more than two times to live behind the observer's wall clock (a lease
  left by a runner killed long ago is taken over at once; clocks may differ by up to one time to live).

Nothing here does I/O; ``pytest_trt.stores.remote`` acts on these decisions.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import socket
import uuid
from collections.abc import Mapping

from pytest_trt.errors import TrtCompareError

LEASE_ENV = "PYTEST_TRT_LEASE_SECONDS"
DEFAULT_LEASE_SECONDS = 60.0
RENEWALS_PER_TTL = 3


@dataclasses.dataclass(frozen=True)
class Lease:
    owner: str          # host:pid:random, unique per process
    renewed: float      # the holder's wall clock at the last renewal, seconds since the epoch
    ttl: float          # seconds without renewal after which others may take it over

    def encode(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), sort_keys=True).encode()


def decode(data: bytes) -> Lease | None:
    """The lease in ``data``; None when it is not one (damaged: judged by its age alone)."""
    try:
        raw = json.loads(data)
        lease = Lease(owner=str(raw["owner"]), renewed=float(raw["renewed"]), ttl=float(raw["ttl"]))
    except (ValueError, TypeError, KeyError, UnicodeDecodeError, RecursionError):
        return None
    if not (math.isfinite(lease.renewed) and math.isfinite(lease.ttl) and lease.ttl > 0):
        return None
    return lease


def new_owner() -> str:
    """An owner id unique to this process (and readable: which host and process holds a lease)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def lease_seconds(environ: Mapping[str, str] = os.environ) -> float:
    """The lease time to live from ``PYTEST_TRT_LEASE_SECONDS`` (default 60), or one sentence on a bad value."""
    text = environ.get(LEASE_ENV, "").strip()
    if not text:
        return DEFAULT_LEASE_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise TrtCompareError(f"{LEASE_ENV}={text!r} is not a positive number of seconds; set it to e.g. 60 or "
                              "unset it")
    return value


@dataclasses.dataclass(frozen=True)
class Sighting:
    """A lease version (ETag or another version token) and when this process first saw it (monotonic seconds)."""
    version: str
    since: float


def sight(previous: Sighting | None, version: str, now: float) -> Sighting:
    """The sighting after seeing ``version`` at ``now``: the same version keeps its first time, a new one restarts."""
    if previous is not None and previous.version == version:
        return previous
    return Sighting(version, now)


def expired(lease: Lease | None, seen: Sighting, *, now: float, wall: float, ttl: float) -> bool:
    """Whether a lease may be taken over (see the module docstring). ``ttl`` is ours, for a lease that does not
    decode; ``now`` monotonic, ``wall`` epoch seconds."""
    limit = lease.ttl if lease is not None else ttl
    if now - seen.since >= limit:
        return True
    return lease is not None and wall - lease.renewed > 2 * lease.ttl


def is_mine(lease: Lease | None, owner: str) -> bool:
    return lease is not None and lease.owner == owner


def renewal_due(last: float, now: float, ttl: float) -> bool:
    """Whether the holder should renew now (``last``: monotonic time of its last successful renewal)."""
    return now - last >= ttl / RENEWALS_PER_TTL


def poll_delay(attempt: int, ttl: float) -> float:
    """Seconds a waiting runner sleeps before looking again: 0.2 s growing to at most 2 s (and a tenth of the ttl)."""
    return min(0.2 * 1.5 ** attempt, 2.0, max(ttl / 10, 0.05))
