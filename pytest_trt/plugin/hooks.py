"""pytest hooks only: options and ini keys, the marker, precision parametrization, fixtures, summary.

The work itself lives in ``check`` (one comparison), ``golden`` (files) and ``compare`` (numbers);
heavy modules are imported when a check first runs, not when pytest loads the plugin.
"""
from __future__ import annotations

import functools
import os
import shlex
from pathlib import Path

import pytest

from pytest_trt.errors import SpecError, TrtCompareError, TrtDriftWarning
from pytest_trt.core.records import Record

MARKER = "trt_compare"
_STATE = pytest.StashKey["_PluginState"]()
_LOCATION = pytest.StashKey[tuple]()  # per item: computed once at collection
_PREVIOUS_SINK = pytest.StashKey[object]()  # the progress sink to restore at unconfigure (nested pytester runs)
_SPEC_ERROR = pytest.StashKey[str]()  # per item: why its marker cannot run (the test errors at setup)


class _Options(Record):
    """The session's pytest-trt options, from flags or ini keys."""

    __slots__ = ("golden_dir", "update_golden", "backend", "require", "engine_dir", "build", "devices", "summary",
                 "close_share", "drift_factor", "strict_drift", "artifacts", "suggest", "junit", "golden_guessed")

    def __init__(self, golden_dir: Path | None, update_golden: bool, backend: str, require: bool,
                 engine_dir: Path | None, build=None, devices: tuple[int, ...] | None = None, summary: str = "compact",
                 close_share: float = 0.8, drift_factor: float = 2.0, strict_drift: bool = False,
                 artifacts: Path | None = None, suggest: bool = False, junit: bool = False):
        self.golden_dir = golden_dir
        self.update_golden = update_golden
        self.backend = backend
        self.require = require
        self.engine_dir = engine_dir
        self.build = build                  # core.build_options.BuildOptions; None: TensorRT's defaults
        self.devices = devices              # --trt-devices; None: every visible GPU
        self.summary = summary              # --trt-summary: compact (rows that need attention) or full
        self.close_share = close_share      # --trt-close-share
        self.drift_factor = drift_factor    # --trt-drift-factor
        self.strict_drift = strict_drift    # --trt-strict-drift
        self.artifacts = artifacts          # --trt-artifacts; None: under pytest's basetemp
        self.suggest = suggest              # --trt-suggest-tolerances
        self.junit = junit                  # --junitxml given: checks add their JUnit properties
        self.golden_guessed = False         # default golden dir under a rootdir pytest guessed (no ini file)


class _PluginState:
    def __init__(self, config: pytest.Config, options: _Options):
        from pytest_trt.plugin.summary import SessionSummary

        self.config = config
        self.options = options
        self.summary = SessionSummary()
        self.specs: dict[tuple, tuple] = {}  # (id(Mark), test path) -> (Mark, CompareSpec)
        self.spec_errors: dict[str, str] = {}  # test function (_definition_key) -> its marker's error sentence
        # Test files named with node ids (path::test): only some of their tests run, so none of their golden
        # folders is reported unused.
        here = Path(config.invocation_params.dir)
        self.partial_files = {(here / arg.split("::")[0]).resolve() for arg in config.args if "::" in arg}
        self._engine = None
        self.gpu: int | None = None         # the GPU this process uses (set when a TensorRT backend may run)

    def engine(self):
        """(backend or None, reason) for the engine under test; decided once per session."""
        if self._engine is None:
            from pytest_trt.backends.registry import AUTO_ORDER, select_engine_backend

            problem = self._assign_gpu()
            self._engine = select_engine_backend(self.options.backend)
            if problem and self._engine[0] is not None and self._engine[0].name in AUTO_ORDER:
                self._engine = (None, problem)
        return self._engine

    def _assign_gpu(self) -> str | None:
        """Put this process on its GPU (one per xdist worker) before any engine exists; the reason when
        that fails. Skipped where no TensorRT backend can run, so CUDA is not loaded for nothing."""
        import os

        from pytest_trt.backends.registry import AUTO_ORDER
        from pytest_trt.backends.tensorrt.probe import machine_reason

        if self.options.backend not in ("auto", *AUTO_ORDER):
            return None
        if all(machine_reason(m) for m in AUTO_ORDER):  # not installed, no cuda-python, or no GPU visible
            return None  # the backend itself says why it cannot run

        from pytest_trt.backends.tensorrt import cuda
        from pytest_trt.backends.tensorrt.gpu import assign_device, worker_index

        try:
            self.gpu = assign_device(worker_index(os.environ.get("PYTEST_XDIST_WORKER")), self.options.devices,
                                     cuda.device_count())
            cuda.set_device(self.gpu)
        except TrtCompareError as exc:
            return str(exc)
        return None


