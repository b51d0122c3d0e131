"""Builder options: one typed, validated record (``BuildOptions``), parsed once where the text enters.

Given as ``--trt-build-options`` (ini ``trt_build_options``), a marker's ``build={...}`` or ``build_engine(build=...)``;
the engine backend receives the record (``None``: the builder's defaults) and only sets it on the builder.
Bad input is one ``SpecError`` sentence naming the option and the fix. ``converter`` is no builder setting: it
picks what converts the model to fp16/bf16 for strongly typed builds (``backends/convert.py``).
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

from pytest_trt.errors import SpecError

TACTIC_SOURCES = ("CUBLAS", "CUBLAS_LT", "CUDNN", "EDGE_MASK_CONVOLUTIONS", "JIT_CONVOLUTIONS")
HARDWARE_COMPATIBILITY = ("none", "ampere_plus", "same_compute_capability")
CONVERTERS = ("casts", "autocast")  # fp16/bf16 converters for strongly typed builds (backends/convert.py)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


@dataclasses.dataclass(frozen=True)
class BuildOptions:
    """Builder settings that change an engine; None means TensorRT's own default."""

    workspace: int | None = None                   # bytes (WORKSPACE memory pool limit)
    optimization_level: int | None = None          # 0..5
    tactic_sources: tuple[str, ...] | None = None  # e.g. ("EDGE_MASK_CONVOLUTIONS", "JIT_CONVOLUTIONS")
    hardware_compatibility: str = "none"
    version_compatible: bool = False
    converter: str | None = None                   # fp16/bf16 converter for strongly typed builds; None: default

    def key(self) -> dict:
        """The builder settings as a plain dict, as the engine cache key records them (the converter is recorded
        apart, only where a model is converted)."""
        fields = dataclasses.asdict(self)
        del fields["converter"]
        return fields


BUILD_KEYS = tuple(f.name for f in dataclasses.fields(BuildOptions))


def parse_build_options(value, where: str = "trt_compare build") -> BuildOptions:
    """From a marker dict or an ini string (``"workspace=1G optimization_level=3 tactic_sources=A,B"``);
    None or "" are the defaults, a ``BuildOptions`` is returned as it is. ``where`` opens every error."""
    if value is None or value == "":
        return BuildOptions()
    if isinstance(value, BuildOptions):
        return value
    if isinstance(value, str):
        items = {}
        for token in value.replace(";", " ").split():
            key, sep, raw = token.partition("=")
            if not sep:
                raise SpecError(f"{where} {token!r} is not key=value; write e.g. 'workspace=1G optimization_level=3'")
            items[key.strip()] = raw.strip()
        value = items
    if not isinstance(value, Mapping):
        raise SpecError(f"{where}={value!r} must be a dict, e.g. build={{'workspace': '1G'}}")
    fields = {}
    for key, raw in value.items():
        if key not in BUILD_KEYS:
            raise SpecError(f"{where} has unknown option {key!r}; valid options are: {', '.join(BUILD_KEYS)}")
        fields[key] = _build_value(key, raw, where)
    return BuildOptions(**fields)


def _build_value(key: str, raw, where: str):
    if key == "workspace":
        if isinstance(raw, int) and not isinstance(raw, bool) and raw > 0:
            return raw
        match = re.fullmatch(r"(\d+)\s*([kmgKMG]?)i?[bB]?", str(raw).strip())
        if not match or int(match.group(1)) == 0:
            raise SpecError(f"{where} workspace={raw!r} is not a positive size; use bytes or e.g. '512M', '2G'")
        return int(match.group(1)) * _UNITS[match.group(2).lower()]
    if key == "optimization_level":
        try:
            level = int(raw)
        except (TypeError, ValueError):
            level = -1
        if isinstance(raw, bool) or not 0 <= level <= 5:
            raise SpecError(f"{where} optimization_level={raw!r} must be an integer from 0 to 5 (TensorRT's default is 3)")
        return level
    if key == "tactic_sources":
        names = raw.split(",") if isinstance(raw, str) else list(raw) if isinstance(raw, (list, tuple)) else None
        if names is None:
            raise SpecError(f"{where} tactic_sources={raw!r} must be a list or comma-separated names")
        names = tuple(n.strip().upper() for n in names if n.strip())
        bad = [n for n in names if n not in TACTIC_SOURCES]
        if bad:
            raise SpecError(f"{where} tactic_sources has unknown source(s) {', '.join(bad)}; "
                            f"valid: {', '.join(TACTIC_SOURCES)}")
        return names
    if key == "hardware_compatibility":
        text = str(raw).lower()
        if text not in HARDWARE_COMPATIBILITY:
            raise SpecError(f"{where} hardware_compatibility={raw!r} must be one of: {', '.join(HARDWARE_COMPATIBILITY)}")
        return text
    if key == "version_compatible":
        if isinstance(raw, bool):
            return raw
        if str(raw).lower() in ("1", "true", "yes", "on"):
            return True
        if str(raw).lower() in ("0", "false", "no", "off"):
            return False
        raise SpecError(f"{where} version_compatible={raw!r} must be true or false")
    if key == "converter":
        text = str(raw).lower()
        if text not in CONVERTERS:
            raise SpecError(f"{where} converter={raw!r} is not a converter; use casts (pytest-trt's casts, the "
                            "default) or autocast (NVIDIA ModelOpt AutoCast, pip install 'pytest-trt[autocast]')")
        return text
    raise AssertionError(key)


def merge_build_options(base: BuildOptions | None, override: BuildOptions) -> BuildOptions:
    """Marker options over ini options (``base``; None: none given): fields the marker leaves at their default
    keep the ini value."""
    default = BuildOptions()
    return dataclasses.replace(base or default, **{k: getattr(override, k) for k in BUILD_KEYS
                                                   if getattr(override, k) != getattr(default, k)})
