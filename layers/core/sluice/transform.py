"""Transforms: a staged source page becomes target rows (MySQL) or items (DynamoDB).

Both work on whole Arrow columns. For DynamoDB the item's wire JSON is assembled column by
column (each attribute a preformatted fragment, NULLs skipped by the join), so Python runs
per value only for JSON, SET and binary columns and for the rare string holding control
characters.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from json.encoder import encode_basestring

import pyarrow as pa
import pyarrow.compute as pc

from .contract import Contract, KeyTemplate, TableSpec
from .errors import SluiceError
from .types import kind_of

MAX_ITEM_BYTES = 400 * 1024
MAX_NUMBER_DIGITS = 38
_CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f]"


@dataclass(frozen=True, slots=True)
class Rejected:
    """Rows refused by a transform: their source keys and one reason each."""

    keys: list[dict]
    reasons: list[str]

    def __len__(self) -> int:
        return len(self.reasons)

    def to_jsonl(self) -> bytes:
        return b"".join(
            json.dumps({"key": k, "reason": r}, default=_json_default, ensure_ascii=False).encode()
            + b"\n"
            for k, r in zip(self.keys, self.reasons, strict=True)
        )


NO_REJECTS = Rejected([], [])


def _json_default(v):
    """Key values in rejected/: bytes as {"b64": ...} (as page ranges carry them), the rest as text."""
    if isinstance(v, bytes | bytearray):
        return {"b64": base64.b64encode(v).decode()}
    return str(v)


def selected_columns(spec: TableSpec, names: list[str]) -> list[str]:
    """Source columns that the contract moves, in source order."""
    keep = [n for n in names if spec.include is None or n in spec.include or n in spec.key]
    return [n for n in keep if n not in spec.exclude or n in spec.key]


# ---------------------------------------------------------------- MySQL target


def to_mysql_rows(page: pa.Table, spec: TableSpec) -> pa.Table:
    """Select and rename the contract's columns; values stay exactly as staged."""
    cols = selected_columns(spec, page.column_names)
    return page.select(cols).rename_columns([spec.rename.get(c, c) for c in cols])


# ---------------------------------------------------------------- DynamoDB target


def _text(arr: pa.Array) -> pa.Array:
    """A column's canonical text: what key templates and S/N attributes carry."""
    t = arr.type
    if pa.types.is_timestamp(t):
        return pc.strftime(arr, "%Y-%m-%dT%H:%M:%S" + ("Z" if t.tz else ""))
    if pa.types.is_binary(t):
        return pa.array(
            [None if v is None else base64.b64encode(v).decode() for v in arr.to_pylist()],
            pa.string(),
        )
    return pc.cast(arr, pa.string())


