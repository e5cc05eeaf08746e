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
from .staging import NO_REJECTS, Rejected
from .types import kind_of

MAX_ITEM_BYTES = 400 * 1024
MAX_NUMBER_DIGITS = 38
_CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f]"


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

# Default DynamoDB encoding of each source kind ("dates" follows the contract's choice).
DEFAULT_ENCODING = {
    "int": "number",
    "decimal": "number",
    "float": "number",
    "bit": "number",
    "year": "number",
    "set": "string_set",
    "json": "json",
    "binary": "binary",
    "spatial": "binary",
    "date": "dates",
    "datetime": "dates",
    "timestamp": "dates",
}
# DynamoDB numbers: 38 significant digits, magnitude 1E-130 .. 9.99...E+125.
MAX_NUMBER = Decimal("9.9999999999999999999999999999999999999E+125")
MIN_NUMBER = Decimal("1E-130")
_RANGE_REASON = "outside DynamoDB's number range (1E-130 .. 9.9E+125)"
_DATE_KINDS = ("date", "datetime", "timestamp")


def _text(arr: pa.Array, kind: str) -> pa.Array:
    """A column's canonical text: what templates and S attributes carry.

    Dates and times become ISO 8601 (`T` between date and time, `Z` on TIMESTAMP, which is
    read in UTC); binary values base64.
    """
    if kind in ("datetime", "timestamp"):
        iso = pc.replace_substring(arr, " ", "T", max_replacements=1)
        return pc.binary_join_element_wise(iso, pa.scalar("Z"), "") if kind == "timestamp" else iso
    if pa.types.is_binary(arr.type):
        return pa.array(
            [None if v is None else base64.b64encode(v).decode() for v in arr.to_pylist()],
            pa.string(),
        )
    return pc.cast(arr, pa.string())


def _apply_filters(
    text: pa.Array, filters, kind: str, where: str
) -> tuple[pa.Array, pa.Array | None]:
    """Template filters on a column's text; returns the text and rejection reasons (or None)."""
    reason = None
    for name, arg in filters:
        if name == "lower":
            text = pc.utf8_lower(text)
        elif name == "upper":
            text = pc.utf8_upper(text)
        elif name == "trim":
            text = pc.utf8_trim_whitespace(text)
        elif name == "date":
            stamp = _parse_datetime(text, kind)
            formatted = pc.strftime(stamp, format=arg)
            bad = pc.and_(pc.is_valid(text), pc.is_null(stamp))
            reason = pc.if_else(bad, f"{where}: not a date that date:{arg} can format", None)
            text = formatted
    return text, reason


def _parse_datetime(text: pa.Array, kind: str) -> pa.Array:
    """Seconds-precision timestamps from ISO or MySQL text; zero dates become null."""
    head = pc.utf8_slice_codeunits(text, 0, 19)
    head = pc.replace_substring(head, "T", " ", max_replacements=1)
    if kind == "date":
        head = pc.binary_join_element_wise(head, pa.scalar(" 00:00:00"), "")
    return pc.strptime(head, format="%Y-%m-%d %H:%M:%S", unit="s", error_is_null=True)


def _epoch(text: pa.Array, kind: str, unit: str) -> pa.Array:
    """Exact epoch numbers (seconds or milliseconds, with the fraction) of date/time text."""
    seconds = pc.cast(_parse_datetime(text, kind), pa.int64())
    frac = (
        pc.utf8_slice_codeunits(text, 20, 26)
        if kind != "date"
        else pa.nulls(len(text), pa.string())
    )
    frac = pc.utf8_slice_codeunits(
        pc.binary_join_element_wise(pc.fill_null(frac, ""), pa.scalar("000000"), ""), 0, 6
    )
    micros = pc.add(pc.multiply(seconds, 1_000_000), pc.cast(frac, pa.int64()))
    divisor, scale = (1_000_000, 6) if unit == "epoch_seconds" else (1_000, 3)
    value = pc.divide(
        pc.cast(micros, pa.decimal128(24, 0)), pa.scalar(Decimal(divisor), pa.decimal128(7, 0))
    )
    return pc.cast(pc.cast(value, pa.decimal128(24, scale)), pa.string())


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


class _Unrepresentable(ValueError):
    """A JSON value DynamoDB cannot hold (a number out of its range)."""


