"""On-disk engine cache: keys that cover everything that changes a plan, atomic files, locks, checksums.

Layout under the cache directory::

    plans/<key>.plan        serialized engine
    plans/<key>.json        what it is: model, flavor and version, GPU, precision, profile, options,
                            plan sha256 and size, build seconds (human-readable)
    timing/<key>.cache      TensorRT timing cache per (TensorRT version, GPU, CUDA), checksummed
    locks/<key>.lock        advisory locks: one process builds a key, the others wait and load (kept:
                            the cache may be shared over NFS, where removing a lock file in use breaks it)
    used/<key>              empty; its modification time is the plan's last use (touched on each hit)
    index.json              one line per plan: key -> short description

A lock is ``flock``/``LockFileEx`` on an open file, so the operating system drops it when its holder
dies: a killed build never blocks the next run. A plan whose checksum or recorded key does not match
is rebuilt with a warning, never loaded. An intact plan is loaded without a lock and without opening
anything for writing, so a populated cache on a read-only mount serves its plans; only a build writes (and a
hit's ``used/<key>`` touch, where the folder is writable). ``remove`` takes plans out under their locks, for
``python -m pytest_trt cache prune``; ``cache_index`` reads what the folder holds.
"""
from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import platform
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

from pytest_trt.backends.tensorrt.cache_index import USED, utc_text
from pytest_trt.errors import BackendError
from pytest_trt.core.files import atomic_writer, file_lock, remove_stale_temporaries

# 2: plans are built with detailed profiling verbosity (layer precisions for the census); version-1 plans lack it.
CACHE_FORMAT_VERSION = 2


class EngineCacheWarning(UserWarning):
    """A cached plan or timing cache was damaged and has been rebuilt."""


