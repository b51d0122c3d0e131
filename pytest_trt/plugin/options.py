"""pytest-trt's settings: one table of flags, ini keys, environment variables and defaults, and their reading.

A setting comes from its flag, else its environment variable, else its ini key, else its default in the
table. The report thresholds among them (drift factor, close-to-tolerance share, suggestion margin) are written
once, in ``reports/defaults.py``. A path option's value given as a separate argument
can move pytest's rootdir and ini file; ``check_path_arguments`` stops the session when it did.
"""
from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest

from pytest_trt.core.records import FrozenRecord, Record, set_field
from pytest_trt.errors import TrtCompareError
from pytest_trt.reports.defaults import CLOSE_SHARE, DRIFT_FACTOR, FLOOR_ULPS, SUGGEST_MARGIN


class Option(FrozenRecord):
    """One setting: its flag, its ini key (also the flag's ``dest``), how it is read, its environment
    variable, its value when nothing sets it, and its help (``--help`` and the README's options table)."""

    __slots__ = ("flag", "ini", "kind", "env", "default", "help", "metavar")

    def __init__(self, flag: str, ini: str, kind: str, env: str | None, default, help: str, metavar: str = ""):
        set_field(self, "flag", flag)
        set_field(self, "ini", ini)
        set_field(self, "kind", kind)        # path, bool, string or number
        set_field(self, "env", env)
        set_field(self, "default", default)  # a path default is relative to the rootdir; None: unset
        set_field(self, "help", help)
        set_field(self, "metavar", metavar)  # of a string or number flag (a path flag's is DIR)


OPTIONS = [
    Option("--trt-engine-dir", "trt_engine_dir", "path", "PYTEST_TRT_ENGINE_DIR", None,
           "folder of cached TensorRT engines, reused across runs and machines, or an object-storage URL shared by a "
           "fleet of runners (s3://bucket/prefix; pip install 'pytest-trt[remote]') (default: none, engines are built "
           "once per session); give it as --trt-engine-dir=DIR"),
    Option("--update-golden", "trt_update_golden", "bool", None, False,
           "create or rewrite goldens that are missing or no longer match (atomically); matching goldens are left "
           "untouched"),
    Option("--golden-dir", "trt_golden_dir", "path", "PYTEST_TRT_GOLDEN_DIR", "golden",
           "folder holding goldens (default: golden/ under the rootdir; an ini value is relative to the ini file, "
           "a flag or environment value to the current directory)"),
    Option("--trt-backend", "trt_backend", "string", "PYTEST_TRT_BACKEND", "auto",
           "engine under test: auto (TensorRT if it can run here, else none), none, or a backend name "
           "(onnxruntime, tensorrt, tensorrt_rtx, or one registered under the pytest_trt.backends entry point)"),
    Option("--trt-require", "trt_require", "bool", "PYTEST_TRT_REQUIRE", False,
           "fail checks whose engine side cannot run (for GPU CI), instead of skipping the engine side with a reason"),
    Option("--trt-devices", "trt_devices", "string", "PYTEST_TRT_DEVICES", None,
           "GPUs to use, e.g. 0,1: each pytest-xdist worker takes one, round robin (gw0 -> first, gw1 -> second, "
           "...); default auto: every visible GPU", "LIST"),
    Option("--trt-build-options", "trt_build_options", "string", "PYTEST_TRT_BUILD_OPTIONS", None,
           "TensorRT builder options for every engine, e.g. 'workspace=2G optimization_level=3 "
           "tactic_sources=EDGE_MASK_CONVOLUTIONS,JIT_CONVOLUTIONS' (a marker's build={...} overrides per test); "
           "converter=casts or autocast picks what converts models to fp16/bf16 for strongly typed builds",
           "OPTIONS"),
    Option("--trt-summary", "trt_summary", "string", None, "compact",
           "session summary table: compact (failed, drifted and close-to-tolerance checks; the default) or full "
           "(one row per check; also with -v)", "STYLE"),
    Option("--trt-close-share", "trt_close_share", "number", None, CLOSE_SHARE,
           f"share of a tolerance above which a passing check is listed as close to tolerance "
           f"(default {CLOSE_SHARE:g})", "SHARE"),
    Option("--trt-drift-factor", "trt_drift_factor", "number", None, DRIFT_FACTOR,
           "flag drift when an engine's error against the reference grew more than this factor since its golden "
           f"was recorded (default {DRIFT_FACTOR:g})", "FACTOR"),
    Option("--trt-strict-drift", "trt_strict_drift", "bool", None, False,
           "fail checks whose error drifted, instead of warning"),
    Option("--trt-precision-check", "trt_precision_check", "string", "PYTEST_TRT_PRECISION_CHECK", "warn",
           "when a check asked for a reduced precision (fp16, bf16, int8, fp8, tf32) and the engine's layer census "
           "shows (almost) no layer running in it: warn (the default), strict (fail the check) or off", "MODE"),
    Option("--trt-min-precision-share", "trt_min_precision_share", "number", None, 0.0,
           "share of an engine's compute layers that must run in the requested reduced precision (default 0: at "
           "least one layer; a marker's min_precision_share=... sets it per test and fails the check)", "SHARE"),
    Option("--trt-localize", "trt_localize", "string", "PYTEST_TRT_LOCALIZE", "auto",
           "localize a failing engine-vs-reference check to its first diverging ONNX node: auto (the default: on every "
           "such failure) or off (a marker's localize=True still forces it)", "MODE"),
    Option("--trt-localize-seeds", "trt_localize_seeds", "number", None, 3,
           "input samples a localization compares: the check's own inputs and seeds after its seed (default 3; "
           "inputs a test passes are the only sample)", "N"),
    Option("--trt-localize-memory", "trt_localize_memory", "number", None, 256,
           "MiB of intermediate tensors (both sides) a localization holds at once; a larger model is compared in "
           "several passes (default 256)", "MIB"),
    Option("--trt-artifacts", "trt_artifacts", "path", "PYTEST_TRT_ARTIFACTS", None,
           "folder for failure artifacts (inputs, outputs, report.json, PNG plots), one folder per failed check "
           "(default: trt-artifacts/ under pytest's basetemp)"),
    Option("--trt-suggest-tolerances", "trt_suggest_tolerances", "bool", None, False,
           "fail no check on tolerance; print per marker the tightest passing atol per precision and output "
           f"(x{SUGGEST_MARGIN:g}, at least {FLOOR_ULPS:g} eps x max|expected|, rounded up; rtol kept) as tolerances={{...}} "
           "to paste into it"),
]
_BY_INI = {option.ini: option for option in OPTIONS}
_ENV = {option.ini: option.env for option in OPTIONS if option.env}
_PATH_FLAGS = {option.flag: option.ini for option in OPTIONS if option.kind == "path"}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