# ----------------------------------------------------------------------------------- options

_OPTIONS = [
    # (flag, ini key, kind, environment variable or None, help)
    ("--trt-engine-dir", "trt_engine_dir", "path", "PYTEST_TRT_ENGINE_DIR",
     "folder of cached TensorRT engines, reused across runs and machines (default: none, engines are built once "
     "per session); give it as --trt-engine-dir=DIR"),
    ("--update-golden", "trt_update_golden", "bool", None,
     "create or rewrite goldens that are missing or no longer match (atomically); matching goldens are left untouched"),
    ("--golden-dir", "trt_golden_dir", "path", "PYTEST_TRT_GOLDEN_DIR",
     "folder holding goldens (default: golden/ under the rootdir; an ini value is relative to the ini file, "
     "a flag or environment value to the current directory)"),
    ("--trt-backend", "trt_backend", "string", "PYTEST_TRT_BACKEND",
     "engine under test: auto (TensorRT if it can run here, else none), none, or a backend name "
     "(onnxruntime, tensorrt, tensorrt_rtx, or one registered under the pytest_trt.backends entry point)"),
    ("--trt-require", "trt_require", "bool", "PYTEST_TRT_REQUIRE",
     "fail checks whose engine side cannot run (for GPU CI), instead of skipping the engine side with a reason"),
    ("--trt-devices", "trt_devices", "string", "PYTEST_TRT_DEVICES",
     "GPUs to use, e.g. 0,1: each pytest-xdist worker takes one, round robin (gw0 -> first, gw1 -> second, ...); "
     "default auto: every visible GPU"),
    ("--trt-build-options", "trt_build_options", "string", "PYTEST_TRT_BUILD_OPTIONS",
     "TensorRT builder options for every engine, e.g. 'workspace=2G optimization_level=3 "
     "tactic_sources=EDGE_MASK_CONVOLUTIONS,JIT_CONVOLUTIONS' (a marker's build={...} overrides per test)"),
    ("--trt-summary", "trt_summary", "string", None,
     "session summary table: compact (failed, drifted and close-to-tolerance checks; the default) or full "
     "(one row per check; also with -v)"),
    ("--trt-close-share", "trt_close_share", "string", None,
     "share of a tolerance above which a passing check is listed as close to tolerance (default 0.8)"),
    ("--trt-drift-factor", "trt_drift_factor", "string", None,
     "flag drift when an engine's error against the reference grew more than this factor since its golden "
     "was recorded (default 2)"),
    ("--trt-strict-drift", "trt_strict_drift", "bool", None, "fail checks whose error drifted, instead of warning"),
    ("--trt-artifacts", "trt_artifacts", "path", "PYTEST_TRT_ARTIFACTS",
     "folder for failure artifacts (inputs, outputs, report.json, PNG plots), one folder per failed check "
     "(default: trt-artifacts/ under pytest's basetemp)"),
    ("--trt-suggest-tolerances", "trt_suggest_tolerances", "bool", None,
     "fail no check on tolerance; print per marker the tightest passing atol per precision and output "
     "(x1.5, at least 2 eps x max|expected|, rounded up; rtol kept) as tolerances={...} to paste into it"),
]
_ENV = {ini: env for _, ini, _, env, _ in _OPTIONS if env}
_PATH_FLAGS = {flag: ini for flag, ini, kind, _, _ in _OPTIONS if kind == "path"}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


_METAVARS = {"trt_build_options": "OPTIONS", "trt_devices": "LIST", "trt_summary": "STYLE",
             "trt_close_share": "SHARE", "trt_drift_factor": "FACTOR"}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("trt", "pytest-trt: numerical regression tests for inference engines")
    for flag, ini, kind, env, text in _OPTIONS:
        dest = ini
        where = f" [ini: {ini}" + (f"; env: {env}" if env else "") + "]"
        if kind == "bool":
            group.addoption(flag, action="store_true", default=None, dest=dest, help=text + where)
            parser.addini(ini, text, type="bool", default=False)
        else:
            metavar = "DIR" if kind == "path" else _METAVARS.get(ini, "NAME")
            group.addoption(flag, action="store", default=None, dest=dest, metavar=metavar, help=text + where)
            parser.addini(ini, text, type="string", default="auto" if ini == "trt_backend" else "")