def cache_key(fields: Mapping) -> str:
    """sha256 over the canonical JSON of everything that changes a plan (see ``key_fields``)."""
    text = json.dumps({"cache_format": CACHE_FORMAT_VERSION, **fields}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def key_fields(*, model_sha256: str, flavor: str, version: str, device: Mapping, realization: Mapping,
               profile: Mapping | None, build_options: Mapping, converter: str | None = None) -> dict:
    """The plan's identity: everything that changes a plan. Model bytes incl. external data, TensorRT flavor and
    full version, GPU name and compute capability, CUDA runtime, OS/arch, precision realization, profile,
    builder options."""
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


class EngineCache:
    """Plans by key in ``directory``; ``None`` means no cache (every request builds). A URL string
    (``s3://bucket/prefix``) makes a ``pytest_trt.stores.remote.RemoteEngineCache``."""

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
        plan, _ = self._load(key)  # writers rename whole files: an intact pair needs no lock
        if plan is not None:
            self.mark_used(key)
            return CacheOutcome(plan, "loaded", 0.0, key)
        self._prepare_for_writing()
        with file_lock(self.directory / "locks" / f"{key}.lock", keep=True):
            plan, problem = self._load(key)  # under the lock: built meanwhile, or really damaged
            if plan is not None:
                self.mark_used(key)
                return CacheOutcome(plan, "loaded", 0.0, key)
            plan, seconds = self._build_and_store(key, description, build, timing)
        if problem:
            warnings.warn(EngineCacheWarning(problem + "; rebuilt it"), stacklevel=2)
        return CacheOutcome(plan, "rebuilt" if problem else "built", seconds, key)

    def replace(self, key: str, bad_plan: bytes, description: Mapping,
                build: Callable[[bytes | None], tuple[bytes, bytes | None]], timing: str | None = None) -> CacheOutcome:
        """Rebuild the plan of ``key`` that loaded as ``bad_plan`` but does not deserialize (another driver, say).

        Under the key's lock: a plan another process already replaced is taken as it is."""
        if self.directory is None:
            return self.get_or_build(key, description, build, timing)
        bad = hashlib.sha256(bad_plan).hexdigest()
        self._prepare_for_writing()
        with file_lock(self.directory / "locks" / f"{key}.lock", keep=True):
            plan, _ = self._load(key)
            if plan is not None and hashlib.sha256(plan).hexdigest() != bad:
                self.mark_used(key)
                return CacheOutcome(plan, "loaded", 0.0, key)
            plan, seconds = self._build_and_store(key, description, build, timing)
        return CacheOutcome(plan, "rebuilt", seconds, key)

    def _build_and_store(self, key, description, build, timing) -> tuple[bytes, float]:
        """Build with the stored timing cache, store plan and timing cache; (plan, build seconds). Under the lock."""
        timing_bytes = self._read_timing(timing) if timing else None
        start = time.perf_counter()
        plan, new_timing = build(timing_bytes)
        seconds = time.perf_counter() - start
        try:
            self._store(key, plan, description, seconds)
            if timing and new_timing:
                self._write_timing(timing, new_timing)
        except OSError as exc:
            raise self._unwritable(exc) from None
        return plan, seconds

    def _prepare_for_writing(self) -> None:
        """The cache's folders, or one sentence saying why the cache directory cannot take a new plan."""
        if self.directory.exists() and not self.directory.is_dir():
            raise BackendError(f"engine cache directory {str(self.directory)!r} is a file, not a folder; remove it or "
                               "give --trt-engine-dir (ini trt_engine_dir) another path")
        try:
            for sub in ("plans", "timing", "locks"):
                (self.directory / sub).mkdir(parents=True, exist_ok=True)
            if not os.access(self.directory / "plans", os.W_OK | os.X_OK):
                raise PermissionError(errno.EACCES, "read-only or not writable by this user")
        except OSError as exc:
            raise self._unwritable(exc) from None
        for folder in (self.directory / "plans", self.directory / "timing", self.directory):
            remove_stale_temporaries(folder)

    def mark_used(self, key: str) -> None:
        """Record that the plan of ``key`` was used now: touch ``used/<key>``, best effort (``cache prune``
        removes the least recently used plans first and those unused for a while).

        Not the plan's access time: filesystems are commonly mounted ``noatime`` or ``relatime``, where reading
        a plan does not move it, so the marker's modification time is set instead. Nothing is tried where the
        folder is not writable (a read-only mount serves its plans and a hit must write nothing there), and an
        error is ignored: a missed mark only makes a plan look older to a prune, never fails a check."""
        if not os.access(self.directory, os.W_OK | os.X_OK):
            return
        marker = self.directory / USED / key
        try:
            try:
                os.utime(marker)
            except FileNotFoundError:
                marker.parent.mkdir(exist_ok=True)
                os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666))
        except OSError:
            pass

    def remove(self, plans: Mapping[str, str | None]) -> dict[str, int]:
        """Take the plans ``{key: plan sha256 or None}`` out of the cache: plan, sidecar and ``used`` marker, each
        under its key's lock, then out of ``index.json``; bytes freed by key. A plan whose sidecar records another
        sha256 than given was rebuilt since it was chosen and stays (None: remove whatever is there). The sidecar
        goes first: a process loading meanwhile finds the pair incomplete and, under the lock, builds anew.
        Raises OSError (or TrtCompareError for the lock folder) where the folder cannot be written."""
        freed: dict[str, int] = {}
        for key, sha256 in plans.items():
            with file_lock(self.directory / "locks" / f"{key}.lock", keep=True):
                plan, sidecar = self.plan_path(key), self.plan_path(key).with_suffix(".json")
                if sha256 is not None and _recorded_sha256(sidecar) != sha256:
                    continue
                freed[key] = 0
                for path in (sidecar, plan, self.directory / USED / key):
                    try:
                        size = path.stat().st_size
                        path.unlink()
                    except FileNotFoundError:
                        continue
                    freed[key] += size
        if freed:
            self._update_index({key: None for key in freed})
        return freed

    def _unwritable(self, exc: OSError) -> BackendError:
        return BackendError(f"cannot write to the engine cache directory {str(self.directory)!r} "
                            f"({exc.strerror or type(exc).__name__}); make it writable, free space, or give "
                            "--trt-engine-dir (ini trt_engine_dir) another folder")

    # ---------------------------------------------------------------------------- plans

    def _load(self, key: str) -> tuple[bytes | None, str | None]:
        """(plan, None) when intact; (None, why) when damaged; (None, None) when absent."""
        path, sidecar = self.plan_path(key), self.plan_path(key).with_suffix(".json")
        if not path.exists() and not sidecar.exists():
            return None, None
        try:
            meta = json.loads(sidecar.read_text(encoding="utf-8"))
            plan = path.read_bytes()
        except (OSError, ValueError, UnicodeDecodeError, RecursionError) as exc:
            return None, f"cached engine {str(path)!r} is incomplete or damaged ({type(exc).__name__})"
        if not isinstance(meta, dict) or meta.get("key") != key:
            return None, f"cached engine {str(path)!r} records another key than its file name"
        if meta.get("plan_sha256") != hashlib.sha256(plan).hexdigest() or meta.get("plan_bytes") != len(plan):
            return None, f"cached engine {str(path)!r} fails its checksum (truncated or corrupted)"
        problem = self._meta_problem(meta, key, str(path))
        return (None, problem) if problem else (plan, None)

    def _meta_problem(self, meta: dict, key: str, where: str) -> str | None:
        """A further reason to refuse an intact plan, from its sidecar: none here (a store that signs plans
        checks the signature)."""
        return None

    def _store(self, key: str, plan: bytes, description: Mapping, seconds: float) -> None:
        """Write the plan, then its sidecar: ``description`` (the caller's: what the plan is and, as ``built_by``,
        who built it, ``cache_index.provenance``) with checksum, size and build seconds."""
        path = self.plan_path(key)
        created = utc_text()
        meta = {"key": key, "cache_format": CACHE_FORMAT_VERSION, "plan_sha256": hashlib.sha256(plan).hexdigest(),
                "plan_bytes": len(plan), "build_seconds": round(seconds, 3), "created": created, **description}
        if isinstance(meta.get("built_by"), Mapping):   # built when stored, not when asked for
            meta["built_by"] = {**meta["built_by"], "time": created}
        with atomic_writer(path) as f:
            f.write(plan)
        with atomic_writer(path.with_suffix(".json")) as f:
            f.write((json.dumps(meta, indent=1, sort_keys=True) + "\n").encode())
        self._update_index({key: summary_line(meta)})

    def _update_index(self, changes: Mapping[str, str | None]) -> None:
        """Set (a line) or drop (None) entries of ``index.json``, under its lock."""
        index = self.directory / "index.json"
        with file_lock(self.directory / "locks" / "index.lock", keep=True):
            entries = _read_index(index)
            if entries is None:  # missing or damaged: rebuilt from the plans' sidecars, never silently shortened
                if index.exists():
                    warnings.warn(EngineCacheWarning(f"engine cache index {str(index)!r} was damaged; rebuilt it "
                                                     "from the plans' sidecars"), stacklevel=4)
                entries = self._index_from_sidecars()
            with atomic_writer(index) as f:
                f.write(index_body(entries, changes))

    def _index_from_sidecars(self) -> dict:
        entries = {}
        for sidecar in (self.directory / "plans").glob("*.json"):
            try:
                meta = json.loads(sidecar.read_text(encoding="utf-8"))
            except (OSError, ValueError, UnicodeDecodeError, RecursionError):
                continue
            if isinstance(meta, dict) and meta.get("key") == sidecar.stem and sidecar.with_suffix(".plan").exists():
                entries[sidecar.stem] = summary_line(meta)
        return entries

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
        with file_lock(self.directory / "locks" / f"timing-{timing}.lock", keep=True):
            with atomic_writer(path) as f:
                f.write(hashlib.sha256(payload).digest() + payload)


