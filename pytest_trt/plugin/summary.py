"""What the terminal shows of pytest-trt: its header line, engine build progress, and the session summary.

The summary's facts are counted per check (``SessionSummary.add``) and merged across xdist workers as
plain JSON.
"""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from pytest_trt.core.records import Record
from pytest_trt.goldens.policy import shown_action, stronger


class SessionSummary(Record):
    """What the session's checks did to goldens and engines, counted; one per process, merged over xdist."""

    __slots__ = ("goldens", "known", "scanned", "engine_skips", "engine_runs", "engines", "build_seconds", "checks",
                 "records", "pending", "collected", "deselected", "shard")

    def __init__(self, known: set[str] | None = None, scanned: set[str] | None = None):
        self.goldens: dict[str, str] = {}            # npz path -> action
        self.known = set() if known is None else known          # golden folders of collected tests
        self.scanned = set() if scanned is None else scanned    # module folders to look for unused ones
        self.engine_skips: Counter = Counter()       # reason -> checks
        self.engine_runs: Counter = Counter()        # "backend precision" -> checks
        self.engines: Counter = Counter()            # built/loaded/rebuilt/uncached -> count
        self.build_seconds = 0.0
        self.checks = 0
        self.records: list = []                      # CheckRecord per check
        self.pending: list = []                      # checks of the test attempt under way, counted when it settles
        self.collected = 0                           # tests using trt_compare that were collected
        self.deselected = 0                          # of them, deselected (-k, -m, a shard plugin such as pytest-split)
        self.shard: str | None = None                # "group 2 of 4 (pytest-split)" where a shard plugin says so

    def add(self, result, record, events: list[dict]) -> None:
        """One finished check: its ``CheckResult``, its row (``CheckRecord``), the engine builds and loads it caused.

        Counted when its test's attempt settles, as a rerun plugin may yet replace the attempt; what is kept
        until then holds none of the result's arrays."""
        engine = None if result.engine_skipped else (f"{result.backend.get('backend')} {result.precision}"
                                                     + (" (CPU preview)" if result.preview else ""))
        self.pending.append((record, events, result.golden_actions, result.engine_skipped, engine))

    def settle(self, replaced: bool = False) -> None:
        """Count the checks added since the last settle; of an attempt a rerun replaced, only what it did to files
        (goldens written, engines built), not its verdicts."""
        for record, events, actions, skipped, engine in self.pending:
            for event in events:
                self.record_engine(event["status"], event["seconds"])
            for action in actions:
                if not replaced or action.action in ("created", "updated"):
                    self.record_golden(action.path, action.action, record.tolerated)
            if replaced:
                continue
            self.checks += 1
            if skipped:
                self.engine_skips[skipped] += 1
            else:
                self.engine_runs[engine] += 1
            self.records.append(record)
        self.pending = []

    def add_collected(self, folder: tuple[str, ...], module_depth: int, scan: bool) -> None:
        """A collected check's golden folder (in use); with ``scan``, its module's folder is searched for unused
        ones (not when only some of the module's tests were named on the command line)."""
        self.known.add("/".join(folder))
        self.collected += 1
        if scan:
            self.scanned.add("/".join(folder[:module_depth]))

    def record_engine(self, status: str, seconds: float) -> None:
        self.engines[status] += 1
        self.build_seconds += seconds

    def record_golden(self, path: str, action: str, tolerated: bool = False) -> None:
        action = shown_action(action, tolerated)
        old = self.goldens.get(path)
        if stronger(action, old):
            self.goldens[path] = action

    def to_json(self) -> dict:
        return {"goldens": self.goldens, "known": sorted(self.known), "scanned": sorted(self.scanned),
                "engine_skips": dict(self.engine_skips), "engine_runs": dict(self.engine_runs), "checks": self.checks,
                "engines": dict(self.engines), "build_seconds": self.build_seconds,
                "records": [r.to_json() for r in self.records], "collected": self.collected,
                "deselected": self.deselected, "shard": self.shard}

    def merge_json(self, data: dict) -> None:
        for path, action in data.get("goldens", {}).items():
            self.record_golden(path, action)
        self.known.update(data.get("known", ()))
        self.scanned.update(data.get("scanned", ()))
        self.engine_skips.update(data.get("engine_skips", {}))
        self.engine_runs.update(data.get("engine_runs", {}))
        self.checks += data.get("checks", 0)
        self.engines.update(data.get("engines", {}))
        self.build_seconds += data.get("build_seconds", 0.0)
        # every xdist worker collects (and deselects) the whole suite: the same counts, not a sum
        self.collected = max(self.collected, data.get("collected", 0))
        self.deselected = max(self.deselected, data.get("deselected", 0))
        self.shard = self.shard or data.get("shard")
        from pytest_trt.reports.rows import CheckRecord

        self.records.extend(CheckRecord.from_json(r) for r in data.get("records", ()))

    def unused(self, golden_dir: Path) -> list[str]:
        """Golden folders under the collected modules' folders that no collected test uses."""
        found = set()
        root = str(golden_dir)
        known = self.known
        for module in self.scanned:  # os.walk: several times faster than Path.rglob on thousands of goldens
            for folder, dirs, files in os.walk(os.path.join(root, module)):
                rel = os.path.relpath(folder, root).replace(os.sep, "/")
                # a collected test's folder and everything in it are in use: not listed, not entered
                dirs[:] = [d for d in dirs if f"{rel}/{d}" not in known]
                if rel not in known and any(f.endswith(".json") for f in files):
                    found.add(rel)

        def within(folder: str, folders) -> bool:
            parts = folder.split("/")
            return any("/".join(parts[:i]) in folders for i in range(1, len(parts)))
        # a folder inside a used one is in use; one inside an unused one (its call2/) goes with it
        return sorted(f for f in found if f not in known and not within(f, known) and not within(f, found))

    def lines(self, golden_dir: Path | None, verbose: bool) -> list[str]:
        """The terminal summary."""
        out = []
        if self.deselected:
            shard = f" ({self.shard})" if self.shard else ""
            out.append(f"this run's view{shard}: {self.collected - self.deselected} of {self.collected} collected "
                       f"pytest-trt tests ran ({self.deselected} deselected by -k, -m or a shard plugin); the goldens "
                       "of deselected tests stay in use")
        counts = Counter(self.goldens.values())
        unused = self.unused(golden_dir) if golden_dir is not None else []
        if self.goldens or unused:
            parts = [f"{counts[a]} {a}" for a in ("created", "updated", "unchanged", "missing", "failed") if counts[a]]
            if counts["would fail"]:
                parts.append(f"{counts['would fail']} would fail on tolerances alone (passed under "
                             "--trt-suggest-tolerances)")
            if counts["model changed"]:
                parts.append(f"{counts['model changed']} passed though recorded from another model (--update-golden "
                             "records them from this one)")
            if counts["census changed"]:
                parts.append(f"{counts['census changed']} passed though their engine's layer precisions changed "
                             "(--update-golden records the new census)")
            out.append(f"goldens in {golden_dir}: " + ", ".join(parts + ([f"{len(unused)} unused"] if unused else [])))
            for action in ("created", "updated", "missing", "failed", "would fail", "model changed", "census changed") + \
                    (("unchanged",) if verbose else ()):
                for path in sorted(p for p, a in self.goldens.items() if a == action):
                    out.append(f"  {action}: {path}")
            for folder in unused:
                out.append(f"  unused: {folder}/ (no collected test uses it; delete it if its test is gone)")
        for key, n in sorted(self.engine_runs.items()):
            out.append(f"engine checks run: {n} ({key})")
        if self.engines:
            parts = [f"{self.engines[s]} {s}" for s in ("built", "loaded", "rebuilt", "uncached") if self.engines[s]]
            out.append(f"engines: {', '.join(parts)}; {self.build_seconds:.1f} s building")
        for reason, n in sorted(self.engine_skips.items()):
            out.append(f"engine side skipped in {n} check{'s' if n != 1 else ''}: {reason}; "
                       "reference outputs were still checked against goldens")
        return out


