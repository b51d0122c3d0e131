"""Values the test modules share: where the repository is, and what a pytester repository's ini holds."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]    # the repository: README.md, examples/, benchmarks/

# The ini of every repository pytester makes (the ``repo`` fixture in conftest.py writes it): no cache
# folder in the test's tmp folder, and no warning for modules imported before pytest could rewrite them.
INI = "[pytest]\naddopts = -p no:cacheprovider\nfilterwarnings = ignore::pytest.PytestAssertRewriteWarning\n"

# The command a golden read names when it refuses a file (what read_golden's tests pass as its hint).
HINT = "pytest --update-golden t.py::test_x"

# Why tests of converter=autocast skip, or None where ModelOpt is installed (asked without importing it and torch;
# an installed but broken ModelOpt fails those tests instead).
AUTOCAST_MISSING = (None if importlib.util.find_spec("modelopt") else
                    "ModelOpt AutoCast is not installed (pip install 'pytest-trt[autocast]')")


def install_backend(site: Path, module: str, source: str, name: str, cls: str) -> Path:
    """A third-party backend as a real distribution in ``site`` (its module, dist-info and ``pytest_trt.backends``
    entry point ``name = module:cls``): put ``site`` on a pytest run's PYTHONPATH or sys.path to install it."""
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(source)
    dist = site / f"{module}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[pytest_trt.backends]\n{name} = {module}:{cls}\n")
    return site