def _escape(text: pa.Array) -> pa.Array:
    """JSON string body of each value (without quotes)."""
    out = text
    for a, b in (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
        out = pc.replace_substring(out, a, b)
    odd = pc.match_substring_regex(out, _CONTROL)
    if pc.any(odd).as_py():  # rare: other control characters need \u escapes
        py = out.to_pylist()
        flags = odd.to_pylist()
        raw = text.to_pylist()
        out = pa.array(
            [
                encode_basestring(r)[1:-1] if f else v
                for v, f, r in zip(py, flags, raw, strict=True)
            ],
            pa.string(),
        )
    return out


def _wrap(prefix: str, body: pa.Array, suffix: str) -> pa.Array:
    return pc.binary_join_element_wise(pa.scalar(prefix), body, pa.scalar(suffix), "")


def _dynamo_value(v) -> dict:
    """A parsed JSON value in DynamoDB's wire form (numbers exact, as strings)."""
    if v is None:
        return {"NULL": True}
    if isinstance(v, bool):
        return {"BOOL": v}
    if isinstance(v, int | Decimal):
        return {"N": str(v)}
    if isinstance(v, str):
        return {"S": v}
    if isinstance(v, list):
        return {"L": [_dynamo_value(x) for x in v]}
    if isinstance(v, dict):
        return {"M": {k: _dynamo_value(x) for k, x in v.items()}}
    raise TypeError(type(v))


def _per_value(arr: pa.Array, name_json: str, fn: Callable) -> pa.Array:
    out = []
    for v in arr.to_pylist():
        out.append(None if v is None else fn(v))
    return pa.array([None if o is None else f"{name_json}:{o}" for o in out], pa.string())


def _set_value(v: str) -> str | None:
    return None if v == "" else '{"SS":' + json.dumps(v.split(","), ensure_ascii=False) + "}"


def _json_value(v: str) -> str:
    return json.dumps(_dynamo_value(json.loads(v, parse_float=Decimal)), ensure_ascii=False)


def _digits(text: pa.Array) -> pa.Array:
    """Significant digits of number text, as DynamoDB counts them."""
    mantissa = pc.replace_substring_regex(text, r"[eE].*$", "")
    digits = pc.replace_substring_regex(mantissa, r"[-+.]", "")
    return pc.utf8_length(pc.utf8_rtrim(pc.utf8_ltrim(digits, "0"), "0"))


@dataclass(frozen=True, slots=True)
class ItemPlan:
    """What one source table becomes in DynamoDB, computed once per table."""

    target_table: str
    key_attrs: tuple[tuple[str, KeyTemplate], ...]  # PK, SK and templated extra attributes
    value_attrs: tuple[tuple[str, str], ...]  # (source column, attribute name)
    key_columns: tuple[str, ...]
    null_values: str
    has_sort_key: bool


def item_plan(contract: Contract, spec: TableSpec, columns: list[str]) -> ItemPlan:
    table = contract.dynamo_tables[spec.target_table]
    key_attrs = [(table.partition_key, spec.partition_key)]
    if table.sort_key:
        key_attrs.append((table.sort_key, spec.sort_key))
    key_attrs.extend(spec.attributes.items())
    taken = {a for a, _ in key_attrs}
    values = [(c, spec.rename.get(c, c)) for c in selected_columns(spec, columns)]
    clash = [a for _, a in values if a in taken]
    if clash:
        raise SluiceError(
            f"table {spec.source}: attribute(s) {clash} are both a key/template attribute and a "
            "column; rename the column in $.tables[].columns.rename"
        )
    return ItemPlan(
        spec.target_table,
        tuple(key_attrs),
        tuple(values),
        spec.key,
        contract.null_values,
        bool(table.sort_key),
    )


def to_dynamodb_items(page: pa.Table, plan: ItemPlan) -> tuple[pa.Array, Rejected]:
    """Items as DynamoDB JSON lines (`{"Item": {...}}\\n`, the Import from S3 format)."""
    n = page.num_rows
    if n == 0:
        return pa.array([], pa.binary()), NO_REJECTS
    text_cache: dict[str, pa.Array] = {}

    def text(col: str) -> pa.Array:
        if col not in text_cache:
            text_cache[col] = _text(page.column(col).combine_chunks())
        return text_cache[col]

    fragments: list[pa.Array] = []
    reasons: list[pa.Array] = []  # per check: reason text where the row fails, else null
    sizes = pa.array([0] * n, pa.int64())
    for attr, tmpl in plan.key_attrs:
        pieces: list = []
        for lit, col in tmpl.parts:
            if lit:
                pieces.append(pa.scalar(lit))
            if col:
                pieces.append(text(col))
        if not tmpl.columns:
            value = pa.array(["".join(p.as_py() for p in pieces)] * n, pa.string())
        else:
            value = pc.binary_join_element_wise(*pieces, "")
        for col in tmpl.columns:
            reasons.append(
                pc.if_else(
                    pc.is_null(page.column(col)),
                    f"{attr} template {tmpl.text!r}: column {col} is NULL",
                    None,
                )
            )
        reasons.append(
            pc.if_else(
                pc.equal(value, ""), f"{attr} template {tmpl.text!r} gives an empty key", None
            )
        )
        name_json = encode_basestring(attr)
        fragments.append(_wrap(name_json + ':{"S":"', _escape(value), '"}'))
        sizes = pc.add(sizes, pc.add(len(attr.encode()), pc.fill_null(pc.binary_length(value), 0)))
    for col, attr in plan.value_attrs:
        arr = page.column(col).combine_chunks()
        kind = kind_of(page.schema.field(col))
        name_json = encode_basestring(attr)
        if kind in ("int", "decimal", "float", "year", "bit"):
            t = text(col)
            if kind == "float":
                bad = pc.fill_null(pc.or_(pc.is_nan(arr), pc.is_inf(arr)), False)
                reasons.append(
                    pc.if_else(bad, f"{col}: NaN or infinity has no DynamoDB number", None)
                )
            if kind == "decimal" and arr.type.precision > MAX_NUMBER_DIGITS:
                too_long = pc.fill_null(pc.greater(_digits(t), MAX_NUMBER_DIGITS), False)
                reasons.append(
                    pc.if_else(
                        too_long,
                        f"{col}: more than 38 significant digits, which a DynamoDB number cannot hold",
                        None,
                    )
                )
            frag = _wrap(name_json + ':{"N":"', t, '"}')
            size = pc.binary_length(t)
        elif kind == "set":
            frag = _per_value(arr, name_json, _set_value)
            size = pc.binary_length(arr)
        elif kind == "json":
            frag = _per_value(arr, name_json, _json_value)
            size = pc.binary_length(arr)
        elif kind in ("binary", "spatial"):
            frag = _wrap(name_json + ':{"B":"', text(col), '"}')
            size = pc.binary_length(arr)
        else:  # text, enum, time, date, datetime, timestamp
            t = text(col)
            frag = _wrap(name_json + ':{"S":"', _escape(t), '"}')
            size = pc.binary_length(t)
        if plan.null_values == "null":
            frag = pc.fill_null(frag, name_json + ':{"NULL":true}')
        fragments.append(frag)
        sizes = pc.add(sizes, pc.add(len(attr.encode()), pc.fill_null(size, 0)))
    reasons.append(pc.if_else(pc.greater(sizes, MAX_ITEM_BYTES), "item over 400 KB", None))
    body = pc.binary_join_element_wise(*fragments, ",", null_handling="skip")
    lines = pc.cast(_wrap('{"Item":{', body, "}}\n"), pa.binary())
    reason = pc.coalesce(*reasons) if reasons else pa.nulls(n, pa.string())
    n_keys = 2 if plan.has_sort_key else 1
    reason = _mark_duplicates(reason, fragments[:n_keys])
    ok = pc.is_null(reason)
    if pc.all(ok).as_py():
        return lines, NO_REJECTS
    bad = pc.invert(ok)
    keys = page.select(list(plan.key_columns)).filter(bad).to_pylist()
    return lines.filter(ok), Rejected(keys, reason.filter(bad).to_pylist())


def _mark_duplicates(reason: pa.Array, key_fragments: list[pa.Array]) -> pa.Array:
    """Rows whose target key repeats an earlier row's in this page are refused, not merged."""
    key = (
        key_fragments[0]
        if len(key_fragments) == 1
        else pc.binary_join_element_wise(*key_fragments, ",")
    )
    t = pa.table({"k": key, "i": pa.array(range(len(key)), pa.int64())})
    first = t.group_by("k", use_threads=False).aggregate([("i", "min")])
    if first.num_rows == len(key):
        return reason
    is_first = pc.is_in(t.column("i"), value_set=first.column("i_min"))
    dup = pc.invert(is_first)
    return pc.coalesce(
        reason,
        pc.if_else(
            dup, "duplicate target key: an earlier row of this page maps to the same key", None
        ),
    )
