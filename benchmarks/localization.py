"""Localization of a failing fp16 check against the check itself and Polygraphy's mark-all workflow, in one run.

    pip install -c .ci/constraints.txt -e ".[test,bench]"   # [bench]: polygraphy
    pip install torch==2.13.0                                # the CPU build is enough
    python benchmarks/localization.py [--atol 1.5e-3] [--repeats 3] [--keep DIR] [--profile]

Exports a 4-layer ``nn.TransformerEncoder`` (d_model 256, 8 heads, feed-forward 1024, LayerNorm and a linear
head; input ``x`` [4, 128, 256]) with PyTorch's TorchScript exporter at opset 17 (its per-layer weights drawn
apart, so the exporter shares none), and prints its node count and the bytes of its intermediate tensors.

The engine under test is onnxruntime at fp16 (the CPU preview: the model converted to fp16, every reduced
tensor rounded where it is produced); the reference is onnxruntime at fp32. Tolerances are ``atol`` with
``rtol=0``, tight enough that the check fails; at ``rtol=0`` pytest-trt's allclose criterion
(``|a-e| <= atol + rtol|e|``) and Polygraphy's elementwise one (an element fails where both its absolute and
its relative error exceed their tolerances) are the same test, so both tools judge every tensor alike.

Each measured step runs in a fresh process, as a CI run would: ``process s`` is that process's wall time
(interpreter, imports and all), ``step s`` the step alone and ``cpu s`` its CPU time (all threads; steadier
than wall time on a shared machine); ``peak MiB`` is the process's peak RSS and
``extra MiB`` that peak less its RSS right after the imports (numpy, onnx, onnxruntime and the tool's own) and
the model's load (``onnx.load``), so the memory the step itself added. pytest-trt's in-process steps run
``--repeats`` times (fastest times, largest extra memory kept); the pytest and Polygraphy runs once. Steps:

- the failing check: ``pytest_trt.core.check.run_check`` at fp16 with localization off;
- ``pytest_trt.localize`` with 1 and 3 samples (seeds) and a 256 (the default), a 64 and an 8 MiB memory bound:
  time, extra memory, passes, the bytes of tensors it held at once (``peak_bytes``), the first diverging node;
- the check and its localization in one call, as the plugin runs them (3 samples, 256 MiB: the defaults);
- ``python -m pytest`` on a generated test through the plugin, with ``--trt-localize=off`` and with the default:
  wall time, peak RSS, and the bytes of ``localization.txt`` + ``report.json`` in ``--trt-artifacts``
  (``localize()`` itself writes nothing);
- Polygraphy (``polygraphy run`` in-process, CPU, onnxruntime both sides, the same inputs through
  ``--load-inputs``): the fp32 model with ``--onnx-outputs mark all --save-outputs ref.json``, then the fp16
  preview model (the same converted and rounded model the preview runs) with ``--onnx-outputs mark all
  --load-outputs ref.json --atol A --rtol 0``; the bytes it writes (``ref.json``).

Then the ratios: localization / failing check (time; target <= 3x), localization's extra memory and bytes
written against Polygraphy's, and whether both name the same first diverging tensor (Polygraphy's mismatched
outputs put in graph order). ``--profile`` adds a cProfile of ``localize`` (1 sample) in its own process.
No timings are asserted.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MiB = 1 << 20
BATCH, SEQ, WIDTH, HEADS, FF, LAYERS = 4, 128, 256, 8, 1024, 4
OPSET = 17

# One measured step in a fresh process. argv[1]: JSON {"step", "model", "out", ...}; writes JSON to "out".
CHILD = r"""
import json, os, resource, sys, time
args = json.loads(sys.argv[1])
step = args["step"]

def rss_now():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0

import numpy, onnx, onnxruntime
if step == "polygraphy":
    from polygraphy.tools import main as polygraphy_main
else:
    from pytest_trt.backends.registry import get_backend
    from pytest_trt.core.check import CheckContext, run_check
    from pytest_trt.core.localize import localize
    from pytest_trt.core.model import load_model_info
    from pytest_trt.core.spec import parse_marker
    from pytest_trt.reports.localization import message
    import pytest_trt.backends.onnxruntime, pytest_trt.comparison.compare, pytest_trt.backends.convert
    load_model_info(args["model"])
