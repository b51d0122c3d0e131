"""Engine caches on object storage (fsspec URLs): the store (``remote``) and the lease that makes one runner of a
fleet build each key (``lease``, pure decisions).

``engine_cache`` picks the store for a cache location; ``is_url`` tells a URL from a folder. The remote store is
imported only for a URL.
"""
from __future__ import annotations

import os
import re

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(directory) -> bool:
    """True for ``s3://bucket/prefix``-style cache locations (a ``str``; a ``Path`` is always a folder)."""
    return isinstance(directory, str) and not os.path.isabs(directory) and bool(_URL.match(directory))


def engine_cache(directory):
    """The engine cache at ``directory``: a local folder (``EngineCache``), an object-storage URL
    (``remote.RemoteEngineCache``), or None (no cache: every request builds)."""
    if is_url(directory):
        from pytest_trt.stores.remote import RemoteEngineCache

        return RemoteEngineCache(directory)
    from pytest_trt.backends.tensorrt.cache import EngineCache

    return EngineCache(directory)
