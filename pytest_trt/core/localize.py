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
from contextlib import closing

from pytest_trt.core.localization import (Localization, TensorError, first_divergence, first_nonfinite,
                                          largest_jump, observable, path_to, pick_first, plan_passes)
from pytest_trt.errors import BackendError, InputError

DEFAULT_SEEDS = 3                 # samples: the check's own inputs and two more seeds
DEFAULT_MEMORY = 256 << 20        # bytes of tensors (both sides) one pass may hold


def localize(model, inputs=None, *, backend: str = "onnxruntime", precision: str = "fp16", atol=None, rtol=None,
             tolerances: Mapping | None = None, shapes: Mapping | None = None, seed: int = 0,
             seeds: int = DEFAULT_SEEDS, memory: float = DEFAULT_MEMORY >> 20, build=None, engine_dir=None,
             input_range=None, observe: str = "kept") -> Localization:
    """Find where ``backend`` (default: onnxruntime, whose fp16/bf16 is a CPU preview) at ``precision`` first
    diverges from the onnxruntime reference on ``model`` (a path, relative to the current directory).

    Inputs are generated from ``seed`` (and ``seed+1``... for further samples) unless given (then they are the
    only sample). Tolerances as in the marker (``atol``/``rtol``, ``tolerances={...}``); ``memory`` bounds the
    MiB of tensors held at once (as ``--trt-localize-memory``). ``observe`` (TensorRT before 10.12, whose engines
    cannot emit tensors without changing their fusions): "kept" marks only the tensors the engine under test
    keeps between its layers (its fusions stay; tensors inside them are reported as fused), "all" marks every
    tensor (fusions broken). Returns a ``Localization`` (``.first``: the first diverging node, ``.path``: the
    error along the way to a failing output); ``reports.localization.full_table(loc)`` prints it. The engine
    under test is built and run once first (its layers tell which tensors it fuses).
    """
    import os

    from pytest_trt.backends.registry import get_backend
    from pytest_trt.core.build_options import parse_build_options
    from pytest_trt.core.generated_inputs import make_inputs
    from pytest_trt.core.inputs import prepare_user_inputs
    from pytest_trt.core.model import load_model_info
    from pytest_trt.core.spec import check_outputs_filter, parse_marker
    from pytest_trt.errors import SpecError

    if isinstance(model, (str, os.PathLike)):
        path = os.path.abspath(model)  # relative to the current directory, as every eager function reads paths
        if not os.path.isfile(path):
            raise InputError(f"localize: model file {str(model)!r} does not exist (looked at {path!r})")
        model = path
    if isinstance(memory, bool) or not isinstance(memory, (int, float)) or not memory > 0:
        raise InputError(f"localize(memory={memory!r}) must be a positive number of MiB (the tensors held at once), "
                         f"e.g. memory={DEFAULT_MEMORY >> 20}")
    if observe not in ("kept", "all"):
        raise InputError(f"localize(observe={observe!r}) must be 'kept' (the tensors the engine under test keeps "
                         "between its layers) or 'all' (every tensor; breaks TensorRT's fusions before 10.12)")
    kwargs = {k: v for k, v in (("model", model), ("atol", atol), ("rtol", rtol), ("tolerances", tolerances),
                                ("shapes", shapes), ("seed", seed), ("input_range", input_range),
                                ("precision", precision)) if v is not None}
    try:
        spec = parse_marker((), kwargs)
        info = load_model_info(spec.model)
        check_outputs_filter(spec, info)
    except SpecError as exc:  # the marker's sentences, said of this call
        text = str(exc)
        raise SpecError(f"localize {text[len('trt_compare '):]}" if text.startswith("trt_compare ")
                        else f"localize {text}") from None
    engine = get_backend(backend)
    reason = engine.unavailable_reason() or engine.precision_reason(precision)
    if reason:
        raise BackendError(f"backend {backend!r} cannot localize {precision}: {reason}")
    options = {"shapes": spec.shapes, "engine_dir": engine_dir, "convert": True, "observe": observe,
               "build": parse_build_options(build, "localize(build=...)") if build is not None else None}
    first = (make_inputs(info, spec.shapes, spec.seed, spec.input_range) if inputs is None
             else prepare_user_inputs(inputs, info))
    engine.run(info, first, precision=precision, options=options)  # the engine under test: its layers name fusions
    return localize_model(spec, precision, info, info, engine, options, inputs, seeds=seeds,
                          memory=int(round(memory * (1 << 20))), first_sample=first if inputs is None else None)


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
    with closing(reference.probe(info, precision=REFERENCE_PRECISION, tensors=[t.name for t in tensors])) as ref, \
            closing(probe(engine_info, precision=precision, options=options, tensors=[t.name for t in tensors])) as eng:
        status = eng.tensors()
        layers = getattr(eng, "layers", lambda: {})()
        fused_in_engine = getattr(eng, "fused_in_engine", lambda: set())()
        describe = engine.describe()
        preview = precision in getattr(engine, "previews", ()) or getattr(eng, "preview", False)
        label = f"{describe.get('backend')} {describe.get('version')}" + (" preview" if preview else "")
        loc = Localization(precision, label,
                           "onnxruntime", eng.method, bool(eng.fusions_broken), preview)
        compared = [t for t in tensors if status.get(t.name) == "observed"]
        sizes = tensor_bytes(info, samples[0][1])
        passes = plan_passes([t.name for t in compared], sizes, memory)
        errors_by_sample, reproduced, peak = _compare_passes(spec, precision, ref, eng, samples, compared, passes)
        loc.peak_bytes, loc.passes = peak, len(passes)
        all_errors = []
        unexposed = getattr(eng, "unexposed", "absent")
        for k, (seed, _) in enumerate(samples):
            errors = errors_by_sample[k]
            for t in tensors:
                if t.name not in errors:
                    status_k = status.get(t.name, "absent")
                    if status_k == "observed":   # not returned by the engine, or after a later sample's first
                        status_k = unexposed if k == 0 else "not compared"
                    errors[t.name] = TensorError(t, status_k)
            for name, e in errors.items():
                e.layer = layers.get(name)
                e.fused_in_engine = name in fused_in_engine
            loc.samples.append(seed)
            loc.firsts.append(first_divergence(errors.values()))
            all_errors.append(errors)
        loc.reproduced = reproduced
        loc.tensors = [all_errors[0][t.name] for t in tensors]
    loc.first = pick_first(loc.firsts)
    loc.counts = {}
    for e in loc.tensors:
        loc.counts[e.status] = loc.counts.get(e.status, 0) + 1
    if loc.first is not None:
        errors = all_errors[0]   # the one sample compared in full (later ones stop at their first divergence)
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
        loc.nonfinite = first_nonfinite(loc.tensors)
        loc.jump = largest_jump(errors, nodes)
    if loc.first is not None:
        hidden = sum(1 for e in loc.tensors if e.status == "fused" and e.order < loc.first.order)
        if hidden:
            loc.notes.append(f"{hidden} tensor(s) before it are computed inside fused engine layers and were not "
                             "observed; the divergence may start there (on TensorRT before 10.12, "
                             "localize(..., observe='all') exposes them, breaking the fusions)")
    if inputs is not None:
        loc.notes.append("one sample: the test's own inputs (generated samples could leave their domain)")
    if loc.peak_bytes > memory:
        from pytest_trt.comparison.report import size_text

        loc.notes.append(f"a pass held {size_text(loc.peak_bytes)}, over the {memory / 2**20:.3g} MiB bound: a "
                         "single tensor (both sides) is larger than the bound and is compared alone")
    if loc.reproduced is False and failing_output is not None:
        loc.notes.append("the check's failure does not reproduce in the localization run: exposing the tensors "
                         "changed what the engine computes (kernels or precisions), so the table may not show it")
    loc.seconds = time.perf_counter() - started
    return loc


