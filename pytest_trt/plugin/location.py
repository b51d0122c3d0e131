"""Where a test's goldens live: its folder under the golden dir, and its id in goldens and summary rows.

The folder follows the test's node id: module path, classes, and the test's name with its parametrize
ids, less its precision (the precisions of one test share a folder). A test's later checks get folders
of their own inside it: ``call2/``, ``call3/``... How each folder name is encoded on disk is the golden
store's (``goldens.store.location_parts``).
"""
from __future__ import annotations

import functools
from pathlib import Path

import pytest

from pytest_trt.plugin.marker import precision_param

_LOCATION = pytest.StashKey[tuple]()  # per item: computed once at collection


def golden_location(item) -> tuple[tuple[str, ...], int, str]:
    """(encoded folder parts under the golden dir, how many of them name the module, test id sans precision)."""
    cached = item.stash.get(_LOCATION, None)
    if cached is not None:
        return cached
    from pytest_trt.goldens.store import location_parts

    module_parts, module_id = _module_location(item.path, item.config.rootpath)
    classes = []
    node = item.parent
    while isinstance(node, pytest.Class):
        classes.insert(0, node.name)
        node = node.parent
    ids = _parametrize_ids(item)
    precision = precision_param(item)
    if precision is not None and precision in ids:
        del ids[len(ids) - 1 - ids[::-1].index(precision)]
    name = getattr(item, "originalname", item.name) + (f"[{'-'.join(ids)}]" if ids else "")
    test_id = "::".join([module_id, *classes, name])
    folder = name
    if len(ids) > 1 and any("-" in i for i in ids):
        # pytest joins stacked parametrize ids with "-": ["a-b", "c"] and ["a", "b-c"] both read test_x[a-b-c].
        # The folder name then keeps the ids apart (a separator no id holds makes it a hashed, injective name).
        folder = getattr(item, "originalname", item.name) + "[" + "\x1f".join(ids) + "]"
    location = (location_parts(module_parts, classes, folder), len(module_parts), test_id)
    item.stash[_LOCATION] = location
    return location


def call_location(item, call: int) -> tuple[tuple[str, ...], str, str]:
    """(golden folder parts, test id in goldens, the check's name in the summary) of the test's ``call``-th check."""
    parts, _, test_id = golden_location(item)
    if call == 1:
        return parts, test_id, test_id
    return (*parts, f"call{call}"), test_id, f"{test_id} (call {call})"


def _parametrize_ids(item) -> list[str]:
    """The ids of the item's parametrizations, one each, in the order pytest joins them into its name.

    pytest's public ``callspec.id`` joins them with "-", losing where each ends; the folders of goldens
    already on disk depend on that (see ``golden_location``), and pytest has no public list of them, so
    this reads ``CallSpec2._idlist``. A pytest without it gets ``callspec.id`` split at "-", the same
    folders wherever no id holds a "-"."""
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return []
    ids = getattr(callspec, "_idlist", None)
    if ids is None:
        return callspec.id.split("-") if callspec.id else []
    return list(ids)


@functools.lru_cache(maxsize=256)
def _module_location(path, rootdir: Path) -> tuple[tuple[str, ...], str]:
    """(module path parts without suffix, module path as in test ids), computed once per test file."""
    path = Path(path)
    try:
        module = path.relative_to(rootdir)
    except ValueError:
        module = Path(*path.parts[1:])
    parts = module.with_suffix("").parts
    return parts, module.as_posix()
