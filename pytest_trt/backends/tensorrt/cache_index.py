"""What each plan in an engine cache folder is, and which plans to prune: sidecars read into plain records.

No TensorRT and no CUDA here: ``python -m pytest_trt cache list|prune`` (``pytest_trt.cli.cache``) reads a cache
on any machine. ``cache.EngineCache`` writes what is read here: ``plans/<key>.plan`` and its ``plans/<key>.json``
sidecar (``provenance`` is its ``built_by``), and ``used/<key>``, an empty file whose modification time is the
plan's last use. ``choose_prunes`` decides, from records only, what a prune removes.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path

from pytest_trt.core.records import Record
from pytest_trt.comparison.report import size_text

USED = "used"     # used/<key>: touched on each cache hit; its mtime is the plan's last use
FLAVOR_NAMES = {"tensorrt": "TensorRT", "tensorrt_rtx": "TensorRT-RTX"}


def utc_text(seconds: float | None = None) -> str:
    """``seconds`` since the epoch (now by default) as ISO 8601 UTC to the second: ``2025-11-30T07:05:00Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def provenance(tensorrt_version: str, driver: str | None) -> dict:
    """Who built a plan, for its sidecar's ``built_by``: host, process id, TensorRT version, CUDA driver version
    (None where no GPU was visible) and time, so a team can tell which machine produced a plan."""
    import socket

    return {"host": socket.gethostname(), "pid": os.getpid(), "tensorrt": tensorrt_version, "driver": driver,
            "time": utc_text()}


class PlanRecord(Record):
    """One plan in a cache folder, as its sidecar and files say. ``problem`` is None for an intact entry, else why
    it is damaged (no sidecar, no plan, a sidecar that is not JSON or records another key or size); the other
    fields are then what could be read. ``size``: bytes on disk (plan and sidecar); ``last_use``: seconds since
    the epoch (the ``used/<key>`` marker, or the plan's own time when newer or no marker exists)."""

    __slots__ = ("key", "model_file", "model_sha256", "precision", "flavor", "version", "gpu", "compute_capability",
                 "size", "built", "host", "pid", "driver", "last_use", "plan_sha256", "problem")

    def __init__(self, key, model_file=None, model_sha256=None, precision=None, flavor=None, version=None, gpu=None,
                 compute_capability=None, size=0, built=None, host=None, pid=None, driver=None, last_use=0.0,
                 plan_sha256=None, problem=None):
        self.key, self.model_file, self.model_sha256, self.precision = key, model_file, model_sha256, precision
        self.flavor, self.version, self.gpu, self.compute_capability = flavor, version, gpu, compute_capability
        self.size, self.built, self.host, self.pid, self.driver = size, built, host, pid, driver
        self.last_use, self.plan_sha256, self.problem = last_use, plan_sha256, problem

    @property
    def tensorrt(self) -> str:
        """``TensorRT-RTX 1.7.1.116``, or ``?`` when the sidecar does not say."""
        if not self.flavor and not self.version:
            return "?"
        return f"{FLAVOR_NAMES.get(self.flavor, self.flavor or '?')} {self.version or '?'}"


def read_records(directory: str | os.PathLike) -> list[PlanRecord]:
    """Every plan under ``directory/plans`` (temporaries of writers in progress left out), by key."""
    plans = Path(directory) / "plans"
    try:
        names = os.listdir(plans)
    except (FileNotFoundError, NotADirectoryError):
        return []
    stems = sorted({name[:-5] for name in names if not name.startswith(".") and name.endswith((".plan", ".json"))})
    return [read_record(Path(directory), stem) for stem in stems]


def read_record(directory: Path, key: str) -> PlanRecord:
    """The record of ``key`` in the cache folder ``directory`` (see ``PlanRecord``)."""
    plan, sidecar = directory / "plans" / f"{key}.plan", directory / "plans" / f"{key}.json"
    plan_stat, sidecar_stat, used_stat = _stat(plan), _stat(sidecar), _stat(directory / USED / key)
    size = sum(s.st_size for s in (plan_stat, sidecar_stat) if s is not None)
    last_use = max((s.st_mtime for s in (used_stat, plan_stat or sidecar_stat) if s is not None), default=0.0)
    record = PlanRecord(key, size=size, last_use=last_use)
    if sidecar_stat is None:
        return record.replace(problem="no sidecar (its .json is missing)")
    return checked(record, lambda: sidecar.read_text(encoding="utf-8"),
                   plan_stat.st_size if plan_stat is not None else None)


