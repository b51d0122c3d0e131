"""Localizing a divergence: run the reference and the engine with intermediate tensors exposed, compare them
pass by pass in graph order, and name the first diverging node (decisions in ``core.localization``).

``localize`` is the eager entry point; a failing engine-vs-reference check calls ``localize_check``. Each side
is a backend's ``probe`` (onnxruntime adds graph outputs; TensorRT marks outputs or debug tensors): one
probe per side for all samples (one extra engine build at most), and per pass only that pass's tensors on the
host, dropped once compared.
"""
from __future__ import annotations

import time
from collections.abc import Mapping

from pytest_trt.core.localization import (Localization, TensorError, first_divergence, next_chunk, observable,
                                          path_to, pick_first)
from pytest_trt.errors import BackendError, InputError

DEFAULT_SEEDS = 3                 # samples: the check's own inputs and two more seeds
DEFAULT_MEMORY = 64 << 20         # bytes of tensors (both sides) one pass may hold


def localize(model, inputs=None, *, backend: str = "onnxruntime", precision: str = "fp16", atol=None, rtol=None,
             tolerances: Mapping | None = None, shapes: Mapping | None = None, seed: int = 0,
             seeds: int = DEFAULT_SEEDS, memory: int = DEFAULT_MEMORY, build=None, engine_dir=None,
             input_range=None, observe: str = "kept") -> Localization:
    """Find where ``backend`` at ``precision`` first diverges from the onnxruntime reference on ``model``.

    Inputs are generated from ``seed`` (and ``seed+1``... for further samples) unless given (then they are the
    only sample). Tolerances as in the marker (``atol``/``rtol``, ``tolerances={...}``); ``memory`` bounds the
    bytes of tensors held at once. ``observe`` (TensorRT before 10.12, whose engines cannot emit tensors without
    changing their fusions): "kept" marks only the tensors the engine under test keeps between its layers (its
    fusions stay; tensors inside them are reported as fused), "all" marks every tensor (fusions broken). Returns a ``Localization`` (``.first``: the first diverging node, ``.path``:
    the error along the way to a failing output); ``str(reports.localization.text(loc))`` prints it.
    """
    from pytest_trt.backends.registry import get_backend
    from pytest_trt.core.build_options import parse_build_options
    from pytest_trt.core.spec import parse_marker

    import os

    if isinstance(model, (str, os.PathLike)):
        model = os.path.abspath(model)  # relative to the current directory, as every eager function reads paths
    kwargs = {k: v for k, v in (("model", model), ("atol", atol), ("rtol", rtol), ("tolerances", tolerances),
                                ("shapes", shapes), ("seed", seed), ("input_range", input_range),
                                ("precision", precision)) if v is not None}
    spec = parse_marker((), kwargs)
    engine = get_backend(backend)
    reason = engine.unavailable_reason() or engine.precision_reason(precision)
    if reason:
        raise BackendError(f"backend {backend!r} cannot localize {precision}: {reason}")
    if observe not in ("kept", "all"):
        raise InputError(f"localize(observe={observe!r}) must be 'kept' (the tensors the engine under test keeps "
                         "between its layers) or 'all' (every tensor; breaks TensorRT's fusions before 10.12)")
    options = {"shapes": spec.shapes, "engine_dir": engine_dir, "convert": True, "observe": observe,
               "build": parse_build_options(build, "localize(build=...)") if build is not None else None}
    from pytest_trt.core.model import load_model_info

    from pytest_trt.core.generated_inputs import make_inputs
    from pytest_trt.core.inputs import prepare_user_inputs

    info = load_model_info(spec.model)
    first = (make_inputs(info, spec.shapes, spec.seed, spec.input_range) if inputs is None
             else prepare_user_inputs(inputs, info))
    engine.run(info, first, precision=precision, options=options)  # the engine under test: its layers name fusions
    return localize_model(spec, precision, info, info, engine, options, inputs, seeds=seeds, memory=memory,
                          first_sample=first if inputs is None else None)


