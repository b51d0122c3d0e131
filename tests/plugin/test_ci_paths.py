"""Running in CI: paths outside the repository, environment variables, reruns, sharded and partial runs.

pytest chooses its rootdir and ini file before it knows plugin options, so an existing folder given as
``--trt-engine-dir DIR`` (a separate argument) counts as a test path there. These tests build a repository
and a cache folder beside it, as CI jobs that restore a cache volume do, and run real pytest processes.
"""
import os
import sys

import pytest

from models import scale_model, two_io_model

from shared import INI

TEST = """
import pytest
@pytest.mark.trt_compare(model="models/two.onnx")
def test_multi(trt_compare):
    trt_compare()
"""


@pytest.fixture
def ci(pytester, tmp_path_factory):
    """A repository (pytester.path, ini inside) and an existing cache folder outside it."""
    two_io_model(pytester.path / "models" / "two.onnx")
    pytester.makeini(INI)
    pytester.makepyfile(test_m=TEST)
    cache = tmp_path_factory.mktemp("ci") / "cache"
    cache.mkdir()
    return pytester, cache


def files_under(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("flag", ["--trt-engine-dir", "--golden-dir", "--trt-artifacts"])
def test_existing_folder_as_separate_argument_stops_the_session(ci, flag):
    pytester, cache = ci
    result = pytester.runpytest_subprocess("--update-golden", flag, str(cache))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = result.stderr.str()
    assert f"{flag} {cache} was given as a separate argument, and because {cache} exists pytest took it for a " \
           "test path" in text
    assert f"write {flag}={cache}" in text and "PYTEST_TRT_" in text
    assert "Traceback" not in text
    # nothing written anywhere: not beside the cache (where the moved rootdir would put goldens), not in the repo
    assert files_under(cache.parent) == []
    assert not (pytester.path / "golden").exists()


def test_equals_form_and_environment_variable_keep_goldens_in_the_repository(ci, monkeypatch):
    pytester, cache = ci
    result = pytester.runpytest_subprocess("--update-golden", f"--trt-engine-dir={cache}")
    result.assert_outcomes(passed=1)
    assert (pytester.path / "golden" / "test_m" / "test_multi" / "reference.npz").is_file()
    assert files_under(cache.parent) == []
    monkeypatch.setenv("PYTEST_TRT_ENGINE_DIR", str(cache))
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*goldens in {pytester.path / 'golden'}: 1 unchanged*"])


def test_separate_argument_inside_the_repository_is_fine(ci):
    pytester, _ = ci
    (pytester.path / ".trt-cache").mkdir()
    result = pytester.runpytest_subprocess("--update-golden", "--trt-engine-dir", ".trt-cache")
    result.assert_outcomes(passed=1)
    assert (pytester.path / "golden" / "test_m" / "test_multi" / "reference.npz").is_file()


def test_golden_dir_from_environment(ci, monkeypatch):
    pytester, cache = ci
    monkeypatch.setenv("PYTEST_TRT_GOLDEN_DIR", str(cache))
    pytester.runpytest("--update-golden").assert_outcomes(passed=1)
    assert files_under(cache) == ["test_m/test_multi/reference.json", "test_m/test_multi/reference.npz"]
    assert not (pytester.path / "golden").exists()


def test_require_and_backend_from_environment(ci, monkeypatch):
    pytester, _ = ci
    pytester.runpytest("--update-golden").assert_outcomes(passed=1)
    monkeypatch.setenv("PYTEST_TRT_BACKEND", "none")
    monkeypatch.setenv("PYTEST_TRT_REQUIRE", "1")
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*the engine side is required (--trt-require) but did not run: engine side disabled (--trt-backend none)*"])
    monkeypatch.setenv("PYTEST_TRT_REQUIRE", "0")
    pytester.runpytest().assert_outcomes(passed=1)
    monkeypatch.setenv("PYTEST_TRT_REQUIRE", "maybe")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*PYTEST_TRT_REQUIRE='maybe' is not a boolean; use PYTEST_TRT_REQUIRE=1 or "
                                 "PYTEST_TRT_REQUIRE=0*"])


