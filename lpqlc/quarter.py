"""The :class:`Quarter` type: a calendar quarter (Q1 = Jan–Mar … Q4 = Oct–Dec) and ranges of them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import total_ordering

__all__ = ["Quarter", "quarter_range", "parse_quarters"]

_QUARTER_RE = re.compile(r"^\s*(\d{4})\s*-?\s*[Qq]([1-4])\s*$")


@total_ordering
@dataclass(frozen=True, slots=True)
class Quarter:
    """A calendar quarter, e.g. ``Quarter(2021, 3)`` for July–September 2021 (printed ``2021Q3``)."""

    year: int
    q: int

    def __post_init__(self) -> None:
        if not 1 <= self.q <= 4:
            raise ValueError(f"quarter number must be 1..4, got {self.q}")
        if not 1900 <= self.year <= 2200:
            raise ValueError(f"quarter year {self.year} is out of range 1900..2200")

    @classmethod
    def parse(cls, text: str | Quarter) -> Quarter:
        """Parse ``'2021Q3'`` (also ``'2021-Q3'``, ``'2021q3'``)."""
        if isinstance(text, Quarter):
            return text
        m = _QUARTER_RE.match(str(text))
        if not m:
            raise ValueError(f"not a quarter: {text!r} (expected YYYYQn, e.g. 2021Q3)")
        return cls(int(m.group(1)), int(m.group(2)))

    @classmethod
    def of(cls, when: date | datetime) -> Quarter:
        """The quarter holding a date or datetime."""
        return cls(when.year, (when.month - 1) // 3 + 1)

    @property
    def index(self) -> int:
        """Quarters since 0000Q1; differences of indices count quarters."""
        return self.year * 4 + self.q - 1

    @classmethod
    def from_index(cls, index: int) -> Quarter:
        """Inverse of :attr:`index`."""
        return cls(index // 4, index % 4 + 1)

    def __add__(self, n: int) -> Quarter:
        return Quarter.from_index(self.index + int(n))

    def __sub__(self, other: int | Quarter) -> Quarter | int:  # type: ignore[override]
        if isinstance(other, Quarter):
            return self.index - other.index
        return Quarter.from_index(self.index - int(other))

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Quarter):
            return NotImplemented
        return self.index < other.index

    def __str__(self) -> str:
        return f"{self.year}Q{self.q}"

    @property
    def months(self) -> tuple[int, int, int]:
        """The three calendar months (1–12)."""
        first = 3 * (self.q - 1) + 1
        return (first, first + 1, first + 2)

    @property
    def start(self) -> datetime:
        """First instant of the quarter, UTC."""
        return datetime(self.year, self.months[0], 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """Last instant of the quarter (inclusive, microsecond before the next quarter), UTC."""
        return (self + 1).start - timedelta(microseconds=1)

    @property
    def middle(self) -> datetime:
        """Midpoint of the quarter, UTC (the nominal datetime of quarterly products)."""
        return self.start + (((self + 1).start - self.start) / 2)

    def datetime_range(self) -> str:
        """RFC 3339 interval for STAC searches, e.g. ``2021-07-01T00:00:00Z/2021-09-30T23:59:59.999999Z``."""
        fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
        return f"{self.start.strftime('%Y-%m-%dT%H:%M:%SZ')}/{self.end.strftime(fmt)}"


def quarter_range(first: Quarter | str, last: Quarter | str) -> list[Quarter]:
    """All quarters from ``first`` to ``last``, both included."""
    a, b = Quarter.parse(first), Quarter.parse(last)
    if b < a:
        raise ValueError(f"quarter range {a}:{b} runs backwards")
    return [Quarter.from_index(i) for i in range(a.index, b.index + 1)]


def parse_quarters(spec: str) -> list[Quarter]:
    """Parse ``'2016Q1:2024Q4'``, ``'2021Q3'`` or a comma list of either into sorted unique quarters."""
    out: set[Quarter] = set()
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if ":" in part:
            a, b = part.split(":", 1)
            out.update(quarter_range(a, b))
        else:
            out.add(Quarter.parse(part))
    if not out:
        raise ValueError(f"no quarter in {spec!r}")
    return sorted(out)

