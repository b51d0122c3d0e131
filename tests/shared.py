"""Values the test modules share: where the repository is, and what a pytester repository's ini holds."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]    # the repository: README.md, examples/, benchmarks/

# The ini of every repository pytester makes (the ``repo`` fixture in conftest.py writes it): no cache
# folder in the test's tmp folder, and no warning for modules imported before pytest could rewrite them.
INI = "[pytest]\naddopts = -p no:cacheprovider\nfilterwarnings = ignore::pytest.PytestAssertRewriteWarning\n"

# The command a golden read names when it refuses a file (what read_golden's tests pass as its hint).
HINT = "pytest --update-golden t.py::test_x"