def test_flag_wins_over_environment(ci, monkeypatch, tmp_path):
    pytester, cache = ci
    monkeypatch.setenv("PYTEST_TRT_GOLDEN_DIR", str(cache))
    pytester.runpytest("--update-golden", f"--golden-dir={tmp_path}").assert_outcomes(passed=1)
    assert files_under(cache) == []
    assert (tmp_path / "test_m" / "test_multi" / "reference.npz").is_file()


def test_goldens_under_a_guessed_rootdir_are_not_written_silently(pytester):
    two_io_model(pytester.path / "models" / "two.onnx")
    pytester.makepyfile(test_m=TEST)  # no ini file: pytest guesses the rootdir
    result = pytester.runpytest("--update-golden", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*pytest-trt: goldens will be written under *golden, in the rootdir pytest guessed "
                                 "because it found no ini file; set trt_golden_dir in your ini file*"])
    result = pytester.runpytest("--update-golden", "-p", "no:cacheprovider", "-W", "error::pytest.PytestConfigWarning")
    assert result.ret != 0
    assert pytester.runpytest("-p", "no:cacheprovider").ret == 0  # plain runs never warn


# ---------------------------------------------------------------------------------- golden folders

def test_colliding_parametrize_ids_get_distinct_goldens(pytester):
    """["a-b", "c"] and ["a", "b-c"] both read test_x[a-b-c] in pytest's ids."""
    scale_model(pytester.path / "models" / "scale.onnx", dims=("batch", 4))
    pytester.makeini(INI)
    pytester.makepyfile(test_p="""
        import pytest
        @pytest.mark.parametrize("q", ["c", "b-c"])
        @pytest.mark.parametrize("p", ["a-b", "a"])
        @pytest.mark.trt_compare(model="models/scale.onnx")
        def test_x(trt_compare, p, q):
            trt_compare(shapes={"x": (1 + len(p) + 3 * len(q), 4)})
    """)
    pytester.runpytest("--update-golden").assert_outcomes(passed=4)
    folders = sorted(p.parent.name for p in (pytester.path / "golden").rglob("reference.npz"))
    assert len(folders) == 4, folders
    result = pytester.runpytest()
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*4 unchanged*"])


def test_reruns_start_their_golden_calls_afresh(pytester):
    """pytest-rerunfailures runs every attempt inside one runtest protocol: call2 must not become call4."""
    pytest.importorskip("pytest_rerunfailures")
    scale_model(pytester.path / "models" / "scale.onnx", dims=("batch", 4))
    pytester.makeini(INI)
    pytester.makepyfile(test_r="""
        import pytest
        ATTEMPTS = []
        @pytest.mark.trt_compare(model="models/scale.onnx")
        def test_flaky(trt_compare):
            ATTEMPTS.append(1)
            trt_compare(shapes={"x": (1, 4)})
            trt_compare(shapes={"x": (2, 4)})
            assert len(ATTEMPTS) > 1, "fails on its first attempt"
    """)
    result = pytester.runpytest("--update-golden", "--reruns", "2")
    assert result.parseoutcomes() == {"passed": 1, "rerun": 1}
    folders = sorted(p.parent.relative_to(pytester.path / "golden").as_posix()
                     for p in (pytester.path / "golden").rglob("reference.npz"))
    assert folders == ["test_r/test_flaky", "test_r/test_flaky/call2"]
    result = pytester.runpytest("--reruns", "2")
    assert result.parseoutcomes() == {"passed": 1, "rerun": 1}
    result.stdout.fnmatch_lines(["*2 unchanged*"])


# ------------------------------------------------------------------------------ checks and markers

