"""The plugin's parts without a pytest run: marker help, option defaults, summary counting, parametrize ids."""
from types import SimpleNamespace

from pytest_trt.core.spec import ARGUMENTS
from pytest_trt.plugin.location import _parametrize_ids
from pytest_trt.plugin.marker import MARKER_HELP
from pytest_trt.plugin.options import OPTIONS
from pytest_trt.plugin.summary import SessionSummary
from pytest_trt.reports.defaults import CLOSE_SHARE, DRIFT_FACTOR


def test_marker_help_names_every_argument():
    signature = MARKER_HELP[MARKER_HELP.index("(") + 1:MARKER_HELP.index("):")]
    named = [part.strip().split("=")[0] for part in signature.split(",") if part.strip() != "*"]
    assert named == list(ARGUMENTS)


def test_option_defaults_are_the_constants_the_rows_apply():
    by_ini = {option.ini: option for option in OPTIONS}
    assert by_ini["trt_close_share"].default is CLOSE_SHARE
    assert by_ini["trt_drift_factor"].default is DRIFT_FACTOR
    assert f"(default {CLOSE_SHARE:g})" in by_ini["trt_close_share"].help
    assert f"(default {DRIFT_FACTOR:g})" in by_ini["trt_drift_factor"].help


def _result(actions, skipped=None):
    return SimpleNamespace(engine_skipped=skipped, backend={"backend": "onnxruntime"}, precision="fp16", preview=False,
                           golden_actions=[SimpleNamespace(path=p, action=a) for p, a in actions])


def test_summary_counts_checks_when_their_attempt_settles():
    summary = SessionSummary()
    record = SimpleNamespace(tolerated=False)
    summary.add(_result([("t/reference.npz", "unchanged"), ("t/engine.npz", "created")]), record,
                [{"status": "built", "seconds": 1.5}])
    assert summary.checks == 0 and summary.records == []
    summary.settle(replaced=True)   # a rerun replaced the attempt: only what it did to files counts
    assert summary.goldens == {"t/engine.npz": "created"}
    assert summary.engines == {"built": 1} and summary.build_seconds == 1.5
    assert summary.checks == 0 and summary.records == [] and not summary.engine_runs
    summary.add(_result([("t/reference.npz", "unchanged")]), record, [])
    summary.add(_result([], skipped="no GPU"), record, [])
    summary.settle()
    assert summary.checks == 2 and summary.records == [record, record]
    assert summary.engine_runs == {"onnxruntime fp16": 1} and summary.engine_skips == {"no GPU": 1}
    assert summary.goldens == {"t/engine.npz": "created", "t/reference.npz": "unchanged"}
    assert summary.pending == []


def test_parametrize_ids_without_pytests_private_list():
    """callspec.id split at "-": the folders pytest's own list gives wherever no id holds a "-"."""
    assert _parametrize_ids(SimpleNamespace()) == []
    assert _parametrize_ids(SimpleNamespace(callspec=SimpleNamespace(id="a-fp16"))) == ["a", "fp16"]
    assert _parametrize_ids(SimpleNamespace(callspec=SimpleNamespace(id="a-b", _idlist=["a-b"]))) == ["a-b"]
