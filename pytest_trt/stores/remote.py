"""The engine cache on object storage: ``--trt-engine-dir s3://bucket/prefix`` (any fsspec URL).

The store holds the local cache's layout under the URL (``plans/<key>.plan`` and ``.json``, ``timing/``,
``index.json``) plus ``leases/<key>.lease``. Every plan also lives in a local read-through copy, an ordinary
``EngineCache`` folder (``PYTEST_TRT_ENGINE_LOCAL_DIR``, default ``~/.cache/pytest-trt/engines``): a key found
there is never fetched again, and a store that cannot be reached leaves the run with local builds.

Trust: a plan is uploaded before its sidecar, and the sidecar records the plan's sha256; a download whose bytes do
not match is rebuilt with a warning. With ``PYTEST_TRT_CACHE_SECRET`` set, sidecars carry an HMAC-SHA256 over the
key and the plan's sha256, and a plan whose signature does not verify (local copy or download) is never handed to
TensorRT: it is rebuilt, with a warning.

One build per fleet: on S3 a runner that needs a missing key creates its lease with ``If-None-Match: *`` (s3fs
``pipe_file(mode="create")``), renews and takes over expired leases with ``If-Match: <ETag>``, and deletes it
with ``If-Match`` once the plan is stored; the others wait for the sidecar. Other stores, and S3-compatible stores
that do not refuse a second create (checked once per process), fall back to one build per runner (the local
copy's file lock), said once.

(Over 400 lines: the store and its lease holder share the store-access helpers and error sorting; the lease's
decisions are apart, in ``lease``.)
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

from pytest_trt.backends.tensorrt.cache import (CacheOutcome, EngineCache, EngineCacheWarning, index_body,
                                                summary_line)
from pytest_trt.core.files import atomic_writer, file_lock
from pytest_trt.errors import BackendError
import pytest_trt.stores.lease as leases

SECRET_ENV = "PYTEST_TRT_CACHE_SECRET"
LOCAL_DIR_ENV = "PYTEST_TRT_ENGINE_LOCAL_DIR"
EXTRA = "pip install 'pytest-trt[remote]'"
PACKAGES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs",
            "abfss": "adlfs"}
S3 = ("s3", "s3a")
# S3 defaults that keep a stopped server from stalling a run (fsspec configuration, e.g. FSSPEC_S3_*, wins).
S3_DEFAULTS = {"use_listings_cache": False,
               "config_kwargs": {"connect_timeout": 5, "read_timeout": 60,
                                 "retries": {"max_attempts": 2, "mode": "standard"}}}

_OFFLINE: dict[str, str] = {}       # url -> why; this process builds locally from then on
_CONDITIONAL: dict[str, bool] = {}  # url -> whether the store refuses a second create (checked once)
_SAID: set[str] = set()


class RemoteUnavailable(Exception):
    """The store could not be reached or refused us; the message says why in a few words."""


class _Precondition(Exception):
    """A conditional write found the object changed (If-Match) or present (If-None-Match)."""


def open_store(url: str):
    """(filesystem, root path) for ``url``, or one sentence naming the extra to install."""
    protocol = url.split("://", 1)[0].lower()
    package = PACKAGES.get(protocol)
    need = f"fsspec and {package}" if package else "fsspec"
    fix = EXTRA if package in (None, "s3fs") else f"{EXTRA} {package}"
    try:
        import fsspec
        from fsspec.config import conf
    except ImportError:
        raise BackendError(f"engine cache {url!r} is a URL, which needs {need}: {fix}") from None
    options = {}
    if protocol in S3:
        options = {k: v for k, v in S3_DEFAULTS.items() if k not in conf.get(protocol, {})}
    try:
        return fsspec.core.url_to_fs(url, **options)
    except ImportError:
        raise BackendError(f"engine cache {url!r} is a {protocol}:// URL, which needs {need}: {fix}") from None
    except ValueError as exc:
        raise BackendError(f"engine cache {url!r}: {exc}; give --trt-engine-dir a folder or an fsspec URL such as "
                           "s3://bucket/prefix") from None


def local_copy_dir() -> Path:
    """Where downloaded plans are kept: ``PYTEST_TRT_ENGINE_LOCAL_DIR``, else the user's cache folder."""
    configured = os.environ.get(LOCAL_DIR_ENV)
    if configured:
        return Path(os.path.expanduser(configured)).resolve()
    base = os.environ.get("XDG_CACHE_HOME") or (os.environ.get("LOCALAPPDATA") if os.name == "nt" else None)
    return Path(base or Path.home() / ".cache") / "pytest-trt" / "engines"


def signature(secret: str, key: str, plan_sha256: str) -> str:
    """HMAC-SHA256 over the key and the plan's sha256 (hex)."""
    return hmac.new(secret.encode(), f"{key}\n{plan_sha256}".encode(), hashlib.sha256).hexdigest()


