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
