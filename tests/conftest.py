"""Fixtures every test may use, and the layout of the tests.

tests/ mirrors pytest_trt/: each folder (plugin/, core/, comparison/, goldens/, reports/, backends/,
backends/tensorrt/) tests the package folder of its name, one file per module where one module is what it
tests (goldens/test_store.py: goldens/store.py), else one per behaviour or option (goldens/test_symlink.py).
Files at the top test across folders: the public API (test_api.py), README.md (test_readme.py), the example
suite (test_examples.py), and real processes and devices (test_xdist.py, test_concurrency.py, test_gpu.py).

Each folder is a package, so two folders may hold test files of one name. The modules the tests import,
models.py (small ONNX models) and shared.py (ROOT, INI, HINT, AUTOCAST_MISSING), live here; this folder is put on sys.path,
so tests anywhere import them as ``from models import ...``. data/torch/ holds models exported from PyTorch
(``python benchmarks/torch_models.py tests/data/torch --width 32``). A folder's own conftest.py holds what only
its tests use (comparison/conftest.py runs each comparator test on both inner loops).
"""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from models import scale_model  # noqa: E402  (found through the path above)
from shared import INI  # noqa: E402


@pytest.fixture
def repo(pytester):
    """A repository pytester runs pytest in, its ini written; a test module's own ``repo`` adds models and tests."""
    pytester.makeini(INI)
    return pytester


@pytest.fixture
def model(tmp_path):
    """m.onnx in the test's tmp_path: y = x * 2.0, x float32 [batch, 4] (models.scale_model)."""
    return scale_model(tmp_path / "m.onnx")
