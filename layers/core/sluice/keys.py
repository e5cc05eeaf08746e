"""Keyset page ranges: cutting a table into pages by its key, read from the key's index."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .source import _after, decode_key, encode_key
from .sql import q, qualified


@dataclass(frozen=True, slots=True)
class PageRange:
    """Rows with lo < key <= hi (None: open end). Keys are JSON-safe (see source.encode_key)."""

    page: int
    lo: list | None
    hi: list | None

    def to_dict(self) -> dict:
        return {"page": self.page, "lo": self.lo, "hi": self.hi}

    @classmethod
    def from_dict(cls, d: dict) -> PageRange:
        return cls(int(d["page"]), d.get("lo"), d.get("hi"))


def cut_pages(
    raw_conn, database: str, table: str, key: Sequence[str], page_size: int
) -> list[PageRange]:
    """Cut `table` into pages of `page_size` rows along `key`.

    Each boundary is the key of the page's last row: found by an index-ordered
    `LIMIT 1 OFFSET page_size-1` that starts at the previous boundary, so the server walks
    only the key's index, sparse keys give even pages, and data pages themselves are read by
    keyset, never by OFFSET. An empty table has no pages.
    """
    cols = ", ".join(q(k) for k in key)
    order = cols
    src = qualified(database, table)
    bounds: list[list] = []
    with raw_conn.cursor() as cur:
        last: list | None = None
        while True:
            if last is None:
                where, params = "TRUE", []
            else:
                where, params = _after(key, decode_key(last))
            cur.execute(
                f"SELECT {cols} FROM {src} WHERE {where} ORDER BY {order} LIMIT 1 OFFSET %s",  # noqa: S608
                [*params, page_size - 1],
            )
            row = cur.fetchone()
            if row is None:
                break
            last = encode_key(row)
            bounds.append(last)
        if last is None:
            cur.execute(f"SELECT 1 FROM {src} LIMIT 1")  # noqa: S608
            if cur.fetchone() is None:
                return []
        else:
            where, params = _after(key, decode_key(last))
            cur.execute(f"SELECT 1 FROM {src} WHERE {where} LIMIT 1", params)  # noqa: S608
            if cur.fetchone() is not None:
                bounds.append(None)  # a last, partial page with an open upper end
    pages = []
    lo = None
    for i, hi in enumerate(bounds):
        pages.append(PageRange(i + 1, lo, hi))
        lo = hi
    if not pages:
        pages.append(PageRange(1, None, None))
    return pages