model = onnx.load(args["model"])
base = rss_now()
result = {}
usage = resource.getrusage(resource.RUSAGE_SELF)
cpu = usage.ru_utime + usage.ru_stime
start = time.perf_counter()
if step == "polygraphy":
    result["status"] = polygraphy_main(args["argv"])
    sys.stdout.flush()
elif step == "check":
    spec = parse_marker((), {"model": args["model"], "atol": args["atol"], "rtol": args["rtol"],
                             "precision": "fp16"})
    ctx = CheckContext("benchmark::check", None, localize=args["localize"])
    check = run_check(spec, "fp16", ctx, get_backend("onnxruntime"))
    report = check.engine_vs_reference
    result["passed"] = report.passed
    result["failed"] = [r.name for r in report.failed]
    loc = check.localization
    if loc is not None:
        result.update(passes=loc.passes, peak_bytes=loc.peak_bytes, samples=len(loc.samples),
                      first=loc.first and loc.first.name, node=loc.first and loc.first.node, message=message(loc))
    if check.localization_problem:
        result["problem"] = check.localization_problem
else:
    def call():
        return localize(args["model"], precision="fp16", backend="onnxruntime", atol=args["atol"],
                        rtol=args["rtol"], seeds=args["seeds"], memory=args["memory"])
    if args.get("profile"):
        import cProfile, pstats, io
        profile = cProfile.Profile()
        loc = profile.runcall(call)
        text = io.StringIO()
        pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(25)
        result["profile"] = text.getvalue()
    else:
        loc = call()
    result.update(passes=loc.passes, peak_bytes=loc.peak_bytes, samples=len(loc.samples), seconds=loc.seconds,
                  first=loc.first and loc.first.name, node=loc.first and loc.first.node, message=message(loc),
                  firsts=[e and e.node for e in loc.firsts], diverged=sum(e.diverged for e in loc.tensors))
result["step_s"] = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_SELF)
result["cpu_s"] = usage.ru_utime + usage.ru_stime - cpu
result["base"] = base
result["peak"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
with open(args["out"], "w") as f:
    json.dump(result, f)
"""

PLUGIN_TEST = """
import pytest

MODEL = {model!r}


@pytest.mark.trt_compare(model=MODEL, precision="fp16", atol={atol!r}, rtol={rtol!r})
def test_encoder(trt_compare):
    trt_compare()
"""


# ------------------------------------------------------------------------------------------- model

def export(folder: Path) -> Path:
    """The encoder exported to ``folder/encoder.onnx`` (static shapes, opset 17, TorchScript exporter)."""
    import torch
    from torch import nn

    torch.manual_seed(0)

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            layer = nn.TransformerEncoderLayer(WIDTH, HEADS, FF, dropout=0.0, batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, LAYERS, enable_nested_tensor=False)
            for copy in self.encoder.layers:   # the layers are deep copies of one: draw each its own weights
                copy.self_attn._reset_parameters()
                for linear in (copy.linear1, copy.linear2, copy.self_attn.out_proj):
                    linear.reset_parameters()
            self.norm = nn.LayerNorm(WIDTH)
            self.head = nn.Linear(WIDTH, 16)

        def forward(self, x):
            return self.head(self.norm(self.encoder(x)))

    path = folder / "encoder.onnx"
    # Exported with gradients enabled: under no_grad an eval-mode encoder layer takes PyTorch's fused fast path
    # (aten::_transformer_encoder_layer_fwd), which the TorchScript exporter cannot export.
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the TorchScript exporter's deprecation warning
        torch.onnx.export(Encoder().eval(), (torch.randn(BATCH, SEQ, WIDTH),), str(path), input_names=["x"],
                          output_names=["y"], opset_version=OPSET, dynamo=False)
    return path


def intermediates(path: Path, inputs: dict) -> tuple[int, int, int]:
    """(nodes, tensors produced by non-Constant nodes, their bytes for ``inputs``), from one onnxruntime run
    exposing them all."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(path))
    names = list(dict.fromkeys(o for n in model.graph.node if n.op_type != "Constant" for o in n.output if o))
    nodes = len(model.graph.node)
    present = {o.name for o in model.graph.output}
    model.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names if n not in present)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return nodes, len(names), sum(a.nbytes for a in session.run(names, inputs))


