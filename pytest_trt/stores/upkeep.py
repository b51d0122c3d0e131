"""An object-storage engine cache as records, and removing plans from it: what ``python -m pytest_trt cache
list|prune`` does for a URL (the local folder's counterparts are in ``backends.tensorrt.cache_index``).

Last use on a store is the latest of: the plan's upload, and the ``used/<key>`` marker each runner writes when it
downloads the plan (a runner that loads its own local copy writes nothing there).
"""
from __future__ import annotations

from collections.abc import Mapping

from pytest_trt.backends.tensorrt.cache_index import PlanRecord, checked


def remote_records(url: str) -> list[PlanRecord]:
    """Every plan under ``url/plans``, by key (damaged pairs with their reason, as for a local folder)."""
    from pytest_trt.stores.remote import RemoteEngineCache

    store = RemoteEngineCache(url)
    try:
        listing = store._call(f"listing {url}/plans", store.fs.ls, f"{store.root}/plans", detail=True)
    except FileNotFoundError:
        return []
    used = {}
    try:
        for entry in store._call(f"listing {url}/used", store.fs.ls, f"{store.root}/used", detail=True):
            used[entry["name"].rsplit("/", 1)[-1]] = _modified(entry)
    except FileNotFoundError:
        pass
    files = {entry["name"].rsplit("/", 1)[-1]: entry for entry in listing if entry.get("type") != "directory"}
    keys = sorted({name[:-5] for name in files if name.endswith((".plan", ".json"))})
    records = []
    for key in keys:
        plan, sidecar = files.get(f"{key}.plan"), files.get(f"{key}.json")
        size = sum(int(e.get("size") or 0) for e in (plan, sidecar) if e is not None)
        last_use = max([_modified(e) for e in (plan, sidecar) if e is not None] + [used.get(key, 0.0)])
        record = PlanRecord(key, size=size, last_use=last_use)
        if sidecar is None:
            records.append(record.replace(problem="no sidecar (its .json is missing)"))
            continue
        records.append(checked(record, lambda name=sidecar["name"]: store._read(name) or b"",
                               int(plan.get("size") or 0) if plan is not None else None))
    return records


def remove_remote(url: str, keys: Mapping[str, str | None]) -> dict[str, int]:
    """Remove each key's sidecar (first: readers then no longer see the plan), plan and marker; drop them from the
    store's index. Returns key -> bytes freed."""
    from pytest_trt.stores.remote import RemoteEngineCache

    store = RemoteEngineCache(url)
    freed = {}
    for key in keys:
        total = 0
        for suffix in (".json", ".plan"):
            path = f"{store.root}/plans/{key}{suffix}"
            try:
                total += int(store._call(f"looking up {path}", store.fs.info, path).get("size") or 0)
                store._call(f"removing {path}", store.fs.rm_file, path)
            except FileNotFoundError:
                pass
        try:
            store._call("removing a use marker", store.fs.rm_file, f"{store.root}/used/{key}")
        except FileNotFoundError:
            pass
        freed[key] = total
    if freed:
        store._update_remote_index({key: None for key in freed})
    return freed


def _modified(entry: Mapping) -> float:
    value = entry.get("LastModified") or entry.get("mtime") or entry.get("last_modified")
    if value is None:
        return 0.0
    if hasattr(value, "timestamp"):
        return float(value.timestamp())
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0