@pytest.mark.parametrize("scope", ["module", "session", "class"])
@pytest.mark.parametrize("when", ["setup", "teardown"])
def test_check_from_a_broader_fixture_is_refused(pytester, scope, when):
    two_io_model(pytester.path / "models" / "two.onnx")
    pytester.makeini(INI)
    body = "    trt_compare()\n    yield\n" if when == "setup" else "    yield\n    trt_compare()\n"
    pytester.makepyfile(test_f=f"""
import pytest
@pytest.fixture(scope="{scope}")
def shared(trt_compare):
{body}
class TestIt:
    @pytest.mark.trt_compare(model="models/two.onnx")
    def test_one(self, shared, trt_compare):
        pass
    @pytest.mark.trt_compare(model="models/two.onnx")
    def test_two(self, shared, trt_compare):
        pass
@pytest.mark.trt_compare(model="models/two.onnx")
def test_own(trt_compare):
    trt_compare()
""")
    result = pytester.runpytest("--update-golden")
    text = result.stdout.str()
    assert f"trt_compare was called from the {scope}-scoped fixture 'shared', which serves many tests while a " \
           "check and its goldens belong to one; call trt_compare in the test itself or in a function-scoped " \
           "fixture" in text
    assert "INTERNALERROR" not in text and "Traceback" not in text
    outcomes = result.parseoutcomes()
    assert outcomes["passed"] >= 1 and outcomes["errors"] >= 1
    # only the test's own check wrote a golden
    written = sorted(p.parent.name for p in (pytester.path / "golden").rglob("reference.npz"))
    assert written == ["test_own"]


def test_check_from_a_function_scoped_fixture_is_the_tests_own(pytester):
    two_io_model(pytester.path / "models" / "two.onnx")
    pytester.makeini(INI)
    pytester.makepyfile(test_f="""
        import pytest
        @pytest.fixture
        def checked(trt_compare):
            yield trt_compare()
            trt_compare(seed=1)
        @pytest.mark.trt_compare(model="models/two.onnx")
        def test_one(checked):
            assert checked.passed
    """)
    pytester.runpytest("--update-golden").assert_outcomes(passed=1)
    written = sorted(p.parent.relative_to(pytester.path / "golden").as_posix()
                     for p in (pytester.path / "golden").rglob("reference.npz"))
    assert written == ["test_f/test_one", "test_f/test_one/call2"]


def test_the_same_marker_twice_is_an_error_naming_both(pytester):
    two_io_model(pytester.path / "models" / "two.onnx")
    pytester.makeini(INI)
    pytester.makepyfile(test_d="""
        import pytest
        pytestmark = pytest.mark.trt_compare(model="models/two.onnx", atol=1)
        @pytest.mark.trt_compare(model="models/two.onnx", atol=1e-3)
        def test_twice(trt_compare):
            trt_compare()
        class TestC:
            @pytest.mark.trt_compare(model="models/two.onnx")
            @pytest.mark.trt_compare(model="models/two.onnx", rtol=0.5)
            def test_stacked(self, trt_compare):
                trt_compare()
    """)
    result = pytester.runpytest()
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines([
        "test_d.py::test_twice: has 2 trt_compare markers (trt_compare(model='models/two.onnx', atol=0.001) on the "
        "test test_twice; trt_compare(model='models/two.onnx', atol=1) on module test_d.py), and a test is checked "
        "against one; keep one of them (merge their arguments)",
        "test_d.py::TestC::test_stacked: has 3 trt_compare markers*"])


def test_every_bad_marker_is_its_own_error_and_the_others_run(pytester):
    two_io_model(pytester.path / "models" / "two.onnx")
    pytester.makeini(INI)
    pytester.makepyfile(test_a="""
        import pytest
        @pytest.mark.trt_compare(model="models/two.onnx", atoll=1e-3)
        def test_bad_argument(trt_compare):
            trt_compare()
        @pytest.mark.trt_compare(model="models/two.onnx", precision=["fp32", "FP16"])
        def test_bad_precision(trt_compare):
            trt_compare()
        @pytest.mark.trt_compare(model="models/two.onnx")
        def test_good(trt_compare):
            trt_compare()
    """, test_b="""
        import pytest
        @pytest.mark.trt_compare(model="models/two.onnx")
        def test_no_fixture():
            pass
        def test_plain():
            pass
    """)
    result = pytester.runpytest("--update-golden")
    result.assert_outcomes(passed=2, errors=3)
    result.stdout.fnmatch_lines_random([
        "test_a.py::test_bad_argument: trt_compare got unknown argument 'atoll' (did you mean 'atol'?)*",
        "test_a.py::test_bad_precision: trt_compare precision 'FP16' is unknown (did you mean 'fp16'?)*",
        "test_b.py::test_no_fixture: has @pytest.mark.trt_compare but does not use the trt_compare fixture*"])


