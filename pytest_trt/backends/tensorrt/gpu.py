"""Which GPU a test process uses: one per pytest-xdist worker, round robin over ``--trt-devices``.

Pure functions; the plugin applies the result with ``cudaSetDevice`` before any engine is built,
so each worker's engines, buffers and streams live on its own GPU.
"""
from __future__ import annotations

import re

from pytest_trt.errors import SpecError


def parse_devices(text: str | None, where: str = "--trt-devices") -> tuple[int, ...] | None:
    """``"0,2,3"`` -> (0, 2, 3); empty or ``"auto"`` -> None (every visible GPU)."""
    if text is None or not str(text).strip() or str(text).strip() == "auto":
        return None
    parts = [p.strip() for p in str(text).split(",")]
    if not all(p.isdigit() for p in parts):
        raise SpecError(f"{where} {text!r} is not a comma-separated list of GPU indices; use e.g. {where} 0,1 "
                        "(or auto: every visible GPU)")
    devices = tuple(int(p) for p in parts)
    if len(set(devices)) != len(devices):
        raise SpecError(f"{where} {text!r} names a GPU twice; list each GPU once")
    return devices


def worker_index(worker_id: str | None) -> int | None:
    """pytest-xdist's ``PYTEST_XDIST_WORKER`` (``gw3``) -> 3; None outside xdist."""
    if not worker_id:
        return None
    match = re.fullmatch(r"gw(\d+)", worker_id)
    return int(match.group(1)) if match else None


def assign_device(worker: int | None, devices: tuple[int, ...] | None, visible: int) -> int:
    """The GPU index for this process: ``devices[worker % len(devices)]`` (all visible GPUs by default)."""
    if visible <= 0:
        raise SpecError("no CUDA GPU is visible, so there is no GPU to assign")
    pool = devices if devices is not None else tuple(range(visible))
    beyond = [d for d in pool if d >= visible]
    if beyond:
        raise SpecError(f"--trt-devices names GPU {beyond[0]} but this machine shows {visible} "
                        f"(indices 0-{visible - 1}); list only those")
    return pool[(worker or 0) % len(pool)]
