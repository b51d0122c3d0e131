"""Engine caches on object storage (fsspec URLs): the store (``remote``) and the lease that makes one runner of a
fleet build each key (``lease``, pure decisions).

``is_url`` is all the local engine cache needs from here; everything else is imported only for a URL.
"""
from __future__ import annotations

import os
import re

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(directory) -> bool:
    """True for ``s3://bucket/prefix``-style cache locations (a ``str``; a ``Path`` is always a folder)."""
    return isinstance(directory, str) and not os.path.isabs(directory) and bool(_URL.match(directory))