def _recorded_sha256(sidecar: Path) -> str | None:
    """The plan sha256 a sidecar records; None when it is missing, damaged or says none."""
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return None
    return meta.get("plan_sha256") if isinstance(meta, dict) else None


def index_body(entries: dict, changes: Mapping[str, str | None]) -> bytes:
    """``index.json``'s bytes: ``entries`` with ``changes`` applied (a line sets a key's entry, None drops it)."""
    for key, line in changes.items():
        if line is None:
            entries.pop(key, None)
        else:
            entries[key] = line
    return (json.dumps(entries, indent=1, sort_keys=True) + "\n").encode()


def _read_index(index: Path) -> dict | None:
    """The index's entries, or None when it is missing or damaged (not JSON, too deeply nested, not key -> line)."""
    try:
        entries = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(entries, dict) or not all(isinstance(v, str) for v in entries.values()):
        return None
    return entries


def summary_line(meta: Mapping) -> str:
    """One readable line: what a cached plan is."""
    trt = meta.get("tensorrt") if isinstance(meta.get("tensorrt"), dict) else {}
    device = meta.get("device") if isinstance(meta.get("device"), dict) else {}
    return (f"{meta.get('model_file', '?')} | {meta.get('precision', '?')} | {trt.get('flavor')} {trt.get('version')} | "
            f"{device.get('name')} sm{device.get('compute_capability')} | {meta.get('plan_bytes')} bytes | "
            f"built in {meta.get('build_seconds')} s on {meta.get('created')}")