def _check_number(d: Decimal) -> str:
    if d.is_nan() or d.is_infinite():
        raise _Unrepresentable(f"{d} has no DynamoDB number")
    t = d.as_tuple()
    digits = len(str(int("".join(map(str, t.digits)) or "0")).rstrip("0")) if d else 0
    if digits > MAX_NUMBER_DIGITS:
        raise _Unrepresentable(f"{d} has more than 38 significant digits")
    if d and not (MIN_NUMBER <= d.copy_abs() <= MAX_NUMBER):
        raise _Unrepresentable(f"{d} is {_RANGE_REASON}")
    return str(d)


def _range_reasons(text: pa.Array, col: str) -> pa.Array | None:
    """Reasons for number text outside DynamoDB's range, or None when all fit.

    A float64 view finds the candidates in one pass; only values near or past the limits are
    then judged exactly, as decimals."""
    numeric = pc.fill_null(
        pc.match_substring_regex(text, r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$"), False
    )
    approx = pc.abs(pc.cast(pc.if_else(numeric, text, "0"), pa.float64()))
    near = pc.or_(
        pc.greater(approx, 1e125), pc.and_(pc.greater(approx, 0), pc.less(approx, 1e-129))
    )
    if not pc.any(near).as_py():
        return None
    out = []
    for t, n in zip(text.to_pylist(), near.to_pylist(), strict=True):
        d = Decimal(t) if n else None
        out.append(
            f"{col}: {_RANGE_REASON}"
            if d is not None and d and not (MIN_NUMBER <= d.copy_abs() <= MAX_NUMBER)
            else None
        )
    return pa.array(out, pa.string())


def _per_value(
    arr: pa.Array, name_json: str, fn: Callable, col: str
) -> tuple[pa.Array, pa.Array | None]:
    """Fragments made one value at a time (JSON, SET); values fn refuses become reasons.

    Python runs once per distinct value: the column is dictionary-encoded first, and the
    fragments are taken back by index (JSON settings and SET values repeat a lot)."""
    encoded = pc.dictionary_encode(arr)
    frags, reasons, any_bad = [], [], False
    for v in encoded.dictionary.to_pylist():
        try:
            body = fn(v)
            frags.append(None if body is None else f"{name_json}:{body}")
            reasons.append(None)
        except (_Unrepresentable, ValueError) as exc:
            frags.append(None)
            reasons.append(f"{col}: {exc}")
            any_bad = True
    frag = pa.array(frags, pa.string()).take(encoded.indices)
    return frag, (pa.array(reasons, pa.string()).take(encoded.indices) if any_bad else None)


def _set_value(v: str) -> str | None:
    return None if v == "" else '{"SS":' + json.dumps(v.split(","), ensure_ascii=False) + "}"


def _refuse_constant(name: str):
    raise _Unrepresentable(f"{name} has no DynamoDB number")


def _json_number(text: str) -> dict:
    """A JSON number as an N value, its text kept as written (exact, never a float)."""
    # Up to 38 characters without an exponent: at most 38 digits, magnitude inside 1E-37..1E38.
    if len(text) <= MAX_NUMBER_DIGITS and "e" not in text and "E" not in text:
        return {"N": text}
    _check_number(Decimal(text))
    return {"N": text}


def _json_object(pairs: list) -> dict:
    return {"M": {k: _wrap_json(v) for k, v in pairs}}


def _wrap_json(v) -> dict:
    """Wrap what the decoder left plain (strings, arrays, literals); numbers and objects come
    wrapped already from its hooks."""
    if isinstance(v, dict):
        return v
    if isinstance(v, str):
        return {"S": v}
    if isinstance(v, list):
        return {"L": [_wrap_json(x) for x in v]}
    if v is None:
        return {"NULL": True}
    return {"BOOL": v}


# Built once: the C scanner calls these hooks while parsing, so the DynamoDB form is made in
# the same pass as the parse, and numbers never become Decimal or float objects.
_JSON_DECODER = json.JSONDecoder(
    parse_float=_json_number,
    parse_int=_json_number,
    parse_constant=_refuse_constant,
    object_pairs_hook=_json_object,
)
_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _json_value(v: str) -> str:
    return _JSON_ENCODER.encode(_wrap_json(_JSON_DECODER.decode(v)))


def _digits(text: pa.Array) -> pa.Array:
    """Significant digits of number text, as DynamoDB counts them."""
    mantissa = pc.replace_substring_regex(text, r"[eE].*$", "")
    digits = pc.replace_substring_regex(mantissa, r"[-+.]", "")
    return pc.utf8_length(pc.utf8_rtrim(pc.utf8_ltrim(digits, "0"), "0"))


@dataclass(frozen=True, slots=True)
class ValueAttr:
    column: str
    name: str
    kind: str
    encoding: (
        str  # number | string | binary | string_set | json | iso8601 | epoch_seconds | epoch_millis
    )


@dataclass(frozen=True, slots=True)
class ItemPlan:
    """What one source table becomes in DynamoDB, computed once per table."""

    target_table: str
    key_attrs: tuple[tuple[str, KeyTemplate], ...]  # PK, SK and templated extra attributes
    value_attrs: tuple[ValueAttr, ...]
    key_columns: tuple[str, ...]
    null_values: str
    has_sort_key: bool
    kinds: dict[str, str]  # column: source kind


def item_plan(
    contract: Contract, spec: TableSpec, columns: list[str], kinds: dict[str, str]
) -> ItemPlan:
    """Decide once per table how each column becomes an attribute (`kinds`: column -> kind)."""
    table = contract.dynamo_tables[spec.target_table]
    key_attrs = [(table.partition_key, spec.partition_key)]
    if table.sort_key:
        key_attrs.append((table.sort_key, spec.sort_key))
    key_attrs.extend(spec.attributes.items())
    taken = {a for a, _ in key_attrs}
    values = []
    for c in selected_columns(spec, columns):
        enc = spec.types.get(c) or DEFAULT_ENCODING.get(kinds[c], "string")
        if enc == "dates":
            enc = contract.dates
        values.append(ValueAttr(c, spec.rename.get(c, c), kinds[c], enc))
    clash = [v.name for v in values if v.name in taken]
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
        dict(kinds),
    )


