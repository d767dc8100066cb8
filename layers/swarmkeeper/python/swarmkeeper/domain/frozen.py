"""``@frozen``: a frozen dataclass whose methods are generated when its first instance is made.

``dataclasses`` writes and compiles ``__init__``, ``__repr__``, ``__eq__``, ``__hash__`` and the frozen
``__setattr__``/``__delattr__`` of a class when the class is defined. The domain has about a hundred
such classes and a cold start of any function imports most of them, while one invocation makes
instances of a handful: generating the methods of a class on its first instance takes that work off
every cold start (``make bench``, figure ``cold_import_ratio``). Once generated, the class is exactly
what ``@dataclass(frozen=True)`` makes of it.

The first instance is caught in ``__new__`` (``dataclasses`` never writes ``__new__``): it generates
the methods and hands over to a plain ``__new__``, and Python then calls the generated ``__init__``.
Until then the class has no dataclass fields: ask ``record_fields`` or ``field_names`` for them, not
``__dataclass_fields__``.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any, TypeVar, dataclass_transform

ClassT = TypeVar("ClassT", bound=type)

# Lambda runs one invocation at a time; the lab runs many functions' threads in one process.
_generating = threading.Lock()


def _first_new(cls: type, *args: Any, **kwargs: Any) -> Any:
    generate(cls)
    return object.__new__(cls)


def _new(cls: type, *args: Any, **kwargs: Any) -> Any:
    # object.__new__ itself refuses the arguments once a class has had a __new__ of its own
    return object.__new__(cls)


def generate(cls: type) -> None:
    """Generate the dataclass methods of ``cls`` now, if its first instance is still to come."""
    with _generating:
        if cls.__dict__.get("__new__") is _first_new:
            dataclasses.dataclass(frozen=True)(cls)
            type.__setattr__(cls, "__new__", _new)


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field,))
def frozen(cls: ClassT) -> ClassT:
    """``@dataclass(frozen=True)``, its methods generated on the first instance (see the module doc)."""
    inherited_new: object = cls.__new__
    if inherited_new is not object.__new__ or "__init__" in cls.__dict__:
        raise TypeError(f"{cls.__name__}: a @frozen class has object's __new__ and the generated __init__")
    if any(dataclasses.is_dataclass(base) or "__new__" in base.__dict__ for base in cls.__mro__[1:-1]):
        raise TypeError(f"{cls.__name__}: a @frozen class does not derive from another dataclass")
    type.__setattr__(cls, "__new__", _first_new)
    return cls


def record_fields(cls: type) -> tuple[dataclasses.Field[Any], ...]:
    """``dataclasses.fields(cls)``, its methods generated first if still pending."""
    generate(cls)
    return dataclasses.fields(cls)


def field_names(cls: type) -> tuple[str, ...]:
    """The dataclass field names of ``cls``, in order."""
    return tuple(field.name for field in record_fields(cls))


def is_pending(cls: type) -> bool:
    """True while ``cls`` has had no instance (its methods not generated yet)."""
    return cls.__dict__.get("__new__") is _first_new
