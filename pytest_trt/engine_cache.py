"""On-disk engine cache: keys that cover everything that changes a plan, atomic files, locks, checksums.

Layout under the cache directory::

    plans/<key>.plan        serialized engine
    plans/<key>.json        what it is: model, flavor and version, GPU, precision, profile, options,
                            plan sha256 and size, build seconds (human-readable)
    timing/<key>.cache      TensorRT timing cache per (TensorRT version, GPU, CUDA), checksummed
    locks/<key>.lock        advisory locks: one process builds a key, the others wait and load
    index.json              one line per plan: key -> short description

A lock is ``flock``/``LockFileEx`` on an open file, so the operating system drops it when its holder
dies: a killed build never blocks the next run. A plan whose checksum or recorded key does not match
is rebuilt with a warning, never loaded.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

from .files import atomic_writer, file_lock

CACHE_FORMAT_VERSION = 1


class EngineCacheWarning(UserWarning):
    """A cached plan or timing cache was damaged and has been rebuilt."""


def cache_key(fields: Mapping) -> str:
    """sha256 over the canonical JSON of everything that changes a plan (see ``key_fields``)."""
    text = json.dumps({"cache_format": CACHE_FORMAT_VERSION, **fields}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def key_fields(*, model_sha256: str, flavor: str, version: str, device: Mapping, realization: Mapping,
               profile: Mapping | None, build_options: Mapping, converter: str | None = None) -> dict:
    """The plan's identity (DESIGN §2): model bytes incl. external data, TensorRT flavor and full version,
    GPU name and compute capability, CUDA runtime, OS/arch, precision realization, profile, builder options."""
    return {
        "model_sha256": model_sha256,
        "tensorrt": {"flavor": flavor, "version": version},
        "device": {k: device.get(k) for k in ("name", "compute_capability", "runtime")},
        "platform": {"system": platform.system(), "machine": platform.machine()},
        "realization": dict(realization),
        "profile": profile,
        "build_options": dict(build_options),
        "converter": converter,
    }


def timing_key(flavor: str, version: str, device: Mapping) -> str:
    """Timing caches are specific to TensorRT version, GPU and CUDA; not to the model."""
    return cache_key({"timing": True, "flavor": flavor, "version": version,
                      "device": {k: device.get(k) for k in ("name", "compute_capability", "runtime")},
                      "machine": platform.machine()})


@dataclasses.dataclass
class CacheOutcome:
    plan: bytes
    status: str            # "built" (cold), "loaded" (warm), "rebuilt" (damaged entry replaced), "uncached"
    seconds: float         # build seconds (0 when loaded)
    key: str
    warning: str | None = None


class EngineCache:
    """Plans by key in ``directory``; ``None`` means no cache (every request builds)."""

    def __init__(self, directory: str | os.PathLike | None):
        self.directory = Path(directory) if directory is not None else None

    def plan_path(self, key: str) -> Path:
        return self.directory / "plans" / f"{key}.plan"

    def get_or_build(self, key: str, description: Mapping, build: Callable[[bytes | None], tuple[bytes, bytes | None]],
                     timing: str | None = None) -> CacheOutcome:
        """The plan for ``key``: loaded when present and intact, else built once (under the key's lock).

        ``build(timing_cache_bytes)`` returns ``(plan, new timing cache bytes or None)``.
        """
        if self.directory is None:
            start = time.perf_counter()
            plan, _ = build(None)
            return CacheOutcome(plan, "uncached", time.perf_counter() - start, key)
        for sub in ("plans", "timing", "locks"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        with file_lock(self.directory / "locks" / f"{key}.lock"):
            plan, problem = self._load(key)
            if plan is not None:
                return CacheOutcome(plan, "loaded", 0.0, key)
            timing_bytes = self._read_timing(timing) if timing else None
            start = time.perf_counter()
            plan, new_timing = build(timing_bytes)
            seconds = time.perf_counter() - start
            self._store(key, plan, description, seconds)
        if timing and new_timing:
            self._write_timing(timing, new_timing)
        if problem:
            warnings.warn(EngineCacheWarning(problem + "; rebuilt it"), stacklevel=2)
        return CacheOutcome(plan, "rebuilt" if problem else "built", seconds, key, problem)

    # ---------------------------------------------------------------------------- plans

    def _load(self, key: str) -> tuple[bytes | None, str | None]:
        """(plan, None) when intact; (None, why) when damaged; (None, None) when absent."""
        path, sidecar = self.plan_path(key), self.plan_path(key).with_suffix(".json")
        if not path.exists() and not sidecar.exists():
            return None, None
        try:
            meta = json.loads(sidecar.read_text(encoding="utf-8"))
            plan = path.read_bytes()
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            return None, f"cached engine {str(path)!r} is incomplete ({type(exc).__name__})"
        if not isinstance(meta, dict) or meta.get("key") != key:
            return None, f"cached engine {str(path)!r} records another key than its file name"
        if meta.get("plan_sha256") != hashlib.sha256(plan).hexdigest() or meta.get("plan_bytes") != len(plan):
            return None, f"cached engine {str(path)!r} fails its checksum (truncated or corrupted)"
        return plan, None

    def _store(self, key: str, plan: bytes, description: Mapping, seconds: float) -> None:
        path = self.plan_path(key)
        meta = {"key": key, "cache_format": CACHE_FORMAT_VERSION, "plan_sha256": hashlib.sha256(plan).hexdigest(),
                "plan_bytes": len(plan), "build_seconds": round(seconds, 3),
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **description}
        with atomic_writer(path) as f:
            f.write(plan)
        with atomic_writer(path.with_suffix(".json")) as f:
            f.write((json.dumps(meta, indent=1, sort_keys=True) + "\n").encode())
        self._update_index(key, meta)

    def _update_index(self, key: str, meta: Mapping) -> None:
        index = self.directory / "index.json"
        with file_lock(self.directory / "locks" / "index.lock"):
            try:
                entries = json.loads(index.read_text(encoding="utf-8"))
                if not isinstance(entries, dict):
                    entries = {}
            except (OSError, ValueError):
                entries = {}
            entries[key] = summary_line(meta)
            with atomic_writer(index) as f:
                f.write((json.dumps(entries, indent=1, sort_keys=True) + "\n").encode())

    # ----------------------------------------------------------------------- timing cache

    def _timing_path(self, timing: str) -> Path:
        return self.directory / "timing" / f"{timing}.cache"

    def _read_timing(self, timing: str) -> bytes | None:
        path = self._timing_path(timing)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        digest, payload = data[:32], data[32:]
        if len(data) < 32 or hashlib.sha256(payload).digest() != digest:
            warnings.warn(EngineCacheWarning(f"timing cache {str(path)!r} fails its checksum; starting a fresh one"),
                          stacklevel=3)
            return None
        return payload

    def _write_timing(self, timing: str, payload: bytes) -> None:
        path = self._timing_path(timing)
        with file_lock(self.directory / "locks" / f"timing-{timing}.lock"):
            with atomic_writer(path) as f:
                f.write(hashlib.sha256(payload).digest() + payload)


def summary_line(meta: Mapping) -> str:
    """One readable line: what a cached plan is."""
    trt = meta.get("tensorrt") or {}
    device = meta.get("device") or {}
    return (f"{meta.get('model_file', '?')} | {meta.get('precision', '?')} | {trt.get('flavor')} {trt.get('version')} | "
            f"{device.get('name')} sm{device.get('compute_capability')} | {meta.get('plan_bytes')} bytes | "
            f"built in {meta.get('build_seconds')} s on {meta.get('created')}")
