"""Goldens and engine cache files get the mode any file the user creates gets: 0666 less the umask."""
import os
import stat

import numpy as np
import pytest

from pytest_trt.backends.tensorrt.cache import EngineCache
from pytest_trt.goldens.store import write_golden


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)],
                         ids=["umask022", "umask077", "umask002"])
def test_goldens_and_cache_files_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        write_golden(tmp_path / "golden", "reference", {"y": np.zeros(2, np.float32)}, {})
        EngineCache(tmp_path / "cache").get_or_build("a" * 64, {}, lambda timing: (b"plan", b"timing"), timing="t")
    finally:
        os.umask(old)
    modes = {p.relative_to(tmp_path).as_posix(): stat.S_IMODE(p.stat().st_mode)
             for p in tmp_path.rglob("*") if p.is_file()}
    assert sorted(modes) == ["cache/index.json", f"cache/locks/{'a' * 64}.lock", "cache/locks/index.lock",
                             "cache/locks/timing-t.lock", f"cache/plans/{'a' * 64}.json", f"cache/plans/{'a' * 64}.plan",
                             "cache/timing/t.cache", "golden/reference.json", "golden/reference.npz"]
    assert set(modes.values()) == {mode}, modes
