"""``python -m pytest_trt cache list|prune [DIR]``: what a local engine cache holds, and its upkeep.

``list`` prints one row per plan (key, model file, precision, TensorRT flavor and version, GPU and compute
capability, size, when and where it was built, last use) and the totals. ``prune`` removes plans unused for a
while (``--older-than 30d``), built by a TensorRT version (``--tensorrt-version 10.3``), or the least recently
used until the cache fits (``--max-size 10G``); damaged entries only with ``--damaged``; ``--dry-run`` says what
it would remove. DIR defaults to ``$PYTEST_TRT_ENGINE_DIR``. What each plan is comes from
``backends.tensorrt.cache_index`` (no TensorRT needed), which plans go from its ``choose_prunes``; removing
goes through ``EngineCache.remove`` (under each key's lock, then ``index.json``).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

from pytest_trt.backends.tensorrt.cache_index import choose_prunes, read_records, size_text

PROG = "python -m pytest_trt cache"
ENV = "PYTEST_TRT_ENGINE_DIR"
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_AMOUNT = re.compile(r"\s*([-+]?\d+(?:\.\d*)?|[-+]?\.\d+)\s*([A-Za-z]*)\s*")


class UsageError(Exception):
    """A bad command line: one sentence naming the problem and the fix; exit status 2."""


def parse_duration(text: str, option: str = "--older-than") -> float:
    """``30d`` -> seconds; units s, m (minutes), h, d, w."""
    match = _AMOUNT.fullmatch(text)
    if match is None:
        raise UsageError(f"{option} {text!r} is not a duration; give a number and a unit, e.g. {option} 30d "
                         "(units: s, m, h, d, w)")
    number, unit = float(match[1]), match[2]
    if not unit:
        raise UsageError(f"{option} {text!r} has no unit; add one, e.g. {option} {match[1]}d (units: s, m, h, d, w)")
    if unit not in DURATION_UNITS:
        raise UsageError(f"{option} {text!r} has an unknown unit {unit!r}; use s, m (minutes), h, d or w, "
                         f"e.g. {option} 30d")
    if number < 0:
        raise UsageError(f"{option} {text!r} is negative; give a duration of at least 0, e.g. {option} 30d")
    return number * DURATION_UNITS[unit]


def parse_size(text: str, option: str = "--max-size") -> int:
    """``10G`` -> bytes (binary units: K, M, G, T, optionally followed by B or iB; a plain number is bytes)."""
    match = _AMOUNT.fullmatch(text)
    unit = match[2].lower() if match else ""
    if unit.endswith("ib"):
        unit = unit[:-2]
    elif unit.endswith("b") and len(unit) == 2:
        unit = unit[:-1]
    if match is None or unit not in SIZE_UNITS:
        raise UsageError(f"{option} {text!r} is not a size; give bytes or a number with K, M, G or T "
                         f"(binary: 10G is 10 GiB), e.g. {option} 10G")
    number = float(match[1])
    if number < 0:
        raise UsageError(f"{option} {text!r} is negative; give a size of at least 0, e.g. {option} 10G")
    return int(number * SIZE_UNITS[unit])


class _ArgumentError(UsageError):
    """argparse's complaint (an unknown option, a missing value); ``main`` adds where the help is."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):   # instead of argparse's usage block and error: one sentence
        raise _ArgumentError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="What a local engine cache holds, and its upkeep.")
    commands = parser.add_subparsers(dest="command", metavar="list|prune", parser_class=_Parser)
    folder = dict(nargs="?", default=None, help=f"the engine cache folder (default: ${ENV})")
    listing = commands.add_parser("list", help="one row per plan, and the totals",
                                  description="One row per plan in the cache folder, and the totals.")
    listing.add_argument("dir", **folder)
    listing.add_argument("--json", action="store_true", help="print the records as JSON instead")
    prune = commands.add_parser("prune", help="remove plans by age, TensorRT version or total size",
                                description="Remove plans (plan, sidecar, last-use marker) under their locks.")
    prune.add_argument("dir", **folder)
    prune.add_argument("--older-than", metavar="AGE", help="plans not used for AGE (30d, 12h, 90m; s m h d w)")
    prune.add_argument("--tensorrt-version", metavar="X", action="append", default=[],
                       help="plans built by TensorRT (or TensorRT-RTX) version X or X.*; repeatable")
    prune.add_argument("--max-size", metavar="SIZE",
                       help="then the least recently used until the cache holds at most SIZE (10G = 10 GiB)")
    prune.add_argument("--damaged", action="store_true", help="also damaged entries (listed as damaged)")
    prune.add_argument("--dry-run", action="store_true", help="say what would be removed; remove nothing")
    return parser