class Options(Record):
    """The session's pytest-trt settings, read once at configure."""

    __slots__ = ("golden_dir", "update_golden", "backend", "require", "engine_dir", "build", "devices", "summary",
                 "close_share", "drift_factor", "strict_drift", "precision_check", "min_precision_share", "artifacts",
                 "suggest", "junit", "golden_guessed", "localize", "localize_seeds", "localize_memory")

    def __init__(self, *, golden_dir: Path, update_golden: bool, backend: str, require: bool,
                 engine_dir: Path | str | None, build, devices: tuple[int, ...] | None, summary: str,
                 close_share: float, drift_factor: float, strict_drift: bool, artifacts: Path | None,
                 suggest: bool, junit: bool, golden_guessed: bool, precision_check: str = "warn",
                 min_precision_share: float = 0.0, localize: str = "auto", localize_seeds: int = 3,
                 localize_memory: int = 256 << 20):
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
        self.precision_check = precision_check          # --trt-precision-check: warn, strict or off
        self.min_precision_share = min_precision_share  # --trt-min-precision-share
        self.artifacts = artifacts          # --trt-artifacts; None: under pytest's basetemp
        self.suggest = suggest              # --trt-suggest-tolerances
        self.junit = junit                  # --junitxml given: checks add their JUnit properties
        self.golden_guessed = golden_guessed  # default golden dir under a rootdir pytest guessed (no ini file)
        self.localize = localize            # --trt-localize: auto or off
        self.localize_seeds = localize_seeds  # --trt-localize-seeds
        self.localize_memory = localize_memory  # --trt-localize-memory, in bytes


def add_options(parser: pytest.Parser) -> None:
    """The flags and ini keys of the table, with where else each can be set in its help."""
    group = parser.getgroup("trt", "pytest-trt: numerical regression tests for inference engines")
    for option in OPTIONS:
        ini, text = option.ini, option.help
        where = f" [ini: {ini}" + (f"; env: {option.env}" if option.env else "") + "]"
        if option.kind == "bool":
            group.addoption(option.flag, action="store_true", default=None, dest=ini, help=text + where)
            parser.addini(ini, text, type="bool", default=option.default)
        else:
            metavar = "DIR" if option.kind == "path" else option.metavar or "NAME"
            group.addoption(option.flag, action="store", default=None, dest=ini, metavar=metavar, help=text + where)
            # A string's default is its ini default too; paths and numbers are resolved and checked when read.
            string_default = option.default if option.kind == "string" and option.default is not None else ""
            parser.addini(ini, text, type="string", default=string_default)


def setting(config: pytest.Config, ini: str):
    """(value, where it came from) of one option: the flag, else its environment variable, else the ini key.

    Environment variables let CI configure paths without path arguments (see ``check_path_arguments``)."""
    cli = config.getoption(ini)
    if cli is not None and cli != "":
        return cli, "flag"
    env = _ENV.get(ini)
    if env and os.environ.get(env, "") != "":
        return os.environ[env], "env"
    return config.getini(ini), "ini"


