"""The example suite stays runnable and its models stay what the generator makes."""
import subprocess
import sys

import pytest

from shared import ROOT


def test_generator_reproduces_committed_models(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "examples" / "make_models.py"), str(tmp_path)], check=True,
                   capture_output=True)
    for model in (ROOT / "examples" / "models").glob("*.onnx"):
        assert (tmp_path / model.name).read_bytes() == model.read_bytes(), f"{model.name} is stale; run examples/make_models.py"


@pytest.mark.slow
def test_example_suite_passes_against_committed_goldens():
    proc = subprocess.run([sys.executable, "-m", "pytest", "examples", "-q", "-p", "no:cacheprovider"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "goldens in" in proc.stdout and "unchanged" in proc.stdout and "9 passed" in proc.stdout