def _setting(config: pytest.Config, ini: str):
    """(value, where it came from) of one option: the flag, else its environment variable, else the ini key.

    Environment variables let CI configure paths without path arguments (see ``_check_path_arguments``)."""
    cli = config.getoption(ini)
    if cli is not None and cli != "":
        return cli, "flag"
    env = _ENV.get(ini)
    if env and os.environ.get(env, "") != "":
        return os.environ[env], "env"
    return config.getini(ini), "ini"


def _read_options(config: pytest.Config) -> _Options:
    explicit = set()  # path options the user set (flag, environment or ini), not defaults

    def path(ini, default):
        value, source = _setting(config, ini)
        if not value:
            return default
        explicit.add(ini)
        if source == "ini":
            base = config.inipath.parent if config.inipath else config.rootpath
            return (base / value).resolve()
        return (Path(config.invocation_params.dir) / os.path.expanduser(value)).resolve()

    def flag(ini):
        value, source = _setting(config, ini)
        if source != "env":
            return bool(value)
        text = value.strip().lower()
        if text not in _TRUE + _FALSE:
            raise pytest.UsageError(f"{_ENV[ini]}={value!r} is not a boolean; use {_ENV[ini]}=1 or {_ENV[ini]}=0")
        return text in _TRUE

    def text(ini):
        return _setting(config, ini)[0] or ""

    backend = text("trt_backend") or "auto"
    build = text("trt_build_options")
    from pytest_trt.backends.tensorrt.gpu import parse_devices

    def number(ini, flag_name, default, low, high):
        text = config.getoption(ini) or config.getini(ini)
        if not text:
            return default
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not low <= value <= high:
            raise pytest.UsageError(f"{flag_name} {text!r} is not a number from {low:g} to {high:g}; "
                                    f"use e.g. {flag_name}={default:g}")
        return value

    summary = config.getoption("trt_summary") or config.getini("trt_summary") or "compact"
    if summary not in ("compact", "full"):
        raise pytest.UsageError(f"--trt-summary {summary!r} is unknown; use compact or full")
    try:
        build_options = None   # TensorRT's defaults; core.build_options is loaded only when options are given
        if build:
            from pytest_trt.core.build_options import parse_build_options

            build_options = parse_build_options(build, "--trt-build-options")
        devices = parse_devices(text("trt_devices"))
    except TrtCompareError as exc:
        raise pytest.UsageError(str(exc)) from None
    options = _Options(golden_dir=path("trt_golden_dir", (config.rootpath / "golden").resolve()),
                       update_golden=flag("trt_update_golden"), backend=backend, require=flag("trt_require"),
                       engine_dir=path("trt_engine_dir", None), build=build_options,
                       devices=devices, summary=summary,
                       close_share=number("trt_close_share", "--trt-close-share", 0.8, 0.0, 1.0),
                       drift_factor=number("trt_drift_factor", "--trt-drift-factor", 2.0, 1.0, 1e6),
                       strict_drift=flag("trt_strict_drift"), artifacts=path("trt_artifacts", None),
                       suggest=flag("trt_suggest_tolerances"), junit=bool(config.getoption("xmlpath", None)))
    options.golden_guessed = "trt_golden_dir" not in explicit and config.inipath is None
    return options


def _check_path_arguments(config: pytest.Config) -> None:
    """Stop when the value of one of our path options, given as a separate argument, moved pytest's rootdir or ini.

    pytest chooses its rootdir and reads its ini file before plugins' options are known, so in
    ``--trt-engine-dir /ci/cache`` the existing folder ``/ci/cache`` counts as a test path there: the
    rootdir can move outside the repository and the repository's ini goes unread. ``--opt=value``, ini
    keys and environment variables are not affected.
    """
    args = [*shlex.split(os.environ.get("PYTEST_ADDOPTS", "")), *config.invocation_params.args]
    here = Path(config.invocation_params.dir)
    given = [(a, v) for a, v in zip(args, args[1:])
             if a in _PATH_FLAGS and not v.startswith("-") and (here / os.path.expanduser(v)).exists()]
    if not given:
        return
    expected = _setup_without_option_values(config)
    if expected is None:  # this pytest's setup cannot be recomputed: any such value may have moved it
        moved = True
    else:
        moved = (Path(expected[0]), expected[1] and Path(expected[1])) != (config.rootpath, config.inipath)
    if not moved:
        return
    flag, value = given[0]
    env = _ENV[_PATH_FLAGS[flag]]
    ini_now = config.inipath or "none"
    instead = f" instead of {expected[0]} (ini file: {ini_now} instead of {expected[1] or 'none'})" if expected else ""
    raise pytest.UsageError(
        f"{flag} {value} was given as a separate argument, and because {value} exists pytest took it for a test path "
        f"when it chose its rootdir and ini file (rootdir: {config.rootpath}{instead}), so goldens and settings "
        f"would come from the wrong place; write {flag}={value}, set {_PATH_FLAGS[flag]} in the ini file, "
        f"or set {env}={value}")