def localize_model(spec, precision: str, info, engine_info, engine, options: Mapping, inputs=None, *,
                   seeds: int = DEFAULT_SEEDS, memory: int = DEFAULT_MEMORY, failing_output: str | None = None,
                   first_sample: Mapping | None = None) -> Localization:
    """The localization of ``engine`` at ``precision`` against the reference, for a check of ``spec``.

    ``inputs``: the test's own (then the only sample); else samples are generated from ``spec.seed`` on
    (``first_sample``: the check's inputs for its seed, already made). ``failing_output``: the output the check
    failed on (the path ends there)."""
    from pytest_trt.backends.registry import get_backend
    from pytest_trt.core.generated_inputs import make_inputs
    from pytest_trt.core.inputs import prepare_user_inputs
    from pytest_trt.core.model import graph_nodes
    from pytest_trt.core.tolerance import REFERENCE_PRECISION

    started = time.perf_counter()
    if seeds < 1:
        raise InputError(f"localization needs at least one sample; got seeds={seeds}")
    probe = getattr(engine, "probe", None)
    if probe is None:
        raise BackendError(f"backend {engine.name!r} cannot expose intermediate tensors (it has no probe()), so "
                           "nothing can be localized with it")
    graph = graph_nodes(str(info.path), info.sha256)
    if graph is None:
        raise InputError(f"cannot read the nodes of {info.path.name}")
    nodes = graph.nodes
    if inputs is None:
        samples = [(spec.seed + k, first_sample if k == 0 and first_sample is not None else
                    make_inputs(info, spec.shapes, spec.seed + k, spec.input_range)) for k in range(seeds)]
    else:  # inputs the test chose: the only sample (generated ones could leave their domain)
        samples = [(-1, prepare_user_inputs(inputs, info))]
    reference = get_backend("onnxruntime")
    tensors = observable(nodes, exclude=info.input_names)
    with _closing(reference.probe(info, precision=REFERENCE_PRECISION, tensors=[t.name for t in tensors])) as ref, \
            _closing(probe(engine_info, precision=precision, options=options, tensors=[t.name for t in tensors])) as eng:
        status = eng.tensors()
        layers = getattr(eng, "layers", lambda: {})()
        fused_in_engine = getattr(eng, "fused_in_engine", lambda: set())()
        describe = engine.describe()
        preview = precision in getattr(engine, "previews", ()) or getattr(eng, "preview", False)
        loc = Localization(precision, f"{describe.get('backend')} {describe.get('version')}".strip(),
                           "onnxruntime", eng.method, bool(eng.fusions_broken), preview)
        compared = [t for t in tensors if status.get(t.name) == "observed"]
        partition: list[list[str]] = []
        all_errors = []
        for k, (seed, sample_inputs) in enumerate(samples):
            errors, reproduced, peak = _one_sample(spec, precision, ref, eng, sample_inputs, compared, partition,
                                                   memory, info)
            loc.peak_bytes = max(loc.peak_bytes, peak)
            for t in tensors:
                if t.name not in errors:
                    errors[t.name] = TensorError(t, status.get(t.name, "absent"))
            for name, e in errors.items():
                e.layer = layers.get(name)
                e.fused_in_engine = name in fused_in_engine
            loc.samples.append(seed)
            loc.firsts.append(first_divergence(errors.values()))
            all_errors.append(errors)
            if k == 0:
                loc.reproduced = reproduced
                loc.tensors = [errors[t.name] for t in tensors]
        loc.passes = len(partition)
    loc.first = pick_first(loc.firsts)
    loc.counts = {}
    for e in loc.tensors:
        loc.counts[e.status] = loc.counts.get(e.status, 0) + 1
    if loc.first is not None:
        errors = all_errors[next(i for i, e in enumerate(loc.firsts) if e is not None and e.node == loc.first.node)]
        outputs = [failing_output] if failing_output else []
        outputs += [o for o in info.output_names if o not in outputs and errors.get(o) is not None
                    and errors[o].diverged]
        outputs += [o for o in info.output_names if o not in outputs]
        for output in outputs:
            path = path_to(loc.first.name, output, nodes, errors)
            if path:
                loc.path, loc.failing_output = path, output
                break
        loc.inputs = [(name, errors.get(name)) for name in _node_inputs(nodes, loc.first)]
    if loc.first is not None:
        hidden = sum(1 for e in loc.tensors if e.status == "fused" and e.order < loc.first.order)
        if hidden:
            loc.notes.append(f"{hidden} tensor(s) before it are computed inside fused engine layers and were not "
                             "observed; the divergence may start there (on TensorRT before 10.12, "
                             "localize(..., observe='all') exposes them, breaking the fusions)")
    if inputs is not None:
        loc.notes.append("one sample: the test's own inputs (generated samples could leave their domain)")
    if loc.reproduced is False and failing_output is not None:
        loc.notes.append("the failure does not reproduce in the localization run: exposing the tensors changed "
                         "what the engine computes")
    loc.seconds = time.perf_counter() - started
    return loc