def graph_order(path: Path) -> dict[str, int]:
    """Tensor name -> index of the node producing it, in the fp32 model."""
    import onnx

    order = {}
    for index, node in enumerate(onnx.load(str(path), load_external_data=False).graph.node):
        for name in node.output:
            order.setdefault(name, index)
    return order


# ------------------------------------------------------------------------------------------- processes

def spawn(cmd: list[str], cwd: Path | None = None) -> tuple[int, str, float, int]:
    """(exit code, stdout+stderr, wall seconds, peak RSS bytes of the process) of ``cmd`` run to its end."""
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        return proc.returncode, out.read().decode(errors="replace"), wall, usage.ru_maxrss * 1024


def child(step: str, folder: Path, **args) -> dict:
    out = folder / "child.json"
    out.unlink(missing_ok=True)
    code, text, wall, _ = spawn([sys.executable, "-c", CHILD, json.dumps({"step": step, "out": str(out), **args})],
                                cwd=ROOT)
    if not out.exists():
        raise SystemExit(f"the {step} step failed (exit {code}):\n{text[-3000:]}")
    result = json.loads(out.read_text())
    result.update(wall=wall, output=text, code=code)
    return result


def best(step: str, folder: Path, repeats: int, **args) -> dict:
    """``child`` run ``repeats`` times: the fastest run, with the largest peak and extra memory of all."""
    runs = [child(step, folder, **args) for _ in range(repeats)]
    fastest = min(runs, key=lambda r: r["wall"])
    worst = max(runs, key=lambda r: r["peak"] - r["base"])
    return {**fastest, "step_s": min(r["step_s"] for r in runs), "cpu_s": min(r["cpu_s"] for r in runs),
            "peak": worst["peak"], "base": worst["base"]}


def plugin_run(folder: Path, model: Path, atol: float, rtol: float, localize: str) -> dict:
    """The check through the plugin in ``python -m pytest``; its wall time, peak RSS and artifact bytes."""
    run = folder / f"plugin-{localize}"
    run.mkdir()
    test = run / "test_encoder_bench.py"
    test.write_text(PLUGIN_TEST.format(model=str(model), atol=atol, rtol=rtol))
    artifacts = run / "artifacts"
    code, text, wall, peak = spawn([sys.executable, "-m", "pytest", str(test), "-q", "-p", "no:cacheprovider",
                                    "-p", "no:randomly", "--rootdir", str(run), "--trt-backend=onnxruntime",
                                    f"--trt-localize={localize}", f"--trt-artifacts={artifacts}"], cwd=run)
    if code != 1 or "1 failed" not in text:
        raise SystemExit(f"the plugin run (--trt-localize={localize}) should fail one test; exit {code}:\n"
                         f"{text[-3000:]}")
    sizes = {p.name: p.stat().st_size for p in artifacts.rglob("*") if p.is_file()}
    return {"wall": wall, "peak": peak, "sizes": sizes,
            "written": sum(sizes.get(n, 0) for n in ("localization.txt", "report.json"))}


def polygraphy_first(text: str, order: dict[str, int]) -> tuple[str | None, int]:
    """(the first mismatched tensor in graph order, how many mismatched) from ``polygraphy run``'s log."""
    for line in text.splitlines():
        if "Mismatched outputs:" in line:
            names = ast.literal_eval(line.split("Mismatched outputs:", 1)[1].strip())
            ranked = sorted(names, key=lambda n: order.get(n, len(order)))
            return (ranked[0] if ranked else None), len(names)
    failed = [line.split("Output: '", 1)[1].split("'", 1)[0] for line in text.splitlines()
              if "FAILED | Output: '" in line]
    ranked = sorted(failed, key=lambda n: order.get(n, len(order)))
    return (ranked[0] if ranked else None), len(failed)