def source_name(ini: str, source: str) -> str:
    """How the user wrote a setting that came from ``source`` ("flag", "env" or "ini"): for error sentences."""
    return {"flag": _BY_INI[ini].flag, "env": _ENV.get(ini, ini), "ini": f"ini {ini}"}[source]


def read_options(config: pytest.Config) -> Options:
    explicit = set()  # path options the user set (flag, environment or ini), not defaults

    def path(ini):
        value, source = setting(config, ini)
        if not value:
            default = _BY_INI[ini].default
            return None if default is None else (config.rootpath / default).resolve()
        explicit.add(ini)
        if ini == "trt_engine_dir":
            from pytest_trt.stores import is_url

            if is_url(value):   # an object-storage cache (s3://...): kept as written
                return value
        if source == "ini":
            base = config.inipath.parent if config.inipath else config.rootpath
            return (base / value).resolve()
        return (Path(config.invocation_params.dir) / os.path.expanduser(value)).resolve()

    def flag(ini):
        value, source = setting(config, ini)
        if source != "env":
            return bool(value)
        text = value.strip().lower()
        if text not in _TRUE + _FALSE:
            raise pytest.UsageError(f"{_ENV[ini]}={value!r} is not a boolean; use {_ENV[ini]}=1 or {_ENV[ini]}=0")
        return text in _TRUE

    def text(ini):
        return setting(config, ini)[0] or _BY_INI[ini].default or ""

    def number(ini, low, high, example=None):
        option = _BY_INI[ini]
        given, source = setting(config, ini)
        if not given:
            return option.default
        try:
            value = float(given)
        except ValueError:
            value = float("nan")
        if not low <= value <= high:
            hint = " (a share, not a percent)" if high == 1.0 and 1 < value <= 100 and value == int(value) else ""
            raise pytest.UsageError(f"{source_name(ini, source)} {given!r} is not a number from {low:g} to {high:.10g}"
                                    f"{hint}; use e.g. {option.flag}={example if example is not None else option.default:g}")
        return value

    summary = text("trt_summary")
    if summary not in ("compact", "full"):
        raise pytest.UsageError(f"--trt-summary {summary!r} is unknown; use compact or full")
    def choice(ini, *allowed, switch=None):
        value = text(ini).lower()
        if switch and value in _TRUE + _FALSE:  # a mode that is also a switch: 1/true/on and 0/false/off
            value = switch[0] if value in _TRUE else switch[1]
        if value not in allowed:
            where = source_name(ini, setting(config, ini)[1])
            raise pytest.UsageError(f"{where} {value!r} is unknown; use {', '.join(allowed[:-1])} or {allowed[-1]}")
        return value

    precision_check = choice("trt_precision_check", "warn", "strict", "off")
    localize = choice("trt_localize", "auto", "off", switch=("auto", "off"))
    seeds = number("trt_localize_seeds", 1, 1000)
    if seeds != int(seeds):
        raise pytest.UsageError(f"--trt-localize-seeds {seeds:g} is not a whole number; use e.g. --trt-localize-seeds=3")
    build = text("trt_build_options")
    try:
        build_options = None   # TensorRT's defaults; core.build_options is loaded only when options are given
        if build:
            from pytest_trt.core.build_options import parse_build_options

            build_options = parse_build_options(build, "--trt-build-options")
        from pytest_trt.backends.tensorrt.gpu import parse_devices

        devices = parse_devices(text("trt_devices"))
    except TrtCompareError as exc:
        raise pytest.UsageError(str(exc)) from None
    golden_dir = path("trt_golden_dir")
    return Options(golden_dir=golden_dir, update_golden=flag("trt_update_golden"), backend=text("trt_backend"),
                   require=flag("trt_require"), engine_dir=path("trt_engine_dir"), build=build_options,
                   devices=devices, summary=summary,
                   close_share=number("trt_close_share", 0.0, 1.0), drift_factor=number("trt_drift_factor", 1.0, 1e6),
                   strict_drift=flag("trt_strict_drift"), artifacts=path("trt_artifacts"),
                   precision_check=precision_check,
                   min_precision_share=number("trt_min_precision_share", 0.0, 1.0, example=0.5),
                   localize=localize, localize_seeds=int(seeds),
                   localize_memory=int(number("trt_localize_memory", 1, 1 << 20) * (1 << 20)),
                   suggest=flag("trt_suggest_tolerances"), junit=bool(config.getoption("xmlpath", None)),
                   golden_guessed="trt_golden_dir" not in explicit and config.inipath is None)


def check_path_arguments(config: pytest.Config) -> None:
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
        # pytest's own rootdir and ini choice, a private function: pytest has no public way to ask what it would
        # choose for other arguments. Its signature has changed across versions, hence the parameters looked up.
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
