"""GPU assignment per xdist worker: pure selection logic (the GPU side is in tests/test_gpu.py)."""
import pytest

from pytest_trt.errors import SpecError
from pytest_trt.backends.tensorrt.gpu import assign_device, parse_devices, worker_index


def test_round_robin_over_visible_gpus_by_default():
    assert [assign_device(worker_index(f"gw{i}"), None, 4) for i in range(6)] == [0, 1, 2, 3, 0, 1]
    assert assign_device(worker_index(None), None, 2) == 0   # no xdist: the first GPU


def test_device_list_is_used_in_order():
    devices = parse_devices("2, 3")
    assert devices == (2, 3)
    assert [assign_device(i, devices, 4) for i in range(4)] == [2, 3, 2, 3]
    assert parse_devices("auto") is None and parse_devices("") is None and parse_devices(None) is None


@pytest.mark.parametrize("text, message", [
    ("0,x", "--trt-devices '0,x' is not a comma-separated list of GPU indices; use e.g. --trt-devices 0,1 "
            "(or auto: every visible GPU)"),
    ("-1", "--trt-devices '-1' is not a comma-separated list of GPU indices; use e.g. --trt-devices 0,1 "
           "(or auto: every visible GPU)"),
    ("1,1", "--trt-devices '1,1' names a GPU twice; list each GPU once"),
])
def test_bad_device_lists(text, message):
    with pytest.raises(SpecError) as info:
        parse_devices(text)
    assert str(info.value) == message


def test_device_beyond_the_machine_and_no_gpu():
    with pytest.raises(SpecError) as info:
        assign_device(0, (0, 3), 2)
    assert str(info.value) == "--trt-devices names GPU 3 but this machine shows 2 (indices 0-1); list only those"
    with pytest.raises(SpecError, match="no CUDA GPU is visible"):
        assign_device(0, None, 0)


def test_worker_ids():
    assert worker_index("gw0") == 0 and worker_index("gw12") == 12
    assert worker_index("master") is None and worker_index("") is None


def test_bad_flag_is_a_usage_error(pytester):
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("--trt-devices", "a,b")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--trt-devices 'a,b' is not a comma-separated list of GPU indices*"])