def _setup_without_option_values(config: pytest.Config):
    """(rootdir, ini path) pytest would have chosen from the same command line without our options' values."""
    import inspect

    try:
        from _pytest.config.findpaths import determine_setup

        params = inspect.signature(determine_setup).parameters
        kwargs = {"inifile": config.option.inifilename, "args": list(config.option.file_or_dir or ()),
                  "rootdir_cmd_arg": config.option.rootdir or None}
        if "override_ini" in params:
            kwargs["override_ini"] = config.option.override_ini
        if "invocation_dir" in params:
            kwargs["invocation_dir"] = Path(config.invocation_params.dir)
        if "config" in params:
            kwargs["config"] = None
        return tuple(determine_setup(**kwargs)[:2])
    except Exception:  # noqa: BLE001 - a private pytest function: fall back to refusing such arguments
        return None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(model=None, *, atol=None, rtol=None, precision='fp32', tolerances=None, shapes=None, seed=0, "
        "outputs=None, input_range=None, convention='allclose', equal_nan=True, build=None): compare an engine "
        "under test with the ONNX Runtime reference and stored goldens (pytest-trt; see its README)")
    if not hasattr(config, "workerinput"):  # the controller decided; workers inherit its rootdir
        _check_path_arguments(config)
    options = _read_options(config)
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
    config.stash[_STATE] = _PluginState(config, options)
    if not hasattr(config, "workerinput"):  # xdist workers have no terminal: their builds show in the summary
        from pytest_trt.backends.tensorrt import progress as build_progress

        config.stash[_PREVIOUS_SINK] = build_progress.install(_terminal_progress(config))


def _terminal_progress(config: pytest.Config):
    """Progress lines through pytest's terminal writer, whole lines, with output capture suspended."""
    import contextlib

    def write(line: str) -> None:
        if config.pluginmanager.get_plugin("terminalreporter") is None:
            return
        capture = config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
            writer = config.get_terminal_writer()
            if writer.width_of_current_line:  # after -q's progress dots: a line of our own
                writer.line()
            writer.line(line)
    return write


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = config.stash.get(_STATE, None)
    if state is None:
        return []
    from pytest_trt import __version__
    from pytest_trt.comparison import kernel as comparator_kernel

    # The engine is chosen at the first check, not here: choosing imports TensorRT and CUDA, which a
    # session without trt_compare tests must not pay for. The summary at the end says what ran.
    engine = state.options.backend
    if engine != "none":
        engine += " (chosen at the first check; the pytest-trt summary says what ran)"
    update = " (updating)" if state.options.update_golden else ""
    return [f"pytest-trt {__version__}: goldens in {state.options.golden_dir}{update}; engine under test: {engine}; "
            f"comparator: {comparator_kernel.describe()}"]


# ------------------------------------------------------------------------------- collection

def _spec_for(node, rootdir: Path):
    """The node's validated marker arguments, parsed once per marker (not once per test)."""
    marker = _closest_marker(node)
    if marker is None:
        from pytest_trt.core.spec import CompareSpec

        return CompareSpec()
    state = node.config.stash.get(_STATE, None)
    specs = state.specs if state is not None else {}
    key = (id(marker), node.path)
    cached = specs.get(key)
    if cached is not None and cached[0] is marker:
        return cached[1]
    from pytest_trt.core.spec import parse_marker

    spec = parse_marker(marker.args, marker.kwargs, Path(node.path).parent, rootdir)
    specs[key] = (marker, spec)  # parametrized items share one Mark; holding it keeps its id unique
    return spec


def _closest_marker(node):
    """``node.get_closest_marker(MARKER)``, looking at the node's own markers first: where a test's marker
    usually is (its decorator), found without walking the node chain, once per test."""
    for mark in node.own_markers:
        if mark.name == MARKER:
            return mark
    return node.get_closest_marker(MARKER)


