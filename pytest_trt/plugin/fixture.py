"""The fixtures (``trt_compare``, ``trt_precision``, ``trt_model``) and the verdict of each check.

``trt_compare`` runs the check of the test that is running: its marker's arguments, its precision, its
golden folder (a later call in one test gets its own). The verdict is decided here: a failed comparison
fails the test, unless --trt-suggest-tolerances tolerates a failure on tolerances alone; drift warns, or
fails under --trt-strict-drift; a failing check writes its artifacts. Each check's row goes to the session
summary. The work of a check is ``core.check``'s, imported at the first check (it loads numpy).

pytest finds a plugin's fixtures on its registered module, so ``hooks`` imports the fixtures from here.
"""
from __future__ import annotations

import functools

import warnings

import pytest

from pytest_trt.errors import TrtCompareError, TrtDriftWarning, TrtPrecisionWarning
from pytest_trt.plugin.location import call_location
from pytest_trt.plugin.marker import marker_owner, precision_param, spec_for
from pytest_trt.plugin.state import STATE

# [item, its _TestCheck once trt_compare is first called] of each test whose runtest protocol is under way,
# innermost last (pytester nests sessions). The check lives as long as its test's run: a rerun starts afresh,
# and nothing per test outlives it.
RUNNING: list = []
# Fixtures broader than a test's own whose setup or teardown is under way, innermost last: a check called
# there would belong to no one test.
FIXTURES: list = []


def begin_run(item) -> list:
    running = [item, None]
    RUNNING.append(running)
    return running


def end_run(running: list) -> None:
    """The test's run ended: its last attempt's checks count in the session summary."""
    if running[1] is not None:  # the last attempt's checks (a rerun starts with none)
        running[1].settle()
    if RUNNING and RUNNING[-1] is running:
        RUNNING.pop()
    else:
        RUNNING[:] = [r for r in RUNNING if r is not running]


def begin_attempt(item) -> None:
    """Each attempt of a test starts its checks afresh: a rerun plugin runs all attempts in one protocol, and
    later calls' golden folders count from the first call again."""
    if RUNNING and RUNNING[-1][0] is item:
        if RUNNING[-1][1] is not None:  # a rerun: the attempt before it ran checks
            RUNNING[-1][1].settle(replaced=True)
        RUNNING[-1][1] = None


@pytest.fixture(scope="session")
def trt_compare() -> TrtCompare:
    """Callable that compares the engine under test with the ONNX Runtime reference and goldens."""
    return _COMPARE


@pytest.fixture
def trt_precision(request) -> str:
    """The precision under test: the marker's precision, or this test's one when the marker lists several."""
    precision = precision_param(request.node)
    return precision if precision is not None else spec_for(request.node, request.config.rootpath).precisions[0]


@pytest.fixture
def trt_model():
    """Override to supply the model (a path, or ``{precision: path}`` as in the marker) when the marker has no
    ``model=``."""
    return None


class TrtCompare:
    """The ``trt_compare`` fixture's value: call it to run the check of the test that is running (see README).

    One object for all tests: the fixture is session-scoped and takes no arguments, because setting up
    a function-scoped fixture (or one that takes ``request``) costs pytest more than a small check does.
    What it checks comes from the test that is running.
    """

    def _check(self) -> _TestCheck:
        if FIXTURES:
            fixturedef = FIXTURES[-1]
            where = f"{RUNNING[-1][0].nodeid}: " if RUNNING else ""
            pytest.fail(f"{where}trt_compare was called from the {fixturedef.scope}-scoped fixture "
                        f"{fixturedef.argname!r}, "
                        f"which serves many tests while a check and its goldens belong to one; call trt_compare in "
                        "the test itself or in a function-scoped fixture", pytrace=False)
        if not RUNNING:
            raise pytest.UsageError("trt_compare was used while no test was running; call it from a test "
                                    "or a function-scoped fixture")
        running = RUNNING[-1]
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


_COMPARE = TrtCompare()


