"""``python -m pytest_trt COMMAND ...``: the command line. Each command's module is imported only when it runs."""
from __future__ import annotations

import importlib
import sys

COMMANDS = {"cache": ("pytest_trt.cli.cache", "list or prune an engine cache folder (--trt-engine-dir)")}
USAGE = "usage: python -m pytest_trt COMMAND ...\n\ncommands:\n" + "".join(
    f"  {name:8s}{about}\n" for name, (_, about) in COMMANDS.items()) + (
    "\n'python -m pytest_trt COMMAND --help' describes one; also: python -m pytest_trt.selfcheck, "
    "python -m pytest_trt.demo")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        print(f"python -m pytest_trt: unknown command {argv[0]!r}; use one of: {', '.join(COMMANDS)} "
              "(python -m pytest_trt --help lists them)", file=sys.stderr)
        return 2
    return importlib.import_module(COMMANDS[argv[0]][0]).main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
