"""Pagination for the console's lists: a page of rows, and whether there is another."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

PAGE_SIZE = 50
# Deep offsets cost a scan each; nobody reads page 10,000 of a console list, filters are faster.
MAX_PAGE = 10_000


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list; `has_next` is known by asking the store for one row more."""

    items: tuple[T, ...]
    number: int
    size: int
    has_next: bool

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def offset(self) -> int:
        return offset(self.number, self.size)


def page_number(raw: str | None) -> int:
    """The page a query string asks for; anything unreadable is the first."""
    try:
        number = int(raw or "1")
    except ValueError:
        return 1
    return min(max(number, 1), MAX_PAGE)


def offset(number: int, size: int = PAGE_SIZE) -> int:
    return (number - 1) * size


def cut(rows: Sequence[T], number: int, size: int = PAGE_SIZE) -> Page[T]:
    """A page from rows fetched with `limit(size + 1)` at this page's offset."""
    return Page(tuple(rows[:size]), number, size, len(rows) > size)


def slice_page(rows: Sequence[T], number: int, size: int = PAGE_SIZE) -> Page[T]:
    """A page of a list already in memory."""
    start = offset(number, size)
    return cut(rows[start : start + size + 1], number, size)