class _TestCheck:
    """One test's checks: its spec and precision, and how many times it called trt_compare (later calls get
    their own golden folder)."""

    def __init__(self, item):
        self._item = item
        self._state = item.config.stash[STATE]
        self._rootdir = rootdir = item.config.rootpath
        self.spec = spec_for(item, rootdir)
        if self.spec.model is None:  # looked up only when the marker names no model
            model = _fixture_value(item, "trt_model")
            if model is not None:
                from pytest_trt.core.spec import merge_call

                self.spec = merge_call(self.spec, {"model": model}, item.path.parent, rootdir)  # a path or mapping
        self.precision = precision_param(item) or self.spec.precisions[0]
        self._calls = 0

    def settle(self, replaced: bool = False) -> None:
        """Count this attempt's checks in the session summary (see ``SessionSummary.settle``)."""
        self._state.summary.settle(replaced)

    def run(self, inputs, overrides):
        __tracebackhide__ = True
        api = _check_api()
        self._calls += 1
        state, item, options = self._state, self._item, self._state.options
        parts, golden_test_id, row_test = call_location(item, self._calls)
        error = None
        try:
            spec = api.merge_call(self.spec, overrides, item.path.parent, self._rootdir)
            engine, reason = state.engine()
            ctx = api.CheckContext(item.nodeid, options.golden_dir, parts, options.update_golden,
                                   options.require, self._rootdir, golden_test_id,
                                   {"engine_dir": options.engine_dir, "build": options.build}, detail=options.suggest,
                                   min_precision_share=options.min_precision_share,
                                   precision_check=options.precision_check, localize=options.localize,
                                   localize_seeds=options.localize_seeds, localize_memory=options.localize_memory)
            events_before = len(engine.events) if engine is not None else 0
            result = api.run_check(spec, self.precision, ctx, engine, reason, inputs)
            events = list(engine.events[events_before:]) if engine is not None else []
        except TrtCompareError as exc:
            error = f"{item.nodeid}: {exc}"
        if error is not None:  # outside the except block: one sentence, no chained traceback
            pytest.fail(error, pytrace=False)
        record = self._record(result, events, row_test)
        # The verdict: a failed comparison fails the test, unless --trt-suggest-tolerances tolerates a failure on
        # tolerances alone; drift warns, or fails the test under --trt-strict-drift.
        failing = not result.passed and not (options.suggest and result.only_tolerance_failed)
        strict = []  # what fails a check that passed otherwise: drift and precision under their strict options
        if record.drift:
            text = "; ".join(record.drift)
            if options.strict_drift:
                strict.append(f"drift (--trt-strict-drift): {text}")
            else:
                warnings.warn(TrtDriftWarning(f"{item.nodeid} [{self.precision}]: {text}"), stacklevel=3)
        # A reduced precision the engine did not run (a marker's min_precision_share already made it a problem).
        if result.precision_shortfall and spec.min_precision_share is None:
            if options.precision_check == "strict":
                strict.append(f"precision (--trt-precision-check strict): {result.precision_shortfall}")
            else:
                warnings.warn(TrtPrecisionWarning(f"{item.nodeid} [{self.precision}]: {result.precision_shortfall}"),
                              stacklevel=3)
        message = None  # built only for a failure
        if strict:
            failing = True
            head = result.message if not result.passed else f"trt_compare [{self.precision}] {item.nodeid}: FAILED"
            message = "\n\n".join([head, *strict])
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
            record.marker = marker_owner(item)
        state.summary.add(result, record, events)
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
    from pytest_trt.reports.junit import junit_properties
    from pytest_trt.reports.rows import record_check
    from pytest_trt.core.spec import merge_call

    return SimpleNamespace(CheckContext=CheckContext, run_check=run_check, merge_call=merge_call,
                           record_check=record_check, junit_properties=junit_properties)


def _fixture_value(item, name: str):
    """A fixture's value for ``item``, for the fixtures trt_compare needs only sometimes.

    Through the item's own fixture request, pytest's private ``item._request``: pytest has no public way to
    reach a function-scoped fixture from here. ``trt_compare`` is session-scoped (a session fixture's
    ``request`` cannot set up function-scoped ones, and a function-scoped ``trt_compare`` costs more than a
    small check), and ``item.funcargs`` holds only the fixtures the test requested, which ``trt_model`` and
    ``tmp_path_factory`` need not be."""
    return item._request.getfixturevalue(name)