@pytest.mark.parametrize("tolerances, sentence", [
    ({"ss": {"atol": 1}}, "tolerances['ss'] names neither a precision nor an output of two.onnx (did you mean 's'?); "
                          "its outputs are: s, i; precisions are: fp32, tf32, fp16, bf16, int8, fp8"),
    ({"fp32": {"ii": {"atol": 1}}}, "tolerances['fp32']['ii'] names no output of two.onnx (did you mean 'i'?)*"),
    ({"float16": {"atol": 1}}, "tolerances['float16'] names neither a precision nor an output of two.onnx "
                               "(did you mean 'fp16'?)*"),
    ({"FP16": {"atol": 1}}, "tolerances['FP16'] names neither a precision nor an output of two.onnx "
                            "(did you mean 'fp16'?)*"),
])
def test_misspelt_tolerance_names_fail_their_test(pytester, tolerances, sentence):
    two_io_model(pytester.path / "models" / "two.onnx")
    pytester.makeini(INI)
    pytester.makepyfile(test_t=f"""
        import pytest
        @pytest.mark.trt_compare(model="models/two.onnx", tolerances={tolerances!r})
        def test_t(trt_compare):
            trt_compare()
        @pytest.mark.trt_compare(model="models/two.onnx", tolerances={{"s": {{"atol": 1}}, "fp32": {{"i": {{}}}}}})
        def test_right(trt_compare):
            trt_compare()
    """)
    result = pytester.runpytest("--update-golden", "-W", "error")
    result.assert_outcomes(passed=1, failed=1)
    assert f"test_t.py::test_t: {sentence.rstrip('*')}" in result.stdout.str()  # (brackets: no fnmatch)
    assert "Traceback" not in result.stdout.str()


def test_help_names_the_environment_variables(pytester):
    result = pytester.runpytest("--help")
    text = " ".join(result.stdout.str().split())
    for env in ("PYTEST_TRT_ENGINE_DIR", "PYTEST_TRT_GOLDEN_DIR", "PYTEST_TRT_BACKEND", "PYTEST_TRT_REQUIRE"):
        assert f"env: {env}" in text


def two_tests(pytester, second_call: str = "pass"):
    """test_s.py with test_one and test_two (whose body ends with ``second_call``), goldens recorded."""
    two_io_model(pytester.path / "models" / "two.onnx")
    pytester.makeini(INI)
    pytester.makepyfile(test_s=f"""
import pytest
@pytest.mark.trt_compare(model="models/two.onnx")
def test_one(trt_compare):
    trt_compare()
@pytest.mark.trt_compare(model="models/two.onnx", seed=1)
def test_two(trt_compare):
    trt_compare()
    {second_call}
""")
    pytester.runpytest("--update-golden").assert_outcomes(passed=2)


def test_deselected_tests_do_not_make_their_goldens_unused(pytester):
    """A shard (-k, pytest-split) deselects tests after collection: their goldens stay in use."""
    two_tests(pytester)
    result = pytester.runpytest("-k", "test_one")
    result.assert_outcomes(passed=1, deselected=1)
    assert "unused:" not in result.stdout.str() and " unused" not in result.stdout.str().split("summary")[-1]
    result.stdout.fnmatch_lines(["this run's view: 1 of 2 collected pytest-trt tests ran (1 deselected by -k, -m or a "
                                 "shard plugin); the goldens of deselected tests stay in use",
                                 "*goldens in *: 1 unchanged"])
    whole = pytester.runpytest()
    assert "this run's view" not in whole.stdout.str()          # nothing deselected: no view line
    (pytester.path / "golden" / "test_s" / "test_gone").mkdir()
    (pytester.path / "golden" / "test_s" / "test_gone" / "reference.json").write_text("{}")
    shard = pytester.runpytest("-k", "test_two")                # a folder no collected test uses is still unused
    shard.stdout.fnmatch_lines(["*1 unused*", "*unused: test_s/test_gone/*"])