def page_kinds(page: pa.Table) -> dict[str, str]:
    return {f.name: kind_of(f) for f in page.schema}


def _encode_value(arr: pa.Array, text: pa.Array, attr: ValueAttr, name_json: str):
    """(fragment, size, reasons) of one value attribute over the page."""
    col, enc, kind = attr.column, attr.encoding, attr.kind
    reasons = []
    if enc == "number":
        t = text
        if kind == "float":
            finite = pc.fill_null(pc.or_(pc.is_nan(arr), pc.is_inf(arr)), False)
            reasons.append(
                pc.if_else(finite, f"{col}: NaN or infinity has no DynamoDB number", None)
            )
        if kind in ("float", "text"):
            r = _range_reasons(t, col)
            if r is not None:
                reasons.append(r)
        if kind == "text":
            numeric = pc.fill_null(
                pc.match_substring_regex(t, r"^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$"), True
            )
            reasons.append(
                pc.if_else(
                    pc.invert(numeric),
                    f"{col}: not a number, but typed 'number' in the contract",
                    None,
                )
            )
        if kind in ("decimal", "text") and (
            kind == "text" or arr.type.precision > MAX_NUMBER_DIGITS
        ):
            too_long = pc.fill_null(pc.greater(_digits(t), MAX_NUMBER_DIGITS), False)
            reasons.append(
                pc.if_else(
                    too_long,
                    f"{col}: more than 38 significant digits, which a DynamoDB number cannot hold",
                    None,
                )
            )
        return _wrap(name_json + ':{"N":"', t, '"}'), pc.binary_length(t), reasons
    if enc in ("epoch_seconds", "epoch_millis"):
        t = _epoch(arr, kind, enc)
        bad = pc.and_(pc.is_valid(arr), pc.is_null(t))
        reasons.append(
            pc.if_else(bad, f"{col}: not a calendar date (a zero date?), so no {enc} number", None)
        )
        return _wrap(name_json + ':{"N":"', t, '"}'), pc.binary_length(t), reasons
    if enc == "string_set":
        frag, r = _per_value(arr, name_json, _set_value, col)
        return frag, pc.binary_length(arr), [r] if r is not None else []
    if enc == "json":
        frag, r = _per_value(arr, name_json, _json_value, col)
        return frag, pc.binary_length(arr), [r] if r is not None else []
    if enc == "binary":
        return _wrap(name_json + ':{"B":"', text, '"}'), pc.binary_length(arr), reasons
    if enc == "bool":
        frag = pc.if_else(arr, name_json + ':{"BOOL":true}', name_json + ':{"BOOL":false}')
        return frag, pa.array([1] * len(arr), pa.int64()), reasons
    if kind == "bool" and enc == "number":
        t = pc.cast(pc.cast(arr, pa.int8()), pa.string())
        return _wrap(name_json + ':{"N":"', t, '"}'), pc.binary_length(t), reasons
    # string, iso8601: the canonical text
    return _wrap(name_json + ':{"S":"', _escape(text), '"}'), pc.binary_length(text), reasons