def checked(record: PlanRecord, read_sidecar, plan_size: int | None) -> PlanRecord:
    """``record`` described by its sidecar (``read_sidecar()``: its text or bytes), or with the reason it is
    damaged: an unreadable sidecar, no plan (``plan_size`` None), another key, a size the sidecar does not record.
    Shared by local folders and object-storage caches (``stores.upkeep``)."""
    try:
        meta = json.loads(read_sidecar())
    except (OSError, ValueError, UnicodeDecodeError, RecursionError) as exc:
        return record.replace(problem=f"sidecar unreadable ({type(exc).__name__})")
    if not isinstance(meta, dict):
        return record.replace(problem="sidecar is not a JSON object")
    record = described(record, meta)
    if plan_size is None:
        return record.replace(problem="no plan file (its sidecar is alone)")
    if meta.get("key") != record.key:
        return record.replace(problem="sidecar records another key than its file name")
    if meta.get("plan_bytes") != plan_size:
        return record.replace(problem=f"plan is {plan_size} bytes, its sidecar says {meta.get('plan_bytes')}")
    return record


def described(record: PlanRecord, meta: dict) -> PlanRecord:
    """``record`` with what the sidecar ``meta`` says (any field of the wrong type is left unknown)."""
    def text(value):
        return value if isinstance(value, str) else None

    trt = meta.get("tensorrt") if isinstance(meta.get("tensorrt"), dict) else {}
    device = meta.get("device") if isinstance(meta.get("device"), dict) else {}
    built_by = meta.get("built_by") if isinstance(meta.get("built_by"), dict) else {}
    return record.replace(model_file=text(meta.get("model_file")), model_sha256=text(meta.get("model_sha256")),
                          precision=text(meta.get("precision")),
                          flavor=text(trt.get("flavor")), version=text(trt.get("version")),
                          gpu=text(device.get("name")), compute_capability=text(device.get("compute_capability")),
                          built=text(built_by.get("time")) or text(meta.get("created")),
                          host=text(built_by.get("host")),
                          pid=built_by.get("pid") if isinstance(built_by.get("pid"), int) else None,
                          driver=text(built_by.get("driver")), plan_sha256=text(meta.get("plan_sha256")))


def _stat(path: Path):
    try:
        return path.stat()
    except OSError:
        return None


def version_matches(version: str | None, wanted: str) -> bool:
    """``wanted`` is ``version`` or a leading part of it on a dot: ``10.3`` matches ``10.3.0.26``, not ``10.30``."""
    return version is not None and (version == wanted or version.startswith(wanted.rstrip(".") + "."))


def choose_prunes(records: Iterable[PlanRecord], *, now: float, older_than: float | None = None,
                  versions: Iterable[str] = (), max_size: int | None = None,
                  damaged: bool = False) -> list[tuple[PlanRecord, str]]:
    """The plans a prune removes, each with why, least recently used first.

    A plan goes when it was last used more than ``older_than`` seconds before ``now``, or was built by a TensorRT
    version in ``versions`` (``version_matches``); then, while the plans left (damaged ones included: they take
    space) exceed ``max_size`` bytes, the least recently used of them. Damaged entries go only with ``damaged``:
    what they are is unknown, so no age, version or size rule removes them on a guess.
    """
    records, versions = list(records), list(versions)
    chosen: dict[str, str] = {}
    for record in records:
        if record.problem:
            if damaged:
                chosen[record.key] = f"damaged: {record.problem}"
        elif older_than is not None and now - record.last_use > older_than:
            chosen[record.key] = f"not used for {age_text(now - record.last_use)}"
        elif any(version_matches(record.version, v) for v in versions):
            chosen[record.key] = f"built by {record.tensorrt}"
    if max_size is not None:
        left = sum(r.size for r in records if r.key not in chosen)
        for record in sorted((r for r in records if r.key not in chosen and not r.problem),
                             key=lambda r: (r.last_use, r.key)):
            if left <= max_size:
                break
            chosen[record.key] = f"least recently used while the cache exceeds {size_text(max_size)}"
            left -= record.size
    return [(r, chosen[r.key]) for r in sorted(records, key=lambda r: (r.last_use, r.key)) if r.key in chosen]


def age_text(seconds: float) -> str:
    """A duration, rounded down to its largest unit: ``40 s``, ``12 min``, ``5 h``, ``31 d``."""
    seconds = max(0.0, seconds)
    for unit, length in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= length:
            return f"{int(seconds // length)} {unit}"
    return f"{int(seconds)} s"