def _say_once(text: str) -> None:
    if text not in _SAID:
        _SAID.add(text)
        warnings.warn(EngineCacheWarning(text), stacklevel=5)


class RemoteEngineCache(EngineCache):
    """``EngineCache`` whose plans live at ``url``; ``directory`` is the local read-through copy."""

    def __init__(self, url: str):
        self.url = str(url).rstrip("/")
        self.fs, self.root = open_store(self.url)
        self.protocol = self.url.split("://", 1)[0].lower()
        super().__init__(local_copy_dir())
        self.secret = os.environ.get(SECRET_ENV) or None
        self.ttl = leases.lease_seconds()

    # ------------------------------------------------------------------ EngineCache interface

    def get_or_build(self, key, description, build, timing=None):
        return self._get(key, description, build, timing, None)

    def replace(self, key, bad_plan, description, build, timing=None):
        return self._get(key, description, build, timing, bad_plan)

    def _meta_problem(self, meta: dict, key: str, where: str) -> str | None:
        """The local copy is refused unless its signature verifies, where a secret is set."""
        return self._unsigned(meta, key, where) if self.secret else None

    def _store(self, key, plan, description, seconds):
        if self.secret:  # the sidecar is uploaded as written here, so the signature goes in now
            description = {**description,
                           "signature": signature(self.secret, key, hashlib.sha256(plan).hexdigest())}
        super()._store(key, plan, description, seconds)

    # ------------------------------------------------------------------ the flow

    def _get(self, key, description, build, timing, bad_plan):
        bad = _sha(bad_plan)
        plan, _ = self._load(key)
        if plan is not None and (bad is None or _sha(plan) != bad):
            self.mark_used(key)   # the local copy's last use, as a local cache records it
            return CacheOutcome(plan, "loaded", 0.0, key)
        if self.url not in _OFFLINE:
            try:
                return self._remote_get(key, description, build, timing, bad)
            except RemoteUnavailable as exc:
                _OFFLINE[self.url] = str(exc)
                _say_once(f"engine cache {self.url!r} cannot be reached ({exc}); building engines locally in "
                          f"{str(self.directory)!r} for the rest of this run")
        if bad_plan is not None:
            return super().replace(key, bad_plan, description, build, timing)
        return super().get_or_build(key, description, build, timing)

    def _remote_get(self, key, description, build, timing, bad):
        plan, meta, problem = self._fetch(key, bad)
        if plan is not None:
            return self._keep(key, plan, meta)
        self._prepare_for_writing()
        with file_lock(self.directory / "locks" / f"{key}.lock", keep=True):  # one build per runner
            local, _ = self._load(key)
            if local is not None and (bad is None or _sha(local) != bad):
                return CacheOutcome(local, "loaded", 0.0, key)
            holder = _LeaseHolder(self, key) if self._conditional() else None
            if holder is not None and not holder.acquire(lambda: self._exists(self._plan(key, ".json"))):
                plan, meta, problem = self._fetch(key, bad)  # built by another runner while we waited
                if plan is not None:
                    return self._keep(key, plan, meta)
                holder = _LeaseHolder(self, key)
                holder.acquire(lambda: False)
            try:
                plan, meta, later = self._fetch(key, bad)   # stored just before our lease was granted
                if plan is not None:
                    return self._keep(key, plan, meta)
                problem = problem or later
                self._pull_timing(timing)
                plan, seconds = self._build_and_store(key, description, build, timing)
                if holder is None or holder.still_mine():
                    self._upload(key, timing)
            finally:
                if holder is not None:
                    holder.release()
        if problem:
            warnings.warn(EngineCacheWarning(problem + "; rebuilt it"), stacklevel=4)
        return CacheOutcome(plan, "rebuilt" if problem or bad else "built", seconds, key)

    def _keep(self, key, plan: bytes, meta_bytes: bytes):
        """A verified download, written to the local copy (plan first, sidecar after) and its index."""
        self._prepare_for_writing()
        path = self.plan_path(key)
        with atomic_writer(path) as f:
            f.write(plan)
        with atomic_writer(path.with_suffix(".json")) as f:
            f.write(meta_bytes)
        self._update_index({key: summary_line(json.loads(meta_bytes))})
        self.mark_used(key)
        try:   # the fleet's last use of the plan: a download (best effort; `cache list` shows it)
            self._put(f"{self.root}/used/{key}", b"")
        except (RemoteUnavailable, _Precondition, OSError):
            pass
        return CacheOutcome(plan, "loaded", 0.0, key)

    # ------------------------------------------------------------------ store access

    def _plan(self, key: str, suffix: str) -> str:
        return f"{self.root}/plans/{key}{suffix}"

    def _call(self, what: str, fn, *args, **kwargs):
        """``fn(*args, **kwargs)`` with the store's errors sorted: absent (FileNotFoundError), present on a
        create (FileExistsError), a failed condition (_Precondition), anything else: RemoteUnavailable."""
        try:
            return fn(*args, **kwargs)
        except FileNotFoundError:
            raise
        except FileExistsError:
            raise
        except Exception as exc:  # noqa: BLE001 - every transport and service error means the same here
            if _precondition_failed(exc):
                raise _Precondition(str(exc)) from None
            text = str(exc).splitlines()[0][:200] if str(exc) else ""
            raise RemoteUnavailable(f"{what}: {type(exc).__name__}{': ' + text if text else ''}") from None

    def _read(self, path: str) -> bytes | None:
        try:
            return self._call(f"reading {path}", self.fs.cat_file, path)
        except FileNotFoundError:
            return None

    def _exists(self, path: str) -> bool:
        self.fs.invalidate_cache(path)
        return bool(self._call(f"looking up {path}", self.fs.exists, path))

    def _put(self, path: str, data: bytes, **kwargs):
        return self._call(f"writing {path}", self.fs.pipe_file, path, data, **kwargs)

    def _fetch(self, key: str, bad: str | None) -> tuple[bytes | None, bytes | None, str | None]:
        """(plan, sidecar bytes, None) when the store holds a verified pair; (None, None, why) when damaged;
        (None, None, None) when absent. A pair caught between two writers is read once more."""
        for attempt in range(2):
            meta_bytes = self._read(self._plan(key, ".json"))
            if meta_bytes is None:
                return None, None, None
            plan = self._read(self._plan(key, ".plan"))
            problem = self._verify(key, plan, meta_bytes)
            if problem is None and _sha(plan) == bad:
                return None, None, None   # the plan that failed to load here: rebuilt, not a damaged entry
            if problem is None or attempt:
                return (plan, meta_bytes, None) if problem is None else (None, None, problem)
            time.sleep(1.0)
        return None, None, None  # pragma: no cover - the loop returns

    def _verify(self, key: str, plan: bytes | None, meta_bytes: bytes) -> str | None:
        where = f"{self.url}/plans/{key}.plan"
        try:
            meta = json.loads(meta_bytes)
        except (ValueError, UnicodeDecodeError, RecursionError):
            meta = None
        if plan is None or not isinstance(meta, dict):
            return f"cached engine {where!r} is incomplete or damaged"
        if meta.get("key") != key:
            return f"cached engine {where!r} records another key than its name"
        if meta.get("plan_sha256") != _sha(plan) or meta.get("plan_bytes") != len(plan):
            return f"cached engine {where!r} fails its checksum (truncated, corrupted or replaced)"
        return self._unsigned(meta, key, where) if self.secret else None

    def _unsigned(self, meta: Mapping, key: str, where: str) -> str | None:
        given = meta.get("signature")
        if isinstance(given, str) and hmac.compare_digest(given, signature(self.secret, key,
                                                                         str(meta.get("plan_sha256")))):
            return None
        state = "is not signed" if not given else "has a signature that does not verify"
        return (f"cached engine {where!r} {state} with {SECRET_ENV}; it was not loaded (set the same secret on "
                "every runner that writes the cache)")

    def _upload(self, key: str, timing: str | None) -> None:
        """The local copy's plan, then its sidecar, then the index and timing cache (best effort)."""
        path = self.plan_path(key)
        self._put(self._plan(key, ".plan"), path.read_bytes())
        sidecar = path.with_suffix(".json").read_bytes()
        self._put(self._plan(key, ".json"), sidecar)
        self._update_remote_index({key: summary_line(json.loads(sidecar))})
        if timing:
            local = self._timing_path(timing)
            if local.exists():
                self._put(f"{self.root}/timing/{timing}.cache", local.read_bytes())

    def _update_remote_index(self, changes: Mapping[str, str | None]) -> None:
        """index.json, read-modify-written (a line sets a key's entry, None drops it); on S3 with If-Match
        (retried), elsewhere last writer wins."""
        path = f"{self.root}/index.json"
        for _ in range(8):
            conditional = self.protocol in S3
            version = self._version(path) if conditional else None   # only S3 writes on a condition
            data = self._read(path) if version or not conditional else None
            try:
                entries = json.loads(data) if data else {}
            except (ValueError, UnicodeDecodeError, RecursionError):
                entries = {}
            if not isinstance(entries, dict):
                entries = {}
            body = index_body(entries, changes)
            if not conditional:
                self._put(path, body)
                return
            try:
                self._put(path, body, **({"IfMatch": version} if version else {"mode": "create"}))
                return
            except (_Precondition, FileExistsError):
                continue

    def _pull_timing(self, timing: str | None) -> None:
        """The store's timing cache into the local copy (checked by the local cache when read)."""
        if not timing or self._timing_path(timing).exists():
            return
        data = self._read(f"{self.root}/timing/{timing}.cache")
        if data:
            with atomic_writer(self._timing_path(timing)) as f:
                f.write(data)

    def _version(self, path: str) -> str | None:
        """The object's ETag; None when absent."""
        self.fs.invalidate_cache(path)
        try:
            info = self._call(f"looking up {path}", self.fs.info, path)
        except FileNotFoundError:
            return None
        return str(info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified"))

    def _conditional(self) -> bool:
        """Whether leases work here: S3 that refuses a second create of one object (checked once per process)."""
        if self.url in _CONDITIONAL:
            return _CONDITIONAL[self.url]
        if self.protocol not in S3:
            ok = False
            _say_once(f"engine cache {self.url!r}: leases need S3 conditional writes, which {self.protocol}:// "
                      "does not offer here; each runner builds the engines it needs (at most once per runner)")
        else:
            probe = f"{self.root}/leases/.probe-{uuid.uuid4().hex}"
            self._put(probe, b"1", mode="create")
            try:
                self._put(probe, b"2", mode="create")
                ok = False
            except (FileExistsError, _Precondition):
                ok = True
            try:
                self._call(f"removing {probe}", self.fs.rm_file, probe)
            except FileNotFoundError:
                pass
            if not ok:
                _say_once(f"engine cache {self.url!r} accepted a second create of one object (no If-None-Match): "
                          "no fleet-wide leases; each runner builds the engines it needs (at most once per runner)")
        _CONDITIONAL[self.url] = ok
        return ok


class _LeaseHolder:
    """Acquires, renews (a thread) and releases ``leases/<key>.lease`` with S3 conditional writes."""

    def __init__(self, cache: RemoteEngineCache, key: str):
        self.cache, self.key = cache, key
        self.path = f"{cache.root}/leases/{key}.lease"
        self.owner = leases.new_owner()
        self.etag: str | None = None
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _body(self) -> bytes:
        return leases.Lease(self.owner, time.time(), self.cache.ttl).encode()

    def acquire(self, ready: Callable[[], bool]) -> bool:
        """True once the lease is ours; False when ``ready()`` (the plan appeared) before that."""
        cache, seen, attempt = self.cache, None, 0
        while True:
            try:
                self.etag = _etag(cache._put(self.path, self._body(), mode="create"))
                break
            except (FileExistsError, _Precondition):
                pass
            version = cache._version(self.path)
            if version is not None:
                seen = leases.sight(seen, version, time.monotonic())
                current = leases.decode(cache._read(self.path) or b"")
                if leases.expired(current, seen, now=time.monotonic(), wall=time.time(), ttl=cache.ttl):
                    try:
                        self.etag = _etag(cache._put(self.path, self._body(), IfMatch=version))
                        break
                    except (_Precondition, FileNotFoundError):
                        seen = None
                        continue
            if ready():
                return False
            time.sleep(leases.poll_delay(attempt, cache.ttl))
            attempt += 1
        self._thread = threading.Thread(target=self._renew, name=f"pytest-trt lease {self.key[:12]}", daemon=True)
        self._thread.start()
        return True

    def _renew(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(min(0.5, self.cache.ttl / 10)):
            if not leases.renewal_due(last, time.monotonic(), self.cache.ttl):
                continue
            try:
                self.etag = _etag(self.cache._put(self.path, self._body(), IfMatch=self.etag))
                last = time.monotonic()
            except (_Precondition, FileNotFoundError):
                self.lost = True      # taken over: the new holder stores the plan
                return
            except RemoteUnavailable:
                continue              # try again at the next tick; the lease may expire meanwhile

    def still_mine(self) -> bool:
        if self.lost:
            return False
        try:
            self.etag = _etag(self.cache._put(self.path, self._body(), IfMatch=self.etag))
            return True
        except (_Precondition, FileNotFoundError):
            self.lost = True
            return False

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.etag is None or self.lost:
            return
        try:
            self.cache._call(f"removing {self.path}", self.cache.fs.call_s3, "delete_object",
                             Bucket=self.path.split("/", 1)[0], Key=self.path.split("/", 1)[1], IfMatch=self.etag)
        except (_Precondition, FileNotFoundError, RemoteUnavailable):
            pass  # taken over or unreachable: it expires


def _sha(data: bytes | None) -> str | None:
    if data is None:
        return None
    return hashlib.sha256(data).hexdigest()


def _etag(response) -> str | None:
    return response.get("ETag") if isinstance(response, dict) else None


def _precondition_failed(exc: BaseException) -> bool:
    for error in (exc, exc.__cause__, exc.__context__):
        response = getattr(error, "response", None)
        if isinstance(response, dict):
            code = str(response.get("Error", {}).get("Code", ""))
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                return True
    return False