def to_dynamodb_items(page: pa.Table, plan: ItemPlan, *, with_keys: bool = False):
    """Items as DynamoDB JSON lines (`{"Item": {...}}\n`, the Import from S3 format)."""
    n = page.num_rows
    if n == 0:
        empty = (pa.array([], pa.binary()), NO_REJECTS)
        return (*empty, _item_keys(page, plan, pa.array([], pa.string()))) if with_keys else empty
    text_cache: dict[str, pa.Array] = {}

    def text(col: str) -> pa.Array:
        if col not in text_cache:
            text_cache[col] = _text(page.column(col).combine_chunks(), plan.kinds[col])
        return text_cache[col]

    fragments: list[pa.Array] = []
    reasons: list[pa.Array] = []  # per check: reason text where the row fails, else null
    sizes = pa.array([0] * n, pa.int64())
    for attr, tmpl in plan.key_attrs:
        pieces: list = []
        for (lit, col), filters in zip(
            tmpl.parts, tmpl.filters or [()] * len(tmpl.parts), strict=True
        ):
            if lit:
                pieces.append(pa.scalar(lit))
            if col:
                t, r = _apply_filters(
                    text(col), filters, plan.kinds[col], f"{attr} template {tmpl.text!r}"
                )
                pieces.append(t)
                if r is not None:
                    reasons.append(r)
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
    for attr in plan.value_attrs:
        arr = page.column(attr.column).combine_chunks()
        name_json = encode_basestring(attr.name)
        frag, size, more = _encode_value(arr, text(attr.column), attr, name_json)
        reasons.extend(more)
        if plan.null_values == "null":
            frag = pc.fill_null(frag, name_json + ':{"NULL":true}')
        fragments.append(frag)
        sizes = pc.add(sizes, pc.add(len(attr.name.encode()), pc.fill_null(size, 0)))
    reasons.append(pc.if_else(pc.greater(sizes, MAX_ITEM_BYTES), "item over 400 KB", None))
    body = pc.binary_join_element_wise(*fragments, ",", null_handling="skip")
    lines = pc.cast(_wrap('{"Item":{', body, "}}\n"), pa.binary())
    reason = pc.coalesce(*reasons) if reasons else pa.nulls(n, pa.string())
    n_keys = 2 if plan.has_sort_key else 1
    reason = _mark_duplicates(reason, fragments[:n_keys])
    target_keys = (
        fragments[0] if n_keys == 1 else pc.binary_join_element_wise(*fragments[:n_keys], ",")
    )
    ok = pc.is_null(reason)
    if pc.all(ok).as_py():
        result = (lines, NO_REJECTS)
        return (*result, _item_keys(page, plan, target_keys)) if with_keys else result
    bad = pc.invert(ok)
    keys = page.select(list(plan.key_columns)).filter(bad).to_pylist()
    result = (lines.filter(ok), Rejected(keys, reason.filter(bad).to_pylist()))
    if not with_keys:
        return result
    return (*result, _item_keys(page.filter(ok), plan, target_keys.filter(ok)))


def _item_keys(page: pa.Table, plan: ItemPlan, target_keys: pa.Array) -> pa.Table:
    """Each written item's key (as its wire JSON) beside the source key of the row it came
    from: verification finds keys that rows of different pages or tables share."""
    cols = [_text(page.column(c).combine_chunks(), plan.kinds[c]) for c in plan.key_columns]
    source = cols[0] if len(cols) == 1 else pc.binary_join_element_wise(*cols, ",")
    return pa.table({"target_key": pc.cast(target_keys, pa.string()), "source_key": source})


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
