"""A table of kinds by name that fails loudly.

Every stage finds a kind (an action, a map type, an attach option, a built-in) by its name
through one of these. A name the table does not hold is a bug in ebpf-run, not in the spec:
the schema and the checker stop unknown names long before, so `lookup` raises UnknownKind
naming the kind and the nearest known one rather than letting a stage fall through.
"""

from __future__ import annotations

from typing import Dict, Generic, Iterator, Optional, Tuple, TypeVar

from runner.support.hints import did_you_mean

T = TypeVar("T")


class UnknownKind(LookupError):
    """Internal error: a stage met a kind its registry does not hold."""


class Registry(Generic[T]):
    def __init__(self, what: str):
        self.what = what  # "action", "map type", ...: for the error message
        self._items: Dict[str, T] = {}

    def register(self, name: str, item: T) -> T:
        if name in self._items:
            raise ValueError(f"{self.what} '{name}' is registered twice")
        self._items[name] = item
        return item

    def lookup(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            hint = did_you_mean(name, self._items)
            raise UnknownKind(f"internal error: unknown {self.what} '{name}'"
                              + (f" ({hint})" if hint else "")
                              + f"; known: {', '.join(self._items)}") from None

    def get(self, name: Optional[str]) -> Optional[T]:
        """The kind, or None: for the checker, which reports unknown user names itself."""
        return self._items.get(name) if name is not None else None

    def names(self) -> Tuple[str, ...]:
        return tuple(self._items)

    def values(self) -> Tuple[T, ...]:
        return tuple(self._items.values())

    def __getitem__(self, name: str) -> T:
        return self.lookup(name)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