def _marker_owner(item) -> str | None:
    """Where the item's marker is declared, as a node id: the test function for its decorator (shared by the
    function's parametrized tests), the class or module for theirs; None for a ``pytest.param`` mark (the
    test's own). Tests with one owner share one marker, so --trt-suggest-tolerances suggests once for them."""
    mark = _closest_marker(item)
    if any(m is mark for m in getattr(getattr(item, "function", None), "pytestmark", ())):
        return f"{item.parent.nodeid}::{getattr(item, 'originalname', item.name)}"
    return next((node.nodeid for node in item.listchain()[-2::-1] if any(m is mark for m in node.own_markers)), None)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    definition = metafunc.definition
    if definition.get_closest_marker(MARKER) is None:
        return
    error = None
    marks = list(definition.iter_markers_with_node(MARKER))
    if len(marks) > 1:
        where = "; ".join(f"{_mark_text(mark)} on {_node_text(node)}" for node, mark in marks)
        error = (f"{definition.nodeid}: has {len(marks)} trt_compare markers ({where}), and a test is checked "
                 "against one; keep one of them (merge their arguments)")
    elif "trt_compare" not in metafunc.fixturenames:
        if not any(mark.name == MARKER for mark in definition.own_markers):
            return  # a class's or module's marker over a test that is no check (it does not use trt_compare)
        error = (f"{definition.nodeid}: has @pytest.mark.{MARKER} but does not use the trt_compare fixture; "
                 "add trt_compare as an argument and call it")
    else:
        try:
            spec = _spec_for(definition, metafunc.config.rootpath)
        except SpecError as exc:
            error = f"{definition.nodeid}: {exc}"
    if error is not None:  # this test errors alone at its setup; the others run
        state = metafunc.config.stash.get(_STATE, None)
        if state is None:
            raise pytest.Collector.CollectError(error)
        state.spec_errors[_definition_key(definition)] = error
        return
    if spec.parametrized:  # the precision is trt_compare's parameter; function scope keeps pytest's test order
        metafunc.parametrize("trt_compare", spec.precisions, ids=list(spec.precisions), indirect=True, scope="function")


def _definition_key(node) -> str:
    """The test function a collected item (or its FunctionDefinition) comes from."""
    return f"{node.parent.nodeid}::{getattr(node, 'originalname', node.name)}"


def _mark_text(mark) -> str:
    arguments = [repr(a) for a in mark.args] + [f"{k}={v!r}" for k, v in mark.kwargs.items()]
    text = ", ".join(arguments)
    return f"{MARKER}({text if len(text) <= 60 else text[:57] + '...'})"


def _node_text(node) -> str:
    if isinstance(node, pytest.Module):
        return f"module {node.name}"
    if isinstance(node, pytest.Class):
        return f"class {node.name}"
    return f"the test {node.name}"


def _golden_location(item) -> tuple[tuple[str, ...], int, str]:
    """(encoded folder parts under the golden dir, how many of them name the module, test id sans precision)."""
    cached = item.stash.get(_LOCATION, None)
    if cached is not None:
        return cached
    from pytest_trt.goldens.store import location_parts

    module_parts, module_id = _module_location(item.path, item.config.rootpath)
    classes = []
    node = item.parent
    while isinstance(node, pytest.Class):
        classes.insert(0, node.name)
        node = node.parent
    ids = list(getattr(getattr(item, "callspec", None), "_idlist", []) or [])
    precision = _precision_param(item)
    if precision is not None and precision in ids:
        del ids[len(ids) - 1 - ids[::-1].index(precision)]
    name = getattr(item, "originalname", item.name) + (f"[{'-'.join(ids)}]" if ids else "")
    test_id = "::".join([module_id, *classes, name])
    folder = name
    if len(ids) > 1 and any("-" in i for i in ids):
        # pytest joins stacked parametrize ids with "-": ["a-b", "c"] and ["a", "b-c"] both read test_x[a-b-c].
        # The folder name then keeps the ids apart (a separator no id holds makes it a hashed, injective name).
        folder = getattr(item, "originalname", item.name) + "[" + "\x1f".join(ids) + "]"
    location = (location_parts(module_parts, classes, folder), len(module_parts), test_id)
    item.stash[_LOCATION] = location
    return location


@functools.lru_cache(maxsize=256)
def _module_location(path, rootdir: Path) -> tuple[tuple[str, ...], str]:
    """(module path parts without suffix, module path as in test ids), computed once per test file."""
    path = Path(path)
    try:
        module = path.relative_to(rootdir)
    except ValueError:
        module = Path(*path.parts[1:])
    parts = module.with_suffix("").parts
    return parts, module.as_posix()


