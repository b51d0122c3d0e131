"""pytest-trt's pytest hooks (the plugin's entry point), each handing its work to the module that owns it.

``options`` (flags, ini keys, environment variables, defaults), ``state`` (the session's state and its
engine), ``marker`` (the trt_compare marker), ``location`` (golden folders), ``fixture`` (the fixtures
and each check's verdict), ``summary`` (the terminal). pytest finds a plugin's fixtures on its module,
so the fixtures are imported here. The work of a check is ``core.check``'s; heavy modules are imported
when a check first runs, not when pytest loads the plugin.
"""
from __future__ import annotations

import functools

import pytest

from pytest_trt.plugin.fixture import (FIXTURES, begin_attempt, begin_run, end_run, trt_compare,  # noqa: F401
                                       trt_model, trt_precision)
from pytest_trt.plugin.location import golden_location
from pytest_trt.plugin.marker import MARKER_HELP, SPEC_ERROR, note_spec_error, parametrize
from pytest_trt.plugin.options import add_options, check_path_arguments, read_options
from pytest_trt.plugin.state import STATE, PluginState

_PREVIOUS_SINK = pytest.StashKey[object]()  # the progress sink to restore at unconfigure (nested pytester runs)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    if not hasattr(config, "workerinput"):  # the controller decided; workers inherit its rootdir
        check_path_arguments(config)
    options = read_options(config)
    if options.update_golden and options.golden_guessed and not hasattr(config, "workerinput"):
        config.issue_config_time_warning(pytest.PytestConfigWarning(
            f"pytest-trt: goldens will be written under {options.golden_dir}, in the rootdir pytest guessed because it "
            "found no ini file; set trt_golden_dir in your ini file (or --golden-dir=DIR, or PYTEST_TRT_GOLDEN_DIR) "
            "to choose where they go"), stacklevel=2)
    if options.backend not in ("auto", "none"):
        from pytest_trt.backends.registry import known_backends

        if options.backend not in known_backends():
            raise pytest.UsageError(f"--trt-backend {options.backend!r} is unknown; use auto, none, or one of: "
                                    f"{', '.join(known_backends())}")
    config.stash[STATE] = PluginState(config, options)
    if not hasattr(config, "workerinput"):  # xdist workers have no terminal: their builds show in the summary
        from pytest_trt.backends.tensorrt import progress as build_progress
        from pytest_trt.plugin.summary import terminal_progress

        config.stash[_PREVIOUS_SINK] = build_progress.install(terminal_progress(config))


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = config.stash.get(STATE, None)
    if state is None:
        return []
    from pytest_trt.plugin.summary import header_line

    return [header_line(state)]


# ------------------------------------------------------------------------------- collection

def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize(metafunc)


def pytest_itemcollected(item) -> None:
    state = item.config.stash.get(STATE, None)
    if state is None or note_spec_error(state, item):
        return
    if "trt_compare" not in getattr(item, "fixturenames", ()):
        return
    parts, module_depth, _ = golden_location(item)
    state.summary.add_collected(parts, module_depth,
                                scan=not state.partial_files or item.path.resolve() not in state.partial_files)


def pytest_deselected(items) -> None:
    """Tests deselected after collection (-k, -m, pytest-split and other shard plugins): they were collected, so
    their golden folders are in use; the summary says how much of the suite this run's view covers."""
    if not items:
        return
    state = items[0].config.stash.get(STATE, None)
    if state is None:
        return
    state.summary.deselected += sum(1 for item in items if "trt_compare" in getattr(item, "fixturenames", ()))
    option = items[0].config.option
    splits, group = getattr(option, "splits", None), getattr(option, "group", None)
    if splits and group:
        state.summary.shard = f"group {group} of {splits} (pytest-split)"


# ---------------------------------------------------------------------------------- running

@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    running = begin_run(item)
    try:
        yield
    finally:
        end_run(running)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item) -> None:
    """A rerun's attempt starts its checks afresh; a test whose marker is wrong errors here, alone."""
    begin_attempt(item)
    error = item.stash.get(SPEC_ERROR, None)
    if error is not None:
        pytest.fail(error, pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef, request):
    """Broader fixtures' setups and teardowns under way, so that a check called there is refused."""
    if fixturedef.scope == "function":
        yield
        return
    FIXTURES.append(fixturedef)
    try:
        outcome = yield
    finally:
        FIXTURES.remove(fixturedef)
    if outcome.excinfo is None:  # finalizers run last-in first-out: this one just before the fixture's teardown
        fixturedef.addfinalizer(functools.partial(FIXTURES.append, fixturedef))


def pytest_fixture_post_finalizer(fixturedef, request) -> None:
    for i in range(len(FIXTURES) - 1, -1, -1):
        if FIXTURES[i] is fixturedef:
            del FIXTURES[i]
            break


# ---------------------------------------------------------------------------------- the end

def pytest_unconfigure(config: pytest.Config) -> None:
    """Free engines and execution contexts before the interpreter tears CUDA down."""
    state = config.stash.get(STATE, None)
    if state is not None:
        state.close()
    if _PREVIOUS_SINK in config.stash:
        from pytest_trt.backends.tensorrt import progress as build_progress

        build_progress.install(config.stash[_PREVIOUS_SINK])


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    state = config.stash.get(STATE, None)
    if state is not None and hasattr(config, "workeroutput"):
        config.workeroutput["pytest_trt"] = state.summary.to_json()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """xdist controller: merge each worker's summary."""
    state = node.config.stash.get(STATE, None)
    data = getattr(node, "workeroutput", {}).get("pytest_trt")
    if state is not None and data:
        state.summary.merge_json(data)


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is None or hasattr(config, "workerinput"):
        return
    from pytest_trt.plugin.summary import write_summary

    write_summary(terminalreporter, config, state)