def _compare_passes(spec, precision, ref, eng, samples, compared, passes):
    """Compare ``compared`` tensors pass by pass, each pass over every sample (a pass's session or exposure is
    set up once for all samples, then dropped): per sample the errors by name, whether the engine's outputs
    fail in this run (first sample), and the most bytes of tensors held at once. The first sample is compared in
    full (its table and path); a later one only up to the pass where it first diverges."""
    from pytest_trt.comparison.compare import compare_arrays, compare_outputs
    from pytest_trt.core.tolerance import resolve

    errors = [{} for _ in samples]
    by_name = {t.name: t for t in compared}
    peak, reproduced = 0, None
    found = [False] * len(samples)   # a later sample only needs its first divergence: it stops at the pass with it
    for chunk in passes or [[]]:
        for k, (_, inputs) in enumerate(samples):
            if k and found[k]:
                continue
            with ref.sample(inputs) as rs, eng.sample(inputs) as es:
                r, e = (rs.fetch(chunk), es.fetch(chunk)) if chunk else ({}, {})
                peak = max(peak, sum(a.nbytes for a in r.values()) + sum(a.nbytes for a in e.values()))
                for name in chunk:
                    t = by_name[name]
                    if name not in e or name not in r:
                        errors[k][name] = TensorError(t, getattr(eng, "unexposed", "absent") if name not in e
                                                      else "absent")
                        continue
                    tol = resolve(precision, name, spec.tolerances, spec.test_level)
                    rep = compare_arrays(name, e[name], r[name], tol)
                    errors[k][name] = TensorError(t, "compared", rep.max_abs.value if rep.max_abs else 0.0,
                                                  _share(rep), rep.mismatches, rep.size, rep.passed, tol.atol,
                                                  tol.rtol, rep.problem if rep.problem in ("shape", "dtype") else None,
                                                  rep.nan_mismatches + rep.inf_mismatches)
                del r, e
                found[k] = any(errors[k][name].diverged for name in chunk)
                if k == 0 and reproduced is None and es.outputs is not None and rs.outputs is not None:
                    reports = compare_outputs({n: v for n, v in es.outputs.items() if n in rs.outputs}, rs.outputs,
                                              lambda n: resolve(precision, n, spec.tolerances, spec.test_level))
                    reproduced = not all(rep.passed for rep in reports)
    return errors, reproduced, peak


def tensor_bytes(info, inputs: Mapping) -> dict[str, int | None]:
    """Bytes of each tensor of ``info``'s model for these inputs, both sides together (twice the reference's),
    from onnx shape inference with the inputs' shapes; None where a shape depends on data."""
    import numpy as np
    import onnx

    try:
        model = onnx.load(str(info.path), load_external_data=False)
        for value in model.graph.input:
            if value.name in inputs:
                dims = value.type.tensor_type.shape.dim
                del dims[:]
                for d in np.shape(inputs[value.name]):
                    dims.add().dim_value = int(d)
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # noqa: BLE001 - sizes only plan the passes: unknown sizes fall back in plan_passes
        return {}
    sizes = {}
    for value in (*inferred.graph.value_info, *inferred.graph.output):
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
        try:
            itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).itemsize
        except Exception:  # noqa: BLE001 - an element type numpy has no name for
            itemsize = 4
        sizes[value.name] = None if None in dims or not tensor.HasField("shape") else \
            2 * itemsize * int(np.prod(dims, dtype=np.int64))
    return sizes


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