def test_pytest_split_shards_see_every_golden_in_use_and_say_which_shard(pytester):
    pytest.importorskip("pytest_split")
    two_tests(pytester)
    seen = {}
    for group in (1, 2):
        result = pytester.runpytest("--splits", "2", "--group", str(group))
        result.assert_outcomes(passed=1, deselected=1)
        text = result.stdout.str()
        assert "unused" not in text.split("pytest-trt ===")[-1]
        result.stdout.fnmatch_lines([f"this run's view (group {group} of 2 (pytest-split)): 1 of 2 collected pytest-trt "
                                     "tests ran (1 deselected by -k, -m or a shard plugin)*"])
        seen[group] = text
    assert seen[1] != seen[2]


def test_a_check_that_passes_on_rerun_is_counted_once_as_passed(pytester):
    """The summary shows the last attempt: pytest says '1 passed, 1 rerun', so must pytest-trt."""
    pytest.importorskip("pytest_rerunfailures")
    two_io_model(pytester.path / "models" / "two.onnx")
    pytester.makeini(INI)
    pytester.makepyfile(test_r="""
        import pathlib
        import pytest
        @pytest.mark.trt_compare(model="models/two.onnx")
        def test_flaky(trt_compare):
            first = not pathlib.Path("attempted").exists()
            pathlib.Path("attempted").touch()
            trt_compare(seed=7 if first else 0)  # the first attempt checks other inputs than recorded: fails
    """)
    (pytester.path / "attempted").touch()
    pytester.runpytest("--update-golden").assert_outcomes(passed=1)  # recorded with seed 0
    (pytester.path / "attempted").unlink()
    result = pytester.runpytest("--reruns", "1")
    assert result.parseoutcomes() == {"passed": 1, "rerun": 1}
    text = result.stdout.str()
    assert "checks: 1, 1 passed, 0 failed" in text and "FAILED" not in text, text
    result.stdout.fnmatch_lines(["*goldens in *: 1 unchanged"])


def test_running_tests_by_node_id_lists_no_golden_of_their_file_as_unused(pytester):
    """`pytest file.py::test_one` (the command pytest-trt prints to regenerate a golden) runs part of a file."""
    two_tests(pytester, second_call="trt_compare(seed=2)")
    result = pytester.runpytest("test_s.py::test_one")
    result.assert_outcomes(passed=1)
    assert "unused:" not in result.stdout.str()
    # a test that is gone: its folder is unused, and its call2/ goes with it (one line)
    pytester.makepyfile(test_s="""
        import pytest
        @pytest.mark.trt_compare(model="models/two.onnx")
        def test_one(trt_compare):
            trt_compare()
    """)
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(["*1 unchanged, 1 unused*", "*unused: test_s/test_two/ (no collected test uses it*"])
    assert "call2" not in result.stdout.str()


def test_a_module_marker_checks_the_tests_that_use_trt_compare_and_leaves_the_others_alone(pytester):
    two_io_model(pytester.path / "models" / "two.onnx")
    pytester.makeini(INI)
    pytester.makepyfile(test_m="""
        import pytest
        pytestmark = pytest.mark.trt_compare(model="models/two.onnx")
        def test_check(trt_compare):
            trt_compare()
        def test_plain():
            assert True
    """)
    result = pytester.runpytest("--update-golden")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*goldens in *: 1 created"])


@pytest.mark.parametrize("how", ["flag", "env", "ini"])
def test_an_object_storage_url_is_kept_as_the_engine_cache_location(pytester, monkeypatch, how):
    """s3://... is a URL, not a folder under the current directory, whichever way it is given."""
    pytester.makeini(INI + ("trt_engine_dir = s3://engines/ci\n" if how == "ini" else ""))
    pytester.makeconftest("""
        def pytest_collection_finish(session):
            from pytest_trt.plugin.state import STATE
            print("ENGINE_DIR", repr(session.config.stash[STATE].options.engine_dir))
    """)
    pytester.makepyfile(test_a="def test_a():\n    pass\n")
    if how == "env":
        monkeypatch.setenv("PYTEST_TRT_ENGINE_DIR", "s3://engines/ci")
    result = pytester.runpytest("-s", *(["--trt-engine-dir=s3://engines/ci"] if how == "flag" else []))
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["ENGINE_DIR 's3://engines/ci'"])