def _attach_negative_values(argv: list[str]) -> list[str]:
    """``--max-size -1G`` as ``--max-size=-1G``: argparse would take ``-1G`` for an option and say the value is
    missing, where the sentence to give is that it is negative."""
    out = []
    for arg in argv:
        if out and out[-1] in ("--older-than", "--max-size") and re.match(r"-[\d.]", arg):
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if argv and not argv[0].startswith("-") and argv[0] not in ("list", "prune"):
            raise UsageError(f"unknown command {argv[0]!r}; use {PROG} list [DIR] or {PROG} prune [DIR] ...")
        args = _parser().parse_args(_attach_negative_values(argv))
        if args.command is None:
            raise UsageError(f"name a command: {PROG} list [DIR] or {PROG} prune [DIR] ... (see {PROG} --help)")
        folder = _folder(args.dir)
        if args.command == "list":
            return _with_records(folder, args.command, lambda records: list_command(folder, records, as_json=args.json))
        older = parse_duration(args.older_than) if args.older_than is not None else None
        size = parse_size(args.max_size) if args.max_size is not None else None
        if older is None and size is None and not args.tensorrt_version and not args.damaged:
            raise UsageError("give at least one rule: --older-than AGE, --tensorrt-version X, --max-size SIZE "
                             "or --damaged")
        return _with_records(folder, args.command, lambda records: prune_command(
            folder, older_than=older, versions=args.tensorrt_version, max_size=size, damaged=args.damaged,
            dry_run=args.dry_run, records=records))
    except UsageError as exc:
        command = next((a for a in argv if a in ("list", "prune")), None)
        prog = f"{PROG} {command}" if command else PROG
        print(f"{prog}: {exc}" + (f"; see {prog} --help" if isinstance(exc, _ArgumentError) else ""),
              file=sys.stderr)
        return 2


def _folder(given: str | None) -> Path | str:
    """The cache folder, or an object-storage URL (kept as a string)."""
    text = given if given is not None else os.environ.get(ENV) or None
    if text is None:
        raise UsageError(f"no engine cache folder given; pass it ({PROG} list DIR) or set {ENV}")
    from pytest_trt.stores import is_url

    if is_url(text):
        return text.rstrip("/")
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise UsageError(f"{str(path)!r} is a file, not an engine cache folder; give the folder --trt-engine-dir "
                         "points at")
    return path


def _when(text: str | None) -> str:
    """``2025-11-30T07:05:09Z`` -> ``2025-11-30 07:05Z``."""
    return f"{text[:10]} {text[11:16]}Z" if text and len(text) >= 16 else (text or "?")


