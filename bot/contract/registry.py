"""Finding operations: every module-level `Operation` (and `Resource`) in the given packages and
modules, so adding an operation is adding a module, with no list to edit.

    operations = load(["handlers", "mycompany.kubemaint_ops"])
    operations["drain"].usage        # "drain NODE [--delete-emptydir-data] ..."
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Iterable, Iterator, Mapping
from types import ModuleType

from bot.contract.operation import Operation
from bot.contract.resources import Resource


class Registry(Mapping[str, Operation]):
    """The loaded operations by name, in order of name, and the declared resources."""

    def __init__(self, operations: Iterable[Operation], resources: Iterable[Resource]) -> None:
        self._by_name: dict[str, Operation] = {}
        for op in sorted(operations, key=lambda op: op.name):
            other = self._by_name.get(op.name)
            if other is not None and other is not op:
                raise ValueError(f"two operations are named {op.name!r}: {other.words!r} and {op.words!r}")
            self._by_name[op.name] = op
        shapes: dict[tuple[str, ...], Operation] = {}
        for op in self._by_name.values():
            shape = tuple(getattr(token, "word", "ARG") for token in op.grammar.phrase)
            if shape in shapes:
                raise ValueError(f"operations {shapes[shape].name!r} and {op.name!r} have the same phrase {op.words!r}")
            shapes[shape] = op
        self.resources: dict[str, Resource] = {}
        for resource in resources:
            self.resources.setdefault(resource.name, resource)
        for op in self._by_name.values():
            missing = [name for name in op.needs if name not in self.resources]
            if missing:
                raise ValueError(f"operation {op.name!r} needs undeclared resources: {', '.join(missing)}")

    def __getitem__(self, name: str) -> Operation:
        return self._by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def names(self) -> list[str]:
        return list(self._by_name)

    def starting_with(self, word: str) -> list[Operation]:
        """The operations whose phrase starts with the keyword `word`."""
        return [op for op in self.values() if op.grammar.keywords[0] == word]

    def needed_resources(self) -> list[str]:
        return sorted({name for op in self.values() for name in op.needs})


def load(names: Iterable[str]) -> Registry:
    """Import each named package (with all its submodules) or module and collect what it declares.
    Raises ImportError naming the module that failed."""
    operations: list[Operation] = []
    resources: list[Resource] = []
    for module in _modules(names):
        for value in vars(module).values():
            if isinstance(value, Operation):
                operations.append(value)
            elif isinstance(value, Resource):
                resources.append(value)
    return Registry(operations, resources)


def _modules(names: Iterable[str]) -> Iterator[ModuleType]:
    for name in names:
        module = importlib.import_module(name)
        yield module
        if hasattr(module, "__path__"):  # a package: every module in it, at any depth
            for info in pkgutil.walk_packages(module.__path__, prefix=f"{name}."):
                yield importlib.import_module(info.name)


BUILTIN = "handlers"  # the package of the operations that come with kubemaint


@functools.cache
def operations(extra: tuple[str, ...] = ()) -> Registry:
    """The built-in operations plus those in the `extra` modules (config: `operation_modules`)."""
    return load((BUILTIN, *extra))
