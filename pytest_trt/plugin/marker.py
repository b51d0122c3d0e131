"""The ``trt_compare`` marker: its help line, its arguments parsed once per marker, its precisions as the
``trt_compare`` fixture's parameter, and the errors of a wrong marker, each failing its own test at setup."""
from __future__ import annotations

from pathlib import Path

import pytest

from pytest_trt.errors import SpecError
from pytest_trt.plugin.state import STATE

MARKER = "trt_compare"
# Names every argument of core.spec.ARGUMENTS (tests/plugin/test_units.py checks it).
MARKER_HELP = (f"{MARKER}(model=None, *, atol=None, rtol=None, precision='fp32', tolerances=None, shapes=None, seed=0, "
               "outputs=None, input_range=None, convention='allclose', equal_nan=True, build=None, "
               "min_precision_share=None, localize=None): compare an engine under test with the ONNX Runtime reference and stored "
               "goldens; model= is a path, or {'fp32': path, 'fp16': path} to test each precision's own file "
               "(pytest-trt; see its README)")
SPEC_ERROR = pytest.StashKey[str]()  # per item: why its marker cannot run (the test errors at setup)


def spec_for(node, rootdir: Path):
    """The node's validated marker arguments, parsed once per marker (not once per test)."""
    marker = closest_marker(node)
    if marker is None:
        from pytest_trt.core.spec import CompareSpec

        return CompareSpec()
    state = node.config.stash.get(STATE, None)
    specs = state.specs if state is not None else {}
    key = (id(marker), node.path)
    cached = specs.get(key)
    if cached is not None and cached[0] is marker:
        return cached[1]
    from pytest_trt.core.spec import parse_marker

    spec = parse_marker(marker.args, marker.kwargs, Path(node.path).parent, rootdir)
    specs[key] = (marker, spec)  # parametrized items share one Mark; holding it keeps its id unique
    return spec


def closest_marker(node):
    """``node.get_closest_marker(MARKER)``, looking at the node's own markers first: where a test's marker
    usually is (its decorator), found without walking the node chain, once per test."""
    for mark in node.own_markers:
        if mark.name == MARKER:
            return mark
    return node.get_closest_marker(MARKER)


def marker_owner(item) -> str | None:
    """Where the item's marker is declared, as a node id: the test function for its decorator (shared by the
    function's parametrized tests), the class or module for theirs; None for a ``pytest.param`` mark (the
    test's own). Tests with one owner share one marker, so --trt-suggest-tolerances suggests once for them."""
    mark = closest_marker(item)
    if any(m is mark for m in getattr(getattr(item, "function", None), "pytestmark", ())):
        return definition_key(item)
    return next((node.nodeid for node in item.listchain()[-2::-1] if any(m is mark for m in node.own_markers)), None)


def precision_param(item) -> str | None:
    """The item's precision when its marker lists several (the ``trt_compare`` fixture's parameter)."""
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("trt_compare") if callspec is not None else None


def definition_key(node) -> str:
    """The test function a collected item (or its FunctionDefinition) comes from."""
    return f"{node.parent.nodeid}::{getattr(node, 'originalname', node.name)}"


def parametrize(metafunc: pytest.Metafunc) -> None:
    """A marked test's precisions as parameters of ``trt_compare``; a wrong marker's error noted for its test."""
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
            spec = spec_for(definition, metafunc.config.rootpath)
        except SpecError as exc:
            error = f"{definition.nodeid}: {exc}"
    if error is not None:  # this test errors alone at its setup; the others run
        state = metafunc.config.stash.get(STATE, None)
        if state is None:
            raise pytest.Collector.CollectError(error)
        state.spec_errors[definition_key(definition)] = error
        return
    if spec.parametrized:  # the precision is trt_compare's parameter; function scope keeps pytest's test order
        metafunc.parametrize("trt_compare", spec.precisions, ids=list(spec.precisions), indirect=True, scope="function")


def note_spec_error(state, item) -> bool:
    """Whether the item's marker is wrong; its error is then kept for the item's setup to raise."""
    if state.spec_errors and isinstance(item, pytest.Function):
        error = state.spec_errors.get(definition_key(item))
        if error is not None:
            item.stash[SPEC_ERROR] = error
            return True
    return False


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
