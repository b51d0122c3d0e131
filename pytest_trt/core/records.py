"""Base classes of pytest-trt's data records: ``repr``, ``==``, ``replace`` and ``as_dict`` from ``__slots__``.

Why not ``dataclasses``: ``@dataclass`` compiles each class's ``__init__``, ``__repr__`` and ``__eq__``
from generated source whenever its module is imported, 0.5-1 ms per class on Python 3.11. The 16
records a session with marked tests loads cost 11-13 ms that way, 60% of pytest-trt's import time
(``benchmarks/suite_overhead.py`` counts every millisecond). Subclasses name their fields in
``__slots__`` (in order) and write ``__init__``; the rest is here.
"""
from __future__ import annotations

set_field = object.__setattr__  # how a FrozenRecord.__init__ assigns its fields


class Record:
    """A mutable record: equal when of one class with equal fields; unhashable, like a dataclass."""

    __slots__ = ()
    _compared: tuple[str, ...] | None = None   # fields that == and hash look at; None: all of them

    def _key(self) -> tuple:
        return tuple(getattr(self, name) for name in (self._compared or self.__slots__))

    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._key() == other._key()

    __hash__ = None

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"

    def replace(self, **changes):
        """A copy with ``changes`` applied (as ``dataclasses.replace``)."""
        unknown = set(changes).difference(self.__slots__)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field {', '.join(sorted(unknown))}; "
                            f"its fields are: {', '.join(self.__slots__)}")
        copy = object.__new__(type(self))
        for name in self.__slots__:
            set_field(copy, name, changes[name] if name in changes else getattr(self, name))
        return copy

    def __getstate__(self) -> tuple:   # pickling: fields in __slots__ order, restored without __setattr__
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setstate__(self, state: tuple) -> None:
        for name, value in zip(self.__slots__, state):
            set_field(self, name, value)

    def as_dict(self) -> dict:
        """Fields by name, nested records, lists, tuples and dicts converted too (as ``dataclasses.asdict``)."""
        return {name: _plain(getattr(self, name)) for name in self.__slots__}


class FrozenRecord(Record):
    """An immutable, hashable record (a frozen dataclass). ``__init__`` assigns with ``set_field(self, name, value)``."""

    __slots__ = ()

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is immutable; make a changed copy with .replace({name}=...)")

    def __delattr__(self, name):
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __hash__(self) -> int:
        return hash(self._key())


def _plain(value):
    if isinstance(value, Record):
        return value.as_dict()
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