# ------------------------------------------------------------------------------------------- driver

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--atol", type=float, default=1.5e-3,
                        help="absolute tolerance (rtol is 0); the fp16 output's error is about 2e-3")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each pytest-trt step (default 3)")
    parser.add_argument("--keep", type=Path, help="write the models, inputs and files here and keep them")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of localize (1 sample)")
    args = parser.parse_args(argv)
    atol, rtol = args.atol, 0.0

    import numpy as np
    import onnx
    import onnxruntime
    import polygraphy
    import torch
    from polygraphy.json import save_json

    from pytest_trt.backends import convert
    from pytest_trt.core.generated_inputs import make_inputs
    from pytest_trt.core.model import load_model_info
    from pytest_trt.core.spec import parse_marker

    print(f"torch {torch.__version__}, onnx {onnx.__version__}, onnxruntime {onnxruntime.__version__}, "
          f"polygraphy {polygraphy.__version__}, numpy {np.__version__}, {os.cpu_count()} CPUs; "
          f"fp16 (onnxruntime CPU preview) vs fp32 onnxruntime; atol={atol:g}, rtol=0")
    with contextlib.ExitStack() as stack:
        if args.keep:
            folder = args.keep.resolve()
            folder.mkdir(parents=True, exist_ok=True)
        else:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pytest-trt-loc-bench-")))
        start = time.perf_counter()
        model = export(folder)
        exported = time.perf_counter() - start
        # The check's own inputs (seed 0), for Polygraphy, and the fp16 preview model.
        spec = parse_marker((), {"model": str(model)})
        inputs = make_inputs(load_model_info(str(model)), spec.shapes, spec.seed, spec.input_range)
        nodes, tensors, total = intermediates(model, inputs)
        print(f"exported {model.name} in {exported:.1f} s: {nodes} ONNX nodes, "
              f"{model.stat().st_size / MiB:.1f} MiB; {tensors} intermediate tensors (non-Constant node outputs), "
              f"{total / MiB:.1f} MiB per input set (fp32)")
        fp16 = folder / "encoder.fp16.onnx"
        onnx.save(convert.emulate(convert.convert_file(model, "float16"), "float16"), str(fp16))
        inputs_json = folder / "inputs.json"
        save_json([inputs], str(inputs_json))

        common = {"model": str(model), "atol": atol, "rtol": rtol}
        rows = []

        def row(name, r, passes="", held="", writes="", first=""):
            extra = (r["peak"] - r["base"]) / MiB if "base" in r else None
            rows.append((name, r["wall"], r.get("step_s"), r.get("cpu_s"), r["peak"] / MiB, extra, passes, held,
                         writes, first))
            print(f"  measured: {name}: {r['wall']:.2f} s", flush=True)
            return r

        check = row("check (localize off)", best("check", folder, args.repeats, localize="off", **common))
        if check["passed"]:
            raise SystemExit(f"the check passes at atol={atol:g}; pass a smaller --atol")
        locs = {}
        for seeds in (1, 3):
            for memory in (256, 64, 8):
                r = best("localize", folder, args.repeats, seeds=seeds, memory=memory * MiB, **common)
                locs[seeds, memory] = row(f"localize seeds={seeds}, {memory} MiB", r, r["passes"],
                                          f"{r['peak_bytes'] / MiB:.1f}", "0", r["node"])
        both = best("check", folder, args.repeats, localize="auto", **common)
        row("check + localize (plugin: 3, 256 MiB)", both, both.get("passes", ""),
            f"{both.get('peak_bytes', 0) / MiB:.1f}", "", both.get("node") or both.get("problem", ""))
        plugin = {}
        for mode in ("off", "auto"):
            plugin[mode] = p = plugin_run(folder, model, atol, rtol, mode)
            rows.append((f"pytest, --trt-localize={mode}", p["wall"], None, None, p["peak"] / MiB, None, "", "",
                         f"{p['written']}", ""))
            print(f"  measured: pytest --trt-localize={mode}: {p['wall']:.2f} s", flush=True)

        order = graph_order(model)
        ref = folder / "ref.json"
        save = child("polygraphy", folder, model=str(model), argv=[
            "run", str(model), "--onnxrt", "--onnx-outputs", "mark", "all", "--load-inputs", str(inputs_json),
            "--save-outputs", str(ref)])
        if save["status"] != 0:
            raise SystemExit(f"polygraphy run (fp32, save) failed:\n{save['output'][-3000:]}")
        row("polygraphy fp32 mark all, save", save, "1", "all", f"{ref.stat().st_size}")
        compare = child("polygraphy", folder, model=str(fp16), argv=[
            "run", str(fp16), "--onnxrt", "--onnx-outputs", "mark", "all", "--load-inputs", str(inputs_json),
            "--load-outputs", str(ref), "--atol", repr(atol), "--rtol", "0"])
        poly_first, poly_failed = polygraphy_first(compare["output"], order)
        row("polygraphy fp16 mark all, compare", compare, "1", "all", "0", poly_first or "(none found)")
        ref_bytes = ref.stat().st_size
        profile = (child("localize", folder, seeds=1, memory=64 * MiB, profile=True, **common)
                   if args.profile else None)

    print(f"\n{'step':<38} {'process s':>9} {'step s':>7} {'cpu s':>6} {'peak MiB':>9} {'extra MiB':>9} "
          f"{'passes':>6} {'held MiB':>8} {'writes B':>10}  first diverging")
    for name, wall, step, cpu, peak, extra, passes, held, writes, first in rows:
        step_s = f"{step:7.2f} {cpu:6.2f}" if step is not None else f"{'-':>7} {'-':>6}"
        extra_s = f"{extra:9.1f}" if extra is not None else f"{'-':>9}"
        print(f"{name:<38} {wall:9.2f} {step_s} {peak:9.1f} {extra_s} {passes!s:>6} {held:>8} {writes:>10}  {first}")

    default = locs[3, 256]
    print("\nratios (same run)")
    for (seeds, memory), r in locs.items():
        print(f"  localize seeds={seeds}, {memory:>3} MiB / failing check: "
              f"step {r['step_s'] / check['step_s']:5.2f}x, cpu {r['cpu_s'] / check['cpu_s']:5.2f}x, "
              f"process {r['wall'] / check['wall']:5.2f}x (target <= 3x)")
    for key in ((1, 256), (3, 256), (3, 64)):
        r = locs[key]
        print(f"  localize seeds={key[0]}, {key[1]} MiB extra memory / the check's: "
              f"{(r['peak'] - r['base']) / (check['peak'] - check['base']):.2f}x")
    print(f"  pytest run with localization / without: {plugin['auto']['wall'] / plugin['off']['wall']:.2f}x wall, "
          f"{plugin['auto']['peak'] / plugin['off']['peak']:.2f}x peak RSS")
    poly_extra = max(save["peak"] - save["base"], compare["peak"] - compare["base"])
    poly_step = save["step_s"] + compare["step_s"]
    poly_cpu = save["cpu_s"] + compare["cpu_s"]
    for key in ((1, 256), (3, 256)):
        r = locs[key]
        print(f"  localize seeds={key[0]}, {key[1]} MiB vs Polygraphy (its 2 runs, 1 input set): time "
              f"{r['step_s'] / poly_step:.2f}x (cpu {r['cpu_s'] / poly_cpu:.2f}x), extra memory "
              f"{(r['peak'] - r['base']) / poly_extra:.2f}x ({(r['peak'] - r['base']) / MiB:.0f} vs "
              f"{poly_extra / MiB:.0f} MiB)")
    written = plugin["auto"]["written"]
    sizes = plugin["auto"]["sizes"]
    print(f"  bytes written: localization.txt + report.json {written} B ({sizes.get('localization.txt', 0)} + "
          f"{sizes.get('report.json', 0)}; report.json without localization "
          f"{plugin['off']['sizes'].get('report.json', 0)} B) vs Polygraphy's ref.json {ref_bytes} B: "
          f"{written / ref_bytes:.5f}x")
    for (seeds, memory), r in locs.items():
        held = r["peak_bytes"] / MiB
        print(f"  memory bound, seeds={seeds}, {memory:>2} MiB: held {held:.1f} MiB at most in {r['passes']} passes: "
              + (f"{held / memory:.1f}x over the bound" if held > memory else "within the bound"))
    same = poly_first == locs[1, 64]["first"]
    print(f"  first diverging tensor, input set 0: pytest-trt {locs[1, 64]['first']!r} "
          f"({locs[1, 64]['node']}); Polygraphy {poly_first!r} (first of {poly_failed} mismatched outputs in graph "
          f"order): {'the same' if same else 'DIFFERENT'}; diverged tensors: pytest-trt {locs[1, 64]['diverged']} "
          f"(of its compared ones), Polygraphy {poly_failed} mismatched outputs")
    print(f"  pytest-trt, 3 input sets: first diverging per set {default['firsts']}; picked {default['node']}")
    print("\nlocalize seeds=3, 256 MiB, as a failure message carries it:")
    print("\n".join("  " + line for line in default["message"].splitlines()))
    if profile is not None:
        print(f"\ncProfile of localize (1 sample, 64 MiB), {profile['step_s']:.2f} s:")
        print(profile["profile"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
