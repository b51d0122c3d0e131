"""README.md as a new user reads it: every code block runs, in order, in one fresh folder.

- ```sh blocks: each line runs in bash there, with this environment's ``python`` and ``pytest`` first on PATH;
  it must exit 0, or the status its comment states ("exits 1"). ``pip install`` lines are not run (this
  environment has pytest-trt installed already), nor the Quick start block (CI runs it itself).
- ```python and ```toml blocks whose first line is a comment naming a file (``# tests/test_mlp.py``) are written
  to that file; other ```python blocks run as scripts, other ```toml blocks must parse.
- ```text blocks are output, not run. A block after ``<!-- requires a GPU -->`` runs only where an engine can.
"""
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from shared import ROOT

README = ROOT / "README.md"
BLOCK = re.compile(r"(?:^<!-- (?P<note>[^>]*) -->\n)?^(?P<indent> *)```(?P<lang>\w*)\n(?P<body>.*?)^(?P=indent)```$",
                   re.S | re.M)
FILE_COMMENT = re.compile(r"#\s*(?P<path>[\w./-]+\.(?:py|toml|ini|cfg))\s*$")


def blocks():
    """(line number, language, note before the fence, body, section heading) of each fenced block."""
    text = README.read_text()
    for match in BLOCK.finditer(text):
        body = "\n".join(line[len(match["indent"]):] for line in match["body"].splitlines())
        heading_at = text.rfind("\n## ", 0, match.start()) + 1
        heading = text[heading_at:text.index("\n", heading_at)]
        yield text.count("\n", 0, match.start()) + 1, match["lang"], match["note"], body, heading


def _engine_can_run() -> bool:
    from pytest_trt.backends.registry import AUTO_ORDER
    from pytest_trt.backends.tensorrt.probe import machine_reason

    return any(machine_reason(m) is None for m in AUTO_ORDER)


def test_every_code_block_runs(tmp_path):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    for name in [n for n in env if n.startswith("PYTEST_TRT_") or n == "PYTEST_ADDOPTS"]:
        del env[name]
    ran = {"sh": 0, "python": 0, "file": 0}
    gpu = _engine_can_run()
    for line_no, lang, note, body, heading in blocks():
        if heading == "## Quick start" or lang in ("text", ""):
            continue
        if note and "requires a GPU" in note and not gpu:
            continue
        first = body.splitlines()[0] if body else ""
        named = FILE_COMMENT.fullmatch(first)
        if named and lang in ("python", "toml"):
            path = tmp_path / named["path"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body + "\n")
            ran["file"] += 1
        elif lang == "toml":
            tomllib.loads(body)
        elif lang == "python":
            done = subprocess.run([sys.executable, "-c", body], cwd=tmp_path, env=env, capture_output=True, text=True,
                                  timeout=300)
            assert done.returncode == 0, f"README.md line {line_no}: python block failed:\n{done.stdout}{done.stderr}"
            ran["python"] += 1
        elif lang == "sh":
            for command in body.splitlines():
                if not command.strip() or command.lstrip().startswith(("#", "pip install")):
                    continue
                expected = int(m[1]) if (m := re.search(r"#.*\bexits (\d+)", command)) else 0
                done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True,
                                      timeout=600)
                assert done.returncode == expected, (f"README.md line {line_no}: {command!r} exited {done.returncode}, "
                                                     f"expected {expected}:\n{done.stdout[-4000:]}{done.stderr[-4000:]}")
                ran["sh"] += 1
        else:
            pytest.fail(f"README.md line {line_no}: a ```{lang} block; say how it runs in {__file__}")
    assert ran["sh"] >= 5 and ran["python"] >= 2 and ran["file"] >= 3, ran


def test_no_leftover_placeholders():
    text = README.read_text()
    assert not re.search(r"[A-Z]{3,}_PLACEHOLDER|\bTODO\b|\bXXX\b", text)


def test_options_reference_agrees_with_pytest_help():
    """Every flag in the README's reference table, with the ini key and environment variable --help names."""
    from pytest_trt.plugin.options import OPTIONS

    text = README.read_text()
    table = text[text.index("## Options, ini keys and environment variables"):]
    table = table[:table.index("\n## ")]
    rows = {line.split("|")[1].strip().strip("`").split("=")[0]: line for line in table.splitlines()
            if line.startswith("| `--")}
    assert sorted(rows) == sorted(option.flag for option in OPTIONS)
    for flag, ini, env, help_text in ((o.flag, o.ini, o.env, o.help) for o in OPTIONS):
        assert f"`{ini}" in rows[flag], (flag, ini)
        assert (f"`{env}`" in rows[flag]) if env else ("| - |" in rows[flag]), (flag, env)
        assert help_text in rows[flag], (flag, "the meaning column is the --help text")