def _one_sample(spec, precision, ref, eng, inputs, compared, partition, memory, info):
    """Compare ``compared`` tensors of one sample pass by pass (the first sample sets the passes, the others
    reuse them); the errors by name, whether the engine's outputs still fail, and the most bytes held."""
    from pytest_trt.comparison.compare import compare_arrays, compare_outputs
    from pytest_trt.core.tolerance import resolve

    errors, peak = {}, 0
    by_name = {t.name: t for t in compared}
    with ref.sample(inputs) as rs, eng.sample(inputs) as es:
        passes = iter(partition) if partition else None
        done, mean = 0, None
        names = [t.name for t in compared]
        while done < len(names):
            if passes is not None:
                chunk = next(passes)
            else:
                chunk = names[done:done + next_chunk(names[done:], mean, memory)]
                partition.append(chunk)
            r, e = rs.fetch(chunk), es.fetch(chunk)
            held = sum(a.nbytes for a in r.values()) + sum(a.nbytes for a in e.values())
            peak = max(peak, held)
            mean = held / max(len(chunk), 1)
            for name in chunk:
                t = by_name[name]
                if name not in e or name not in r:
                    errors[name] = TensorError(t, getattr(eng, "unexposed", "absent") if name not in e else "absent")
                    continue
                tol = resolve(precision, name, spec.tolerances, spec.test_level)
                rep = compare_arrays(name, e[name], r[name], tol)
                errors[name] = TensorError(t, "compared", rep.max_abs.value if rep.max_abs else 0.0,
                                           _share(rep), rep.mismatches, rep.size, rep.passed, tol.atol, tol.rtol,
                                           rep.problem if rep.problem in ("shape", "dtype") else None,
                                           rep.nan_mismatches + rep.inf_mismatches)
            del r, e
            done += len(chunk)
        reproduced = None
        if es.outputs is not None and rs.outputs is not None:
            reports = compare_outputs({k: v for k, v in es.outputs.items() if k in rs.outputs}, rs.outputs,
                                      lambda n: resolve(precision, n, spec.tolerances, spec.test_level))
            reproduced = not all(rep.passed for rep in reports)
    return errors, reproduced, peak


def _share(rep) -> float:
    if rep.nan_mismatches or rep.inf_mismatches:
        return float("inf")
    if rep.problem in ("shape", "dtype"):
        return float("inf")
    if rep.exact:
        return 0.0 if rep.passed else float("inf")
    return float(rep.budget)


def _node_inputs(nodes, first) -> list[str]:
    node = nodes[first.order]
    return [i for i in node.inputs if i]


class _closing:
    """A probe as a context manager: ``close()`` on exit, whatever happened."""

    def __init__(self, probe):
        self.probe = probe

    def __enter__(self):
        return self.probe

    def __exit__(self, *exc):
        self.probe.close()
        return False
