import hashlib

import numpy as np
import pytest

from pytest_trt import make_inputs
from pytest_trt.errors import InputError
from pytest_trt.core.generated_inputs import generate, random_bits
from pytest_trt.core.inputs import load_npz_inputs, prepare_user_inputs
from pytest_trt.core.model import load_model_info

from models import identity_model, scale_model, two_io_model


def digest(a):
    return hashlib.sha256(a.tobytes()).hexdigest()[:16]


def _splitmix64_reference(seed, name, count):
    """Pure-Python integers: what random_bits must equal on any machine and numpy version."""
    key = int.from_bytes(hashlib.sha256(f"{seed}\0{name}".encode()).digest()[:8], "little")
    mask, out = (1 << 64) - 1, []
    for i in range(count):
        x = (i * 0x9E3779B97F4A7C15 + key) & mask
        x ^= x >> 30
        x = (x * 0xBF58476D1CE4E5B9) & mask
        x ^= x >> 27
        x = (x * 0x94D049BB133111EB) & mask
        out.append(x ^ (x >> 31))
    return out


def test_bits_match_pure_python_reference():
    assert random_bits(7, "tokens", 257).tolist() == _splitmix64_reference(7, "tokens", 257)
    assert random_bits(0, "x", 3).tolist() == [12219454887877551267, 14335058325728797838, 10289491107191589248]


# Pinned: if these change, every golden made from generated inputs is invalidated.
PINNED = {"float32": "65c2101bdec99857", "float16": "f4aa3c1be99c501c", "int64": "55680115f7de11fc", "bool": "9868a368dcf815a7"}


def test_pinned_digests():
    got = {
        "float32": digest(generate("x", "float32", (4, 16), 0)),
        "float16": digest(generate("x", "float16", (4, 16), 0)),
        "int64": digest(generate("ids", "int64", (64,), 1)),
        "bool": digest(generate("mask", "bool", (64,), 2)),
    }
    assert got == PINNED


def test_independent_of_order_and_other_inputs(tmp_path):
    both = make_inputs(two_io_model(tmp_path / "m.onnx"), seed=5)
    assert np.array_equal(both["a"], generate("a", "float32", (2, 3), 5))
    assert not np.array_equal(generate("a", "float32", (2, 3), 5), generate("a", "float32", (2, 3), 6))


def test_dtype_aware_ranges():
    f = generate("x", "float32", (10_000,), 0)
    assert f.dtype == np.float32 and f.min() >= -1 and f.max() < 1 and f.std() > 0.5
    i = generate("x", "int64", (10_000,), 0)
    assert i.dtype == np.int64 and set(np.unique(i)) == set(range(10))
    b = generate("x", "bool", (10_000,), 0)
    assert 0.45 < b.mean() < 0.55
    r = generate("x", "float32", (1000,), 0, (5.0, 6.0))
    assert r.min() >= 5 and r.max() < 6
    with pytest.raises(InputError, match="does not fit uint8"):
        generate("x", "uint8", (3,), 0, (0, 300))


def test_dynamic_dims_need_shapes(tmp_path):
    model = scale_model(tmp_path / "m.onnx", dims=("batch", 4))
    with pytest.raises(InputError) as info:
        make_inputs(model)
    assert str(info.value) == ("input 'x' dim 0 ('batch') is dynamic and no shape was given; "
                               "pass shapes={'x': (<size>, 4)} (a marker or function argument)")
    assert make_inputs(model, shapes={"x": (3, 4)})["x"].shape == (3, 4)
    assert make_inputs(model, shapes={"x": {"min": (1, 4), "opt": (2, 4), "max": (8, 4)}})["x"].shape == (2, 4)
    with pytest.raises(InputError, match=r"gives dim 1 = 5 but the model fixes it at 4"):
        make_inputs(model, shapes={"x": (3, 5)})
    with pytest.raises(InputError, match=r"has 1 dims but input x \(float32\[batch,4\]\) has 2"):
        make_inputs(model, shapes={"x": (3,)})
    with pytest.raises(InputError, match=r"shapes names 'z', which is not an input of m.onnx; its inputs are: x"):
        make_inputs(model, shapes={"z": (3,)})


def test_user_inputs_checked(tmp_path):
    info = load_model_info(two_io_model(tmp_path / "m.onnx"))
    good = {"a": np.zeros((2, 3), np.float32), "b": np.zeros((2, 3), np.int64)}
    assert prepare_user_inputs(good, info).keys() == good.keys()
    with pytest.raises(InputError, match="input 'a' has dtype float64 but the model expects float32; convert it with .astype"):
        prepare_user_inputs({**good, "a": np.zeros((2, 3))}, info)
    with pytest.raises(InputError, match=r"input 'b' has shape \(3, 2\) but the model expects b \(int64\[2,3\]\)"):
        prepare_user_inputs({**good, "b": np.zeros((3, 2), np.int64)}, info)
    with pytest.raises(InputError, match="inputs lack 'b'"):
        prepare_user_inputs({"a": good["a"]}, info)
    with pytest.raises(InputError, match="inputs names 'c', which is not an input"):
        prepare_user_inputs({**good, "c": good["a"]}, info)
    with pytest.raises(InputError, match="a single array was given but the model has 2 inputs"):
        prepare_user_inputs(good["a"], info)


def test_npz_inputs_without_pickle(tmp_path):
    info = load_model_info(identity_model(tmp_path / "m.onnx", "float32"))
    np.savez(tmp_path / "in.npz", x=np.ones((2, 3), np.float32))
    assert prepare_user_inputs(tmp_path / "in.npz", info)["x"].sum() == 6
    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(InputError, match="not a readable .npz without pickle"):
        load_npz_inputs(tmp_path / "obj.npz")
    with pytest.raises(InputError, match="does not exist"):
        load_npz_inputs(tmp_path / "none.npz")