def check_rows(records: list, full: bool) -> list[str]:
    """The per-check table: every check (full) or only those that need attention (compact)."""
    checks = sorted(records, key=lambda r: (r.test, r.precision))
    if not checks:
        return []
    from pytest_trt.comparison.report import budget_text, column

    failed = [r for r in checks if not r.passed and not r.tolerated]
    tolerated = [r for r in checks if r.tolerated]   # pytest passed them: --trt-suggest-tolerances
    drifted = [r for r in checks if r.drift]
    close = [r for r in checks if r.close]
    head = (f"checks: {len(checks)}, {len(checks) - len(failed) - len(tolerated)} passed, {len(failed)} failed, "
            + (f"{len(tolerated)} would fail on tolerances alone (passed under --trt-suggest-tolerances), "
               if tolerated else "")
            + f"{len(close)} close to tolerance, {len(drifted)} drifted")
    shortfalls = [r for r in checks if r.precision_shortfall]
    if shortfalls:
        head += f", {len(shortfalls)} ran another precision than asked"
    shown = checks if full else [r for r in checks if not r.passed or r.drift or r.close or r.precision_shortfall]
    if not shown:
        return [head + " (--trt-summary full or -v lists every check)"]
    from pytest_trt.reports.census import census_short

    table = [("test", "prec", "backend", "worst output", "max abs", "max rel", "budget", "golden", "engine", "layers",
              "status")]
    for r in shown:
        worst = r.worst
        engine = "-" if r.cache is None else ("cache hit" if r.cache == "loaded" else f"{r.cache} {r.build_seconds:.1f} s")
        status = ("would fail" if r.tolerated else "FAILED") if not r.passed else \
            ("drift" if r.drift else ("close" if r.close else "ok"))
        if r.passed and r.drift and r.close:
            status = "drift, close"
        table.append((r.test, r.precision, r.backend,
                      f"{worst.output} ({worst.comparison})" if worst else "-",
                      column(worst.max_abs) if worst else "-", column(worst.max_rel) if worst else "-",
                      budget_text(worst.budget) if worst else "-", r.golden, engine,
                      census_short(r.census, r.precision), status))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = [head, *("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table)]
    for r in drifted:
        lines.extend(f"  drift: {r.test} [{r.precision}]: {d}" for d in r.drift)
    lines.extend(f"  precision: {r.test} [{r.precision}]: {r.precision_shortfall}" for r in shortfalls)
    lines.extend(f"  diverges: {r.test} [{r.precision}]: first at {r.first_diverging}" for r in checks
                 if r.first_diverging)
    return lines


def header_line(state) -> str:
    """The line pytest-trt adds to pytest's header."""
    from pytest_trt import __version__
    from pytest_trt.comparison import kernel

    # The engine is chosen at the first check, not here: choosing imports TensorRT and CUDA, which a
    # session without trt_compare tests must not pay for. The summary at the end says what ran.
    engine = state.options.backend
    if engine != "none":
        engine += " (chosen at the first check; the pytest-trt summary says what ran)"
    update = " (updating)" if state.options.update_golden else ""
    return (f"pytest-trt {__version__}: goldens in {state.options.golden_dir}{update}; engine under test: {engine}; "
            f"comparator: {kernel.describe()}")


def terminal_progress(config):
    """Progress lines through pytest's terminal writer, whole lines, with output capture suspended."""
    import contextlib

    def write(line: str) -> None:
        if config.pluginmanager.get_plugin("terminalreporter") is None:
            return
        capture = config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
            writer = config.get_terminal_writer()
            if writer.width_of_current_line:  # after -q's progress dots: a line of our own
                writer.line()
            writer.line(line)
    return write


def write_summary(terminalreporter, config, state) -> None:
    """The pytest-trt section of the terminal summary, and the tolerance suggestions when asked for."""
    verbose = config.getoption("verbose") > 0
    lines = check_rows(state.summary.records, full=verbose or state.options.summary == "full")
    lines += state.summary.lines(state.options.golden_dir, verbose=verbose)
    if lines:
        terminalreporter.ensure_newline()  # else the first line after the header is a blank one
        terminalreporter.section("pytest-trt")
        for line in lines:
            terminalreporter.write_line(line)
    if state.options.suggest and state.summary.records:
        from pytest_trt.reports.suggestions import suggestion_lines

        terminalreporter.section("pytest-trt tolerance suggestions")
        for line in suggestion_lines(state.summary.records):
            terminalreporter.write_line(line)