def pytest_itemcollected(item) -> None:
    state = item.config.stash.get(_STATE, None)
    if state is None:
        return
    if state.spec_errors and isinstance(item, pytest.Function):
        error = state.spec_errors.get(_definition_key(item))
        if error is not None:
            item.stash[_SPEC_ERROR] = error
            return
    if "trt_compare" not in getattr(item, "fixturenames", ()):
        return
    parts, module_depth, _ = _golden_location(item)
    state.summary.known.add("/".join(parts))
    if not state.partial_files or item.path.resolve() not in state.partial_files:
        state.summary.scanned.add("/".join(parts[:module_depth]))


# --------------------------------------------------------------------------------- fixtures

def _precision_param(item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("trt_compare") if callspec is not None else None


@pytest.fixture
def trt_precision(request) -> str:
    """The precision under test: the marker's precision, or this test's one when the marker lists several."""
    precision = _precision_param(request.node)
    return precision if precision is not None else _spec_for(request.node, request.config.rootpath).precisions[0]


@pytest.fixture
def trt_model():
    """Override to supply the model path when the marker has no ``model=``."""
    return None


class TrtCompare:
    """The ``trt_compare`` fixture's value: call it to run the check of the test that is running (see README).

    One object for all tests: the fixture is session-scoped and takes no arguments, because setting up
    a function-scoped fixture (or one that takes ``request``) costs pytest more than a small check does.
    What it checks comes from the test that is running.
    """

    def _check(self) -> _TestCheck:
        if _FIXTURES:
            fixturedef = _FIXTURES[-1]
            where = f"{_RUNNING[-1][0].nodeid}: " if _RUNNING else ""
            pytest.fail(f"{where}trt_compare was called from the {fixturedef.scope}-scoped fixture "
                        f"{fixturedef.argname!r}, "
                        f"which serves many tests while a check and its goldens belong to one; call trt_compare in "
                        "the test itself or in a function-scoped fixture", pytrace=False)
        if not _RUNNING:
            raise pytest.UsageError("trt_compare was used while no test was running; call it from a test "
                                    "or a function-scoped fixture")
        running = _RUNNING[-1]
        check = running[1]
        if check is None:
            item = running[0]
            try:
                check = running[1] = _TestCheck(item)
            except TrtCompareError as exc:
                error = f"{item.nodeid}: {exc}"
            else:
                return check
            pytest.fail(error, pytrace=False)
        return check

    @property
    def spec(self):
        """The current test's validated marker arguments (a ``CompareSpec``)."""
        return self._check().spec

    @property
    def precision(self) -> str:
        """The current test's precision (its parameter when the marker lists several)."""
        return self._check().precision

    def __call__(self, inputs=None, **overrides):
        """Run the check: generate (or take) inputs, run the engine and the reference, compare, check goldens.

        Returns a ``CheckResult``; raises ``AssertionError`` with the full report when anything differs.
        """
        __tracebackhide__ = True
        return self._check().run(inputs, overrides)


class _TestCheck:
    """One test's checks: its spec and precision, and how many times it called trt_compare (later calls get
    their own golden folder)."""

    def __init__(self, item):
        self._item = item
        self._state: _PluginState = item.config.stash[_STATE]
        self._rootdir = rootdir = item.config.rootpath
        self.spec = _spec_for(item, rootdir)
        if self.spec.model is None:  # looked up only when the marker names no model
            model = _fixture_value(item, "trt_model")
            if model is not None:
                from pytest_trt.core.spec import resolve_model_path

                self.spec = self.spec.replace(model=resolve_model_path(model, item.path.parent, rootdir))
        self.precision = _precision_param(item) or self.spec.precisions[0]
        self._calls = 0
        self.pending: list[tuple] = []   # finished checks, counted in the session summary when the test's run ends

    def flush(self, attempt_failed: bool = False) -> None:
        """Count this attempt's checks in the session summary; of an attempt a rerun replaces, only what it did
        to files (goldens written, engines built), not its verdicts."""
        summary = self._state.summary
        for record, events, actions, skipped, engine in self.pending:
            for event in events:
                summary.record_engine(event["status"], event["seconds"])
            for action in actions:
                if not attempt_failed or action.action in ("created", "updated"):
                    summary.record_golden(action.path, action.action, record.tolerated)
            if attempt_failed:
                continue
            summary.checks += 1
            if skipped:
                summary.engine_skips[skipped] += 1
            else:
                summary.engine_runs[engine] += 1
            summary.records.append(record)
        self.pending = []

    def run(self, inputs, overrides):
        __tracebackhide__ = True
        api = _check_api()
        self._calls += 1
        state, item, options = self._state, self._item, self._state.options
        parts, _, golden_test_id = _golden_location(item)
        if self._calls > 1:  # later calls in one test get their own golden folder inside the test's
            parts = (*parts, f"call{self._calls}")
        error = None
        try:
            spec = api.merge_call(self.spec, overrides, item.path.parent, self._rootdir)
            engine, reason = state.engine()
            ctx = api.CheckContext(item.nodeid, options.golden_dir, parts, options.update_golden,
                               options.require, self._rootdir, golden_test_id,
                               {"engine_dir": options.engine_dir, "build": options.build}, detail=options.suggest)
            events_before = len(engine.events) if engine is not None else 0
            result = api.run_check(spec, self.precision, ctx, engine, reason, inputs)
            events = list(engine.events[events_before:]) if engine is not None else []
        except TrtCompareError as exc:
            error = f"{item.nodeid}: {exc}"
        if error is not None:  # outside the except block: one sentence, no chained traceback
            pytest.fail(error, pytrace=False)
        record = self._record(result, events, golden_test_id + (f" (call {self._calls})" if self._calls > 1 else ""))
        failing = not result.passed and not (options.suggest and result.only_tolerance_failed)
        message = None  # built only for a failure
        if record.drift:
            text = "; ".join(record.drift)
            if options.strict_drift:
                failing, message = True, (result.message if not result.passed else
                                          f"trt_compare [{self.precision}] {item.nodeid}: FAILED") + \
                    f"\n\ndrift (--trt-strict-drift): {text}"
            else:
                import warnings

                warnings.warn(TrtDriftWarning(f"{item.nodeid} [{self.precision}]: {text}"), stacklevel=3)
        if failing:
            message = (message or result.message) + self._write_artifacts(result, parts)
            raise AssertionError(message)
        return result

    def _record(self, result, events, test):
        """Summary row, JUnit properties and session counters for one finished check."""
        api = _check_api()
        state, item, options = self._state, self._item, self._state.options
        record = api.record_check(result, test, events, options.drift_factor, options.close_share, options.suggest,
                                  options.strict_drift)
        if options.suggest:  # one suggestion per marker
            record.marker = _marker_owner(item)
        engine = None if result.engine_skipped else f"{result.backend.get('backend')} {self.precision}"
        # Counted when the test's run ends (flush), so a rerun plugin's failed attempts leave no rows behind.
        self.pending.append((record, events, result.golden_actions, result.engine_skipped, engine))
        # Only for a JUnit XML report: every test report copies item.user_properties and keeps it to the end
        # of the session, where pytest's final garbage collections walk them: 73k instructions per check on
        # the example MLP, 2% of a small check and the largest item benchmarks/suite_instructions.py found.
        if options.junit:
            if state.gpu is not None and not result.engine_skipped:
                item.user_properties.append(("trt_gpu", state.gpu))
            item.user_properties.extend(api.junit_properties(record))
        return record

    def _write_artifacts(self, result, parts) -> str:
        """Write the failure artifacts; the message tail that names them (or why there are none)."""
        from pytest_trt.reports.artifacts import have_matplotlib, write_artifacts

        options = self._state.options
        if options.artifacts is not None:
            base = options.artifacts
        else:
            base = _fixture_value(self._item, "tmp_path_factory").getbasetemp() / "trt-artifacts"
        folder = base.joinpath(*parts, self.precision)
        try:
            written = write_artifacts(folder, result)
        except OSError as exc:
            return f"\n\nfailure artifacts could not be written to {folder}: {exc.strerror or exc}"
        pngs = [p.name for p in written if p.suffix == ".png"]
        names = ", ".join(p.name for p in written if p.suffix != ".png")
        plots = f"; plots: {', '.join(pngs)}" if pngs else ("" if have_matplotlib() else
                                                           " (pip install matplotlib for error plots)")
        return f"\n\nfailure artifacts in {folder}: {names}{plots}"


@functools.lru_cache(maxsize=None)
def _check_api():
    """What a check calls, imported on the first check (they load numpy), then looked up once per process."""
    from types import SimpleNamespace

    from pytest_trt.core.check import CheckContext, run_check
    from pytest_trt.reports.rows import junit_properties, record_check
    from pytest_trt.core.spec import merge_call

    return SimpleNamespace(CheckContext=CheckContext, run_check=run_check, merge_call=merge_call,
                           record_check=record_check, junit_properties=junit_properties)


# [item, its _TestCheck once trt_compare is first called] of each test whose runtest protocol is under way,
# innermost last (pytester nests sessions). The check lives as long as its test's run: a rerun starts afresh,
# and nothing per test outlives it.
_RUNNING: list = []
_COMPARE = TrtCompare()


@pytest.fixture(scope="session")
def trt_compare() -> TrtCompare:
    """Callable that compares the engine under test with the ONNX Runtime reference and goldens."""
    return _COMPARE


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    running = [item, None]
    _RUNNING.append(running)
    try:
        yield
    finally:
        if running[1] is not None:  # the last attempt's checks (a rerun starts with none)
            running[1].flush()
        if _RUNNING and _RUNNING[-1] is running:
            _RUNNING.pop()
        else:
            _RUNNING[:] = [r for r in _RUNNING if r is not running]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item) -> None:
    """Each attempt of a test starts its checks afresh (a rerun plugin runs all attempts in one protocol, and
    later calls' golden folders count from the first call again); a test whose marker is wrong errors here, alone."""
    if _RUNNING and _RUNNING[-1][0] is item:
        if _RUNNING[-1][1] is not None:  # a rerun: the attempt before it ran checks
            _RUNNING[-1][1].flush(attempt_failed=True)
        _RUNNING[-1][1] = None
    error = item.stash.get(_SPEC_ERROR, None)
    if error is not None:
        pytest.fail(error, pytrace=False)


