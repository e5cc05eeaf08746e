"""Pages a slice at a time: the transform and load stages hold one slice of a page, never the
page, and make exactly what they would make of the whole page (lines, rejected rows in page
order, keys object, checksums)."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sluice import checksum, stages, staging
from sluice.contract import parse
from sluice.transform import item_plan, page_kinds, to_dynamodb_items
from sluice.types import Column, arrow_schema

MAX_ITEM = 400 * 1024


def col(name: str, data_type: str, nullable: bool = True) -> Column:
    return Column.from_information_schema(
        name=name,
        data_type=data_type,
        column_type=data_type,
        nullable=nullable,
        precision=None,
        scale=None,
        datetime_precision=None,
        charset="utf8mb4",
        is_json=False,
    )


COLUMNS = [
    col("id", "int", nullable=False),
    col("org", "varchar"),
    col("email", "varchar"),
    col("note", "varchar"),
]
SCHEMA = arrow_schema(COLUMNS)
CONTRACT = parse(
    {
        "version": 1,
        "source": {"database": "shop"},
        "target": {
            "kind": "dynamodb",
            "tables": {"shop": {"partition_key": "PK", "sort_key": "SK"}},
        },
        "tables": [
            {
                "source": "members",
                "key": ["id"],
                # A repeated (org, email) is a repeated key; an empty org an empty key.
                "target": {"table": "shop", "partition_key": "{org}", "sort_key": "E#{email}"},
            }
        ],
    }
)
PLAN = item_plan(
    CONTRACT, CONTRACT.table("members"), SCHEMA.names, page_kinds(SCHEMA.empty_table())
)

# Few distinct values, so keys repeat within and across slices; NULL and empty keys; notes
# that put an item over 400 KB (refused, though its key is a good one).
ROWS = st.lists(
    st.fixed_dictionaries(
        {
            "org": st.sampled_from(["a", "b", "", None]),
            "email": st.sampled_from(["x", "y", None]),
            "note": st.sampled_from(["n", None, "z" * MAX_ITEM]),
        }
    ),
    max_size=14,
)


def staged(rows: list[dict], batch: int = 4) -> bytes:
    """A page as the extract stage stages it (Arrow IPC, stored batches of `batch` rows)."""
    page = pa.Table.from_pylist([{"id": i, **r} for i, r in enumerate(rows)], schema=SCHEMA)
    body, _ = staging.write_arrow(SCHEMA, page.to_batches(max_chunksize=batch))
    return body


def whole_page(body: bytes, user=None):
    """What the transform stage made of the whole page at once, before pages were sliced."""
    page, rejected = staging.read_arrow(body), staging.NO_REJECTS
    if user is not None:
        page, rejected = user(page)
    lines, refused, keys = to_dynamodb_items(page, PLAN, with_keys=True)
    keys_body, _ = staging.write_arrow(keys.schema, keys.to_batches())
    buf = staging.lines_buffer(lines)
    return buf, keys_body, len(lines), rejected + refused, checksum.lines_sum(buf)


def sliced(body: bytes, user=None):
    items = stages._page_items(body, lambda schema: PLAN, user)
    return gzip.decompress(items.body), items.keys, items.n, items.rejected, items.lines_sum


@settings(max_examples=150, deadline=None)
@given(ROWS, st.integers(1, 5), st.integers(1, 5))
def test_a_page_made_a_slice_at_a_time_gives_what_the_whole_page_gives(rows, size, batch):
    body = staged(rows, batch)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(stages, "SLICE_ROWS", size)
        assert sliced(body) == whole_page(body)


def test_a_key_in_two_slices_is_refused_where_it_repeats_in_page_order(monkeypatch):
    monkeypatch.setattr(stages, "SLICE_ROWS", 2)
    rows = [
        {"org": "a", "email": "x", "note": "first"},
        {"org": "a", "email": "y", "note": "z" * MAX_ITEM},  # refused: too big
        {"org": None, "email": "x", "note": "no org"},  # refused: NULL key
        {"org": "a", "email": "x", "note": "again"},  # repeats row 0, two slices on
        {"org": "a", "email": "y", "note": "small"},  # repeats row 1, though it was refused
        {"org": "b", "email": "x", "note": "fine"},
    ]
    lines, _, n, rejected, _ = sliced(staged(rows))
    assert [json.loads(x)["Item"]["note"]["S"] for x in lines.splitlines()] == ["first", "fine"]
    assert n == 2
    assert rejected.keys == [{"id": 1}, {"id": 2}, {"id": 3}, {"id": 4}]
    assert rejected.reasons[0] == "item over 400 KB"
    assert "NULL" in rejected.reasons[1]
    assert all(r.startswith("duplicate target key") for r in rejected.reasons[2:])


def test_the_contract_transform_sees_the_whole_page_then_items_are_sliced(monkeypatch):
    monkeypatch.setattr(stages, "SLICE_ROWS", 2)
    seen_rows = []

    def user(page: pa.Table):
        seen_rows.append(page.num_rows)
        keep = pa.array([i % 3 != 1 for i in range(page.num_rows)])
        dropped = page.filter(pc.invert(keep)).select(["id"]).to_pylist()
        return page.filter(keep), staging.Rejected(dropped, ["dropped"] * len(dropped))

    rows = [{"org": "a", "email": "x" if i % 2 else "y", "note": str(i)} for i in range(9)]
    body = staged(rows)
    assert sliced(body, user) == whole_page(body, user)
    assert seen_rows == [9, 9]  # once sliced, once whole (the reference)


def test_an_empty_page_gives_no_items_and_the_keys_object_of_no_rows():
    body = staged([])
    assert sliced(body) == whole_page(body)


# ---------------------------------------------------------------- reading and writing


@given(st.integers(0, 30), st.integers(1, 7), st.integers(1, 9))
def test_iter_arrow_gives_the_page_in_order_in_slices_of_at_most_n_rows(rows, batch, n):
    body = staged([{"org": "a", "email": str(i), "note": None} for i in range(rows)], batch)
    parts = list(staging.iter_arrow(body, n))
    assert all(0 < p.num_rows <= n for p in parts)
    assert pa.concat_tables([SCHEMA.empty_table(), *parts]).equals(staging.read_arrow(body))
    assert staging.arrow_schema_of(body) == SCHEMA


@given(st.lists(st.binary(max_size=3000), max_size=40), st.integers(1, 2**32 - 1))
def test_gzip_writer_makes_the_bytes_gzip_compress_makes(pieces, mtime):
    # (mtime 0 is a special case of gzip.compress, which hands it to zlib: never a clock time)
    w = staging.GzipWriter(mtime=mtime)
    for p in pieces:
        w.write(memoryview(p))
    assert w.getvalue() == gzip.compress(b"".join(pieces), staging.GZIP_LEVEL, mtime=mtime)


@given(
    st.lists(st.binary(min_size=0, max_size=30).map(lambda b: b.replace(b"\n", b"")), max_size=60),
    st.integers(1, 7),
    st.integers(1, 50),
)
def test_gunzipped_lines_come_in_lists_of_whole_multiples(lines, per, chunk):
    body = gzip.compress(b"".join(x + b"\n" for x in lines))
    parts = list(staging.iter_gunzip_lines(body, per, chunk))
    assert [x for p in parts for x in p] == staging.gunzip_lines(body)
    assert all(len(p) % per == 0 for p in parts[:-1])


def test_lines_view_holds_the_bytes_lines_buffer_copies():
    lines = pa.array([b"a\n", b"", b"bc\n", b"d\n"]).slice(1, 3)
    assert staging.lines_view(lines).to_pybytes() == staging.lines_buffer(lines) == b"bc\nd\n"


# ---------------------------------------------------------------- checksums a slice at a time

KEYED = pa.schema([("k", pa.string()), ("n", pa.int64()), ("v", pa.float64())])


def keyed(rows: list[tuple]) -> bytes:
    page = pa.Table.from_pylist(
        [dict(zip(KEYED.names, r, strict=True)) for r in rows], schema=KEYED
    )
    return staging.write_arrow(KEYED, page.to_batches(max_chunksize=3))[0]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["a", "B", "b"]), st.integers(0, 3), st.floats(0, 1))),
    st.integers(1, 4),
    st.data(),
)
def test_checksums_summed_a_slice_at_a_time_equal_the_whole_pages(rows, size, data):
    body, key = keyed(rows), ["k", "n"]
    page = staging.read_arrow(body)
    refused = data.draw(st.lists(st.sampled_from(rows), max_size=3)) if rows else []
    refused_keys = [{"k": r[0], "n": r[1]} for r in refused]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(stages, "SLICE_ROWS", size)
        found, ordered = stages._staged_sum(body, key)
        assert found == checksum.page_sum(page)
        assert ordered == (checksum.key_ordered(page, key).equals(page))
        assert stages._rows_written_sum(
            body, key, refused_keys, found, ordered
        ) == checksum.rows_written_sum(page, key, refused_keys)


def test_rows_in_a_case_insensitive_order_are_not_in_key_order():
    # MySQL's utf8mb4_general_ci reads a, B, c; Arrow orders bytes: B, a, c.
    body = keyed([("a", 1, 0.0), ("B", 1, 0.0), ("c", 1, 0.0)])
    assert stages._staged_sum(body, ["k"])[1] is False
    assert stages._staged_sum(body, ["n", "k"])[1] is False
    assert stages._staged_sum(keyed([("B", 1, 0.0), ("a", 1, 0.0)]), ["k"])[1] is True


def test_item_lines_summed_a_slice_at_a_time_equal_the_whole_pages(monkeypatch):
    monkeypatch.setattr(stages, "SLICE_ROWS", 2)
    lines = [
        json.dumps({"Item": {"PK": {"S": f"P{i}"}, "SK": {"N": str(i)}}}).encode() for i in range(7)
    ]
    raw = b"".join(x + b"\n" for x in lines)
    body = gzip.compress(raw)
    found = stages._staged_lines_sum(body)
    assert found == checksum.lines_sum(raw)
    refused = [{"PK": "P1", "SK": "1"}, {"PK": "P6", "SK": "6"}]
    for keys in ([], refused):
        assert stages._lines_written_sum(
            body, ["PK", "SK"], keys, found
        ) == checksum.lines_written_sum(raw, ["PK", "SK"], keys)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(
        [
            (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
            (pa.uint8(), st.integers(0, 255)),
            (pa.string(), st.text(max_size=3)),
            (pa.large_string(), st.text(max_size=3)),
            (pa.binary(), st.binary(max_size=3)),
            (pa.large_binary(), st.binary(max_size=3)),
            (pa.float64(), st.floats(allow_nan=True)),
        ]
    ).flatmap(lambda t: st.tuples(st.just(t[0]), st.lists(t[1] | st.none(), max_size=8))),
    st.booleans(),
    st.integers(0, 8),
)
def test_a_single_key_column_is_in_key_order_exactly_when_the_sort_leaves_it(case, sort_first, cut):
    """The one-column check (one comparison a row) says what the stable sort would: equal
    neighbours are in order, anything else that the sort moves is not; nulls and floats
    (NaN sorts last) go to the sort itself. As `_staged_sum` hands it over: two chunks (the
    slice before's last row, then the slice), sliced past their first row."""
    typ, values = case
    if sort_first:
        values = sorted(values, key=lambda v: (v is None, v if v is not None else 0))
    values = [values[0], *values] if values else values  # a row for the slice to drop
    cut = min(cut, len(values))
    rows = pa.concat_tables(
        [pa.table({"k": pa.array(values[:cut], typ)}), pa.table({"k": pa.array(values[cut:], typ)})]
    ).slice(1 if values else 0)
    values = values[1:]
    order = pc.sort_indices(rows, sort_keys=[("k", "ascending")])
    assert stages._in_key_order(rows, ["k"]) == order.equals(
        pa.array(range(len(values)), order.type)
    )