def _when_seconds(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%MZ", time.gmtime(seconds)) if seconds else "?"


def _model(record) -> str:
    """``m.onnx (9d719b9b)``: the file name and the start of the model's sha256 (a changed model is another row)."""
    name = record.model_file or "?"
    return f"{name} ({record.model_sha256[:8]})" if record.model_sha256 else name


def _gpu(record) -> str:
    if record.gpu is None and record.compute_capability is None:
        return "no GPU (built on CPU)" if record.flavor == "tensorrt_rtx" else "?"
    return f"{record.gpu or '?'} sm{record.compute_capability or '?'}"


def _timing_files(folder: Path) -> list[int]:
    try:
        return [entry.stat().st_size for entry in os.scandir(folder / "timing")
                if entry.name.endswith(".cache") and not entry.name.startswith(".")]
    except OSError:
        return []


def _with_records(folder, command: str, run) -> int:
    """``run(records)`` with the records of the folder, or of the object-storage URL's store; a store that cannot be
    read or changed is one sentence, exit 1."""
    if not isinstance(folder, str):
        return run(read_records(folder))
    from pytest_trt.errors import TrtCompareError
    from pytest_trt.stores import remote, upkeep

    try:
        return run(upkeep.remote_records(folder))
    except (TrtCompareError, remote.RemoteUnavailable) as exc:
        print(f"{PROG} {command}: {exc}", file=sys.stderr)
        return 1


def list_command(folder, records: list, *, as_json: bool = False) -> int:
    remote = isinstance(folder, str)
    timing = [] if remote else _timing_files(folder)
    if as_json:
        print(json.dumps({"directory": str(folder), "plans": [r.as_dict() for r in records],
                          "plan_bytes": sum(r.size for r in records), "timing_caches": len(timing),
                          "timing_bytes": sum(timing)}, indent=1))
        return 0
    if not remote and not folder.exists():
        print(f"no engine cache at {str(folder)!r} (the folder does not exist): 0 plans")
        return 0
    rows = [("KEY", "MODEL", "PRECISION", "TENSORRT", "GPU", "SIZE", "BUILT", "LAST USE")]
    for r in sorted(records, key=lambda r: (-r.last_use, r.key)):
        size, used = size_text(r.size), _when_seconds(r.last_use)
        if r.problem:
            rows.append((r.key[:12], _model(r), f"DAMAGED: {r.problem}", "", "", size, "", used))
        else:
            built = f"{_when(r.built)} on {r.host}" if r.host else _when(r.built)
            rows.append((r.key[:12], _model(r), r.precision or "?", r.tensorrt, _gpu(r), size, built, used))
    if records:
        widths = [max(len(row[i]) for row in rows if row[3] or i < 2 or i > 4) for i in range(len(rows[0]))]
        for row in rows:
            if row[3] or row is rows[0]:
                print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
            else:   # a damaged entry: its reason spans the precision, TensorRT and GPU columns
                span = sum(widths[2:5]) + 4
                print("  ".join([row[0].ljust(widths[0]), row[1].ljust(widths[1]), row[2].ljust(span),
                                 row[5].ljust(widths[5]), row[6].ljust(widths[6]), row[7]]).rstrip())
    damaged = sum(1 for r in records if r.problem)
    print(f"{_plans(len(records))}, {size_text(sum(r.size for r in records))}"
          + (f" ({damaged} damaged; prune --damaged removes them)" if damaged else "")
          + ("" if remote else f"; timing caches: {len(timing)}, {size_text(sum(timing))}")
          + f"; in {str(folder)!r}")
    return 0


def _plans(count: int) -> str:
    return f"{count} plan" + ("" if count == 1 else "s")


def prune_command(folder, *, older_than: float | None, versions: list[str], max_size: int | None,
                  damaged: bool, dry_run: bool, records: list) -> int:
    remote = isinstance(folder, str)
    if not remote and not folder.exists():
        print(f"no engine cache at {str(folder)!r} (the folder does not exist): nothing to prune")
        return 0
    chosen = choose_prunes(records, now=time.time(), older_than=older_than, versions=versions, max_size=max_size,
                           damaged=damaged)
    total = sum(r.size for r in records)
    if not chosen:
        print(f"nothing to prune: {_plans(len(records))}, {size_text(total)}, none matches; in {str(folder)!r}")
        return 0
    if dry_run:
        freed = {r.key: r.size for r, _ in chosen}
    elif remote:
        from pytest_trt.stores.upkeep import remove_remote

        freed = remove_remote(folder, {r.key: r.plan_sha256 for r, _ in chosen})
    else:
        if not os.access(folder / "plans", os.W_OK | os.X_OK):
            print(f"{PROG} prune: cannot remove plans from {str(folder)!r} (read-only or not writable by this "
                  "user); run it where the folder is writable", file=sys.stderr)
            return 1
        from pytest_trt.backends.tensorrt.cache import EngineCache
        from pytest_trt.errors import TrtCompareError

        try:
            freed = EngineCache(folder).remove({r.key: None if r.problem else r.plan_sha256 for r, _ in chosen})
        except (OSError, TrtCompareError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            print(f"{PROG} prune: cannot remove plans from {str(folder)!r} ({why}); run it where the folder is "
                  "writable", file=sys.stderr)
            return 1
    verb = "would remove" if dry_run else "removed"
    for record, why in chosen:
        what = f"{_model(record)} {record.precision or '?'} {record.tensorrt}"
        if record.key in freed:
            print(f"{verb} {record.key[:12]} {what} ({why}): {size_text(freed[record.key])}")
        else:
            print(f"kept {record.key[:12]} {what}: rebuilt since it was listed")
    removed, freed_bytes = len(freed), sum(freed.values())
    print(f"{verb} {_plans(removed)}, {'would free' if dry_run else 'freed'} {size_text(freed_bytes)} "
          f"({freed_bytes} bytes); {_plans(len(records) - removed)} left, {size_text(total - freed_bytes)}")
    return 0