# Fixtures broader than a test's own whose setup or teardown is under way, innermost last: a check called
# there would belong to no one test.
_FIXTURES: list = []


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef, request):
    if fixturedef.scope == "function":
        yield
        return
    _FIXTURES.append(fixturedef)
    try:
        outcome = yield
    finally:
        _FIXTURES.remove(fixturedef)
    if outcome.excinfo is None:  # finalizers run last-in first-out: this one just before the fixture's teardown
        fixturedef.addfinalizer(functools.partial(_FIXTURES.append, fixturedef))


def pytest_fixture_post_finalizer(fixturedef, request) -> None:
    for i in range(len(_FIXTURES) - 1, -1, -1):
        if _FIXTURES[i] is fixturedef:
            del _FIXTURES[i]
            break


def _fixture_value(item, name: str):
    """A fixture's value for ``item``, for the fixtures trt_compare needs only sometimes (a session-scoped
    fixture cannot request function-scoped ones). Uses the item's own fixture request, pytest's ``_request``."""
    return item._request.getfixturevalue(name)


# ---------------------------------------------------------------------------------- summary

def pytest_unconfigure(config: pytest.Config) -> None:
    """Free engines and execution contexts before the interpreter tears CUDA down."""
    state = config.stash.get(_STATE, None)
    engine = state._engine[0] if state is not None and state._engine is not None else None
    if engine is not None:
        engine.close()
    if _PREVIOUS_SINK in config.stash:
        from pytest_trt.backends.tensorrt import progress as build_progress

        build_progress.install(config.stash[_PREVIOUS_SINK])


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    state = config.stash.get(_STATE, None)
    if state is not None and hasattr(config, "workeroutput"):
        config.workeroutput["pytest_trt"] = state.summary.to_json()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """xdist controller: merge each worker's summary."""
    state = node.config.stash.get(_STATE, None)
    data = getattr(node, "workeroutput", {}).get("pytest_trt")
    if state is not None and data:
        state.summary.merge_json(data)


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is None or hasattr(config, "workerinput"):
        return
    from pytest_trt.plugin.summary import check_rows

    verbose = config.getoption("verbose") > 0
    lines = check_rows(state.summary.records, full=verbose or state.options.summary == "full")
    lines += state.summary.lines(state.options.golden_dir, verbose=verbose)
    if lines:
        terminalreporter.ensure_newline()  # else the first line after the header is a blank one
        terminalreporter.section("pytest-trt")
        for line in lines:
            terminalreporter.write_line(line)
    if state.options.suggest and state.summary.records:
        from pytest_trt.reports.suggestions import suggestion_lines

        terminalreporter.section("pytest-trt tolerance suggestions")
        for line in suggestion_lines(state.summary.records):
            terminalreporter.write_line(line)
