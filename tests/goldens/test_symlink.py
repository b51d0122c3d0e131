"""--update-golden writes only inside the real golden directory: a symlinked folder anywhere in a test's
folder chain that leads out of it is refused for that test (one sentence: the link, its target, the fix);
symlinked golden files are replaced by real files, never written through."""
import os

import numpy as np
import pytest

from models import two_io_model
from pytest_trt.errors import GoldenError
from pytest_trt.goldens.store import read_golden, write_golden

TESTS = """
    import pytest
    @pytest.mark.trt_compare(model="models/two.onnx")
    def test_x(trt_compare):
        trt_compare()
        trt_compare(seed=1)
"""


def tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def repo(repo, tmp_path_factory):
    two_io_model(repo.path / "models" / "two.onnx")
    repo.makepyfile(**{"tests/sub/test_a": TESTS, "tests/sub/test_b": TESTS})
    return repo, tmp_path_factory.mktemp("elsewhere")


# The symlinked folder at each depth of test_a's chain: module path, module, test, later call.
@pytest.mark.parametrize("link", ["tests", "tests/sub", "tests/sub/test_a", "tests/sub/test_a/test_x",
                                  "tests/sub/test_a/test_x/call2"])
def test_symlinked_folder_out_of_the_golden_dir_is_refused(repo, link):
    pytester, elsewhere = repo
    golden = pytester.path / "golden"
    (golden / link).parent.mkdir(parents=True, exist_ok=True)
    if link.startswith("tests/sub/"):  # the other module's goldens are real folders beside the link
        (golden / "tests" / "sub" / "test_b").mkdir(parents=True)
    (golden / link).symlink_to(elsewhere, target_is_directory=True)
    result = pytester.runpytest("--update-golden", "tests")
    failed = 2 if link in ("tests", "tests/sub") else 1
    result.assert_outcomes(passed=2 - failed, failed=failed)
    assert tree(elsewhere) == []                     # nothing written through the link
    if failed == 1:
        assert (golden / "tests/sub/test_b/test_x/reference.npz").is_file()
    result.stdout.fnmatch_lines([
        f"E       golden folder '{golden / link}' is a symlink to '{os.path.realpath(elsewhere)}', outside the golden "
        f"directory '{golden}'; --update-golden writes only inside it: replace the symlink with a real folder "
        "(or copy its goldens in), or choose the golden directory with --golden-dir"])
    assert "Traceback" not in result.stdout.str()


def test_symlinked_folder_inside_the_golden_dir_is_written(repo):
    """A link that stays within the golden directory (shared goldens of two modules) writes through it."""
    pytester, _ = repo
    golden = pytester.path / "golden"
    (golden / "shared").mkdir(parents=True)
    (golden / "tests" / "sub").mkdir(parents=True)
    (golden / "tests" / "sub" / "test_a").symlink_to(golden / "shared", target_is_directory=True)
    pytester.runpytest("--update-golden", "tests").assert_outcomes(passed=2)
    assert (golden / "shared" / "test_x" / "call2" / "reference.npz").is_file()
    pytester.runpytest("tests").assert_outcomes(passed=2)


def test_dangling_folder_symlink_is_refused(tmp_path):
    (tmp_path / "golden").mkdir()
    (tmp_path / "golden" / "m").symlink_to(tmp_path / "gone", target_is_directory=True)
    with pytest.raises(GoldenError, match=r"golden folder '.*/golden/m' is a symlink to '.*/gone', outside"):
        write_golden(tmp_path / "golden" / "m" / "t", "reference", {"y": np.ones(2)}, {}, root=tmp_path / "golden")
    assert not (tmp_path / "gone").exists()


def test_golden_dir_itself_may_be_a_symlink(tmp_path):
    """The configured golden directory is the user's choice, wherever it really lives."""
    (tmp_path / "real").mkdir()
    (tmp_path / "golden").symlink_to(tmp_path / "real", target_is_directory=True)
    write_golden(tmp_path / "golden" / "m" / "t", "reference", {"y": np.ones(2)}, {}, root=tmp_path / "golden")
    assert (tmp_path / "real" / "m" / "t" / "reference.npz").is_file()


def test_symlinked_golden_file_is_replaced_not_written_through(repo):
    pytester, elsewhere = repo
    pytester.runpytest("--update-golden", "tests").assert_outcomes(passed=2)
    folder = pytester.path / "golden" / "tests" / "sub" / "test_a" / "test_x"
    outside = elsewhere / "reference.npz"
    outside.write_bytes(b"not a golden")
    (folder / "reference.npz").unlink()
    (folder / "reference.npz").symlink_to(outside)
    pytester.runpytest("--update-golden", "tests").assert_outcomes(passed=2)
    assert outside.read_bytes() == b"not a golden" and not (folder / "reference.npz").is_symlink()
    assert read_golden(folder, "reference", "") is not None
