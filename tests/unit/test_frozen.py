"""``@frozen``: what ``@dataclass(frozen=True)`` makes of a class, generated on the first instance."""

from __future__ import annotations

import copy
import dataclasses
import pathlib
import pickle
import sys
import threading
from typing import Generic, TypeVar

import pytest

import swarmkeeper.domain
from swarmkeeper.domain.frozen import field_names, frozen, generate, is_pending

DOMAIN = pathlib.Path(swarmkeeper.domain.__path__[0])

ItemT = TypeVar("ItemT")


def make_class() -> type:
    @frozen
    class Item(Generic[ItemT]):
        name: str
        count: int = 0
        tags: tuple[str, ...] = dataclasses.field(default=())

    return Item


def test_a_class_is_pending_until_its_first_instance():
    # Given a @frozen class, Then nothing is generated yet
    item = make_class()
    assert is_pending(item) and not dataclasses.is_dataclass(item)
    # When the first instance is made, Then the class is a dataclass from then on
    first = item("a")
    assert not is_pending(item) and dataclasses.is_dataclass(item) and first.count == 0


def test_instances_behave_as_frozen_dataclass_instances():
    # Given a @frozen class
    item = make_class()
    # When instances are made, compared, hashed, copied, replaced
    one, two = item("a", 2), item(name="a", count=2)
    # Then they behave as instances of @dataclass(frozen=True)
    assert one == two and hash(one) == hash(two) and one != item("b")
    assert repr(one).endswith("Item(name='a', count=2, tags=())")
    assert copy.deepcopy(one) == one and dataclasses.replace(one, count=3) == item("a", 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.count = 5  # type: ignore[misc]
    with pytest.raises(TypeError, match="name"):
        item()
    assert field_names(item) == ("name", "count", "tags")


@frozen
class Pickled:
    name: str


def test_pickled_instances_come_back_equal():
    # Given an instance of a module-level @frozen class (pickle finds classes by name)
    instance = Pickled("a")
    # When pickled and loaded, Then equal
    assert pickle.loads(pickle.dumps(instance)) == instance


def test_field_names_generate_a_pending_class():
    item = make_class()
    assert field_names(item) == ("name", "count", "tags") and not is_pending(item)
    generate(item)  # a second generation is nothing
    assert item("x") == item("x")


def test_first_instances_from_many_threads_at_once_all_succeed():
    # Given a pending class and threads switching as often as Python lets them
    item = make_class()
    start, made, errors = threading.Barrier(8), [], []

    def first() -> None:
        start.wait()
        try:
            made.append(item("a", 1))
        except Exception as error:
            errors.append(error)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=first) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    # Then every thread got its instance and the methods were generated once
    assert errors == [] and len(made) == 8 and all(m == item("a", 1) for m in made)


@pytest.mark.parametrize(
    "body",
    [
        {"__init__": lambda self: None},
        {"__new__": lambda cls: object.__new__(cls)},
    ],
    ids=["own __init__", "own __new__"],
)
def test_a_class_with_its_own_construction_is_refused(body):
    with pytest.raises(TypeError, match="@frozen"):
        frozen(type("Odd", (), {"__annotations__": {"name": "str"}, **body}))


def test_a_subclass_of_a_dataclass_is_refused():
    base = dataclasses.dataclass(frozen=True)(type("Base", (), {"__annotations__": {"name": "str"}}))
    with pytest.raises(TypeError, match="derive"):
        frozen(type("Child", (base,), {"__annotations__": {"count": "int"}}))


def test_no_domain_record_is_generated_at_import():
    # Given the domain's modules, Then none writes @dataclass(frozen=True): its methods would be
    # generated on every cold start
    eager = [file.name for file in DOMAIN.glob("*.py") if "\n@dataclass(frozen=True)" in file.read_text()]
    assert eager == [], (
        "write @frozen (swarmkeeper.domain.frozen) for a domain record, not @dataclass(frozen=True)"
    )
