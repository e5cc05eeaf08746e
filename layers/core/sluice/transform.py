"""Transforms: a staged source page becomes target rows (MySQL) or items (DynamoDB).

Both work on whole Arrow columns. For DynamoDB each item's wire JSON is one join of
preformatted pieces and the columns' text (an attribute that may be NULL is a fragment the
join skips), JSON columns go through RE2 shape by shape (see _Shape), and Python runs per
value only for SET and binary columns, JSON values outside their column's shapes and the
few strings with characters JSON escapes.
"""

from __future__ import annotations

import base64
import json
import re
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
_NEEDS_ESCAPE = r'[\x00-\x1f"\\]'  # what encode_basestring (ensure_ascii=False) escapes


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
    """JSON string body of each value (without quotes), as encode_basestring writes it.

    Most columns have nothing to escape, and one search through the column's text buffer
    shows it. A few values are escaped one by one; when many need it, whole-column
    replacements do the common five."""
    if not _may_need_escape(text):
        return text
    odd = pc.fill_null(pc.match_substring_regex(text, _NEEDS_ESCAPE), False)
    count = pc.sum(odd).as_py() or 0
    if not count:
        return text
    if count * 8 < len(text):
        values = [encode_basestring(v)[1:-1] for v in text.filter(odd).to_pylist()]
        return pc.replace_with_mask(text, odd, pa.array(values, text.type))
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


def _may_need_escape(text: pa.Array) -> bool:
    """False when no value has a character to escape: one regex search over the column's
    whole data buffer, read as a single binary value (bytes outside the array's slice can
    only answer True, which sends the column to the row-by-row search)."""
    data = text.buffers()[2]
    if data is None or data.size == 0:
        return False
    offsets = pa.array([0, data.size], pa.int64()).buffers()[1]
    whole = pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, data])
    return pc.match_substring_regex(whole, _NEEDS_ESCAPE)[0].as_py()


def _safe_text(arr: pa.Array) -> bool:
    """Whether `_text` of this column can hold nothing JSON escapes (numbers' digits)."""
    t = arr.type
    return pa.types.is_integer(t) or pa.types.is_decimal(t) or pa.types.is_floating(t)


def _reason(mask: pa.Array, text: str) -> pa.Array | None:
    """`text` where mask is true, else null; None when it is true nowhere."""
    mask = pc.fill_null(mask, False)
    return pc.if_else(mask, text, None) if pc.any(mask).as_py() else None


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


def _per_value(arr: pa.Array, fn: Callable, col: str) -> tuple[pa.Array, pa.Array | None]:
    """Values made one at a time (JSON, SET); values fn refuses become reasons.

    Python runs once per distinct value: the column is dictionary-encoded first, and the
    results are taken back by index (JSON settings and SET values repeat a lot)."""
    encoded = pc.dictionary_encode(arr)
    bodies, reasons, any_bad = [], [], False
    for v in encoded.dictionary.to_pylist():
        try:
            bodies.append(fn(v))
            reasons.append(None)
        except (_Unrepresentable, ValueError) as exc:
            bodies.append(None)
            reasons.append(f"{col}: {exc}")
            any_bad = True
    body = pa.array(bodies, pa.string()).take(encoded.indices)
    return body, (pa.array(reasons, pa.string()).take(encoded.indices) if any_bad else None)


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


# JSON columns by shape. Values of a column mostly share one structure (the same keys, value
# types and nesting), with different strings and numbers. A shape is such a structure as an
# RE2 pattern, matched against the whole column at once, whose captures (the strings and
# numbers) are spliced between preformatted pieces of DynamoDB JSON. A shape holds only what
# the wire text repeats byte for byte: strings without quotes, backslashes or control
# characters (so neither JSON escapes nor encode_basestring change them) and numbers without
# exponent of at most 38 characters (which `_json_number` keeps as written); no key twice in
# an object. Any other value goes through `_json_value`, one value at a time.
_WS = r"[ \t\n\r]*"  # JSON's whitespace (RE2's \s would take \f too)
_SHAPE_STRING = r'"(?P<{}>[^"\\\x00-\x1f]*)"'
_SHAPE_NUMBER = r"(?P<{}>-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?)"
_PLAIN_STRING = re.compile(r'[^"\\\x00-\x1f]*').fullmatch
_PLAIN_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?").fullmatch
MAX_SHAPES = 8  # shapes tried per column and page before the rest goes value by value
MAX_SHAPE_TOKENS = 256  # a larger document goes value by value (and RE2 stays small)


class _NumberText(str):
    """A JSON number's text as written (the shape decoder's parse_int and parse_float)."""


_SHAPE_DECODER = json.JSONDecoder(
    parse_float=_NumberText,
    parse_int=_NumberText,
    parse_constant=_refuse_constant,
    object_pairs_hook=tuple,  # objects as tuples of pairs: keys kept in order, repeats seen
)


@dataclass(frozen=True, slots=True)
class _Shape:
    regex: str
    pieces: tuple[tuple[bool, str], ...]  # (is a capture, constant text or capture name)
    numbers: tuple[str, ...]  # captures holding numbers


def _re_literal(text: str) -> str:
    """RE2 pattern matching `text` literally (ASCII punctuation as \\xHH escapes)."""
    return "".join(c if c.isalnum() or ord(c) > 127 else f"\\x{ord(c):02x}" for c in text)


def _shape_of(value: str) -> _Shape | None:
    """The shape of one JSON text, or None when it has something a shape does not hold."""
    try:
        doc = _SHAPE_DECODER.decode(value)
    except ValueError:
        return None
    regex: list[str] = []
    pieces: list[tuple[bool, str]] = []
    numbers: list[str] = []

    def capture(pattern: str, before: str, after: str) -> str:
        name = f"v{sum(1 for is_capture, _ in pieces if is_capture)}"
        regex.append(pattern.format(name))
        pieces.extend(((False, before), (True, name), (False, after)))
        return name

    def walk(v) -> bool:
        t = type(v)
        if t is str:
            if not _PLAIN_STRING(v):
                return False
            capture(_SHAPE_STRING, '{"S":"', '"}')
        elif t is _NumberText:
            if len(v) > MAX_NUMBER_DIGITS or not _PLAIN_NUMBER(v):
                return False
            numbers.append(capture(_SHAPE_NUMBER, '{"N":"', '"}'))
        elif t is tuple:  # an object
            keys = [k for k, _ in v]
            if len(set(keys)) != len(keys) or not all(_PLAIN_STRING(k) for k in keys):
                return False
            regex.append(r"\{" + _WS)
            pieces.append((False, '{"M":{'))
            for i, (k, x) in enumerate(v):
                regex.append((_WS + "," + _WS if i else "") + f'"{_re_literal(k)}"{_WS}:{_WS}')
                pieces.append((False, f'{"," if i else ""}"{k}":'))
                if not walk(x):
                    return False
            regex.append(_WS + r"\}")
            pieces.append((False, "}}"))
        elif t is list:
            regex.append(r"\[" + _WS)
            pieces.append((False, '{"L":['))
            for i, x in enumerate(v):
                if i:
                    regex.append(_WS + "," + _WS)
                    pieces.append((False, ","))
                if not walk(x):
                    return False
            regex.append(_WS + r"\]")
            pieces.append((False, "]}"))
        elif v is True or v is False:
            regex.append("true" if v else "false")
            pieces.append((False, '{"BOOL":true}' if v else '{"BOOL":false}'))
        elif v is None:
            regex.append("null")
            pieces.append((False, '{"NULL":true}'))
        else:
            return False
        return len(regex) <= MAX_SHAPE_TOKENS

    if not walk(doc):
        return None
    merged: list[tuple[bool, str]] = []
    for is_capture, text in pieces:
        if not is_capture and merged and not merged[-1][0]:
            merged[-1] = (False, merged[-1][1] + text)
        else:
            merged.append((is_capture, text))
    return _Shape("^" + _WS + "".join(regex) + _WS + "$", tuple(merged), tuple(numbers))


def _apply_shape(values: pa.Array, shape: _Shape) -> tuple[pa.Array, pa.Array]:
    """(fragments, hit): the fragments are right where `hit` is true, junk elsewhere."""
    found = pc.extract_regex(values, shape.regex)
    hit = found.is_valid()
    for name in shape.numbers:
        length = pc.binary_length(pc.struct_field(found, name))
        hit = pc.and_(hit, pc.fill_null(pc.less_equal(length, MAX_NUMBER_DIGITS), False))
    parts = [
        pc.struct_field(found, text) if is_capture else pa.scalar(text)
        for is_capture, text in shape.pieces
    ]
    frag = pc.binary_join_element_wise(*parts, "")
    if isinstance(frag, pa.Scalar):  # a shape without captures (true, {}, [null]...)
        frag = pc.if_else(hit, frag, pa.scalar(None, pa.string()))
    return frag, hit


def _json_bodies(arr: pa.Array, col: str) -> tuple[pa.Array, pa.Array | None]:
    """DynamoDB JSON of a JSON column's values (see _Shape): the values of the first value's
    shape at once, then more shapes found among the values left, then the rest one by one."""
    if pa.types.is_large_string(arr.type):
        arr = pc.cast(arr, pa.string())
    n, no_value = len(arr), pa.scalar(None, pa.string())
    valid = arr.is_valid()
    first = pc.index(valid, True).as_py()
    shape = _shape_of(arr[first].as_py()) if first >= 0 else None
    if shape is None:
        frag, rest = pa.nulls(n, pa.string()), valid
    else:
        frag, hit = _apply_shape(arr, shape)
        frag = pc.if_else(hit, frag, no_value)
        rest = pc.and_(valid, pc.invert(hit))
    if not pc.any(rest).as_py():
        return frag, None
    todo_idx = pc.indices_nonzero(rest)
    todo = arr.take(todo_idx)
    found_idx, found_frag, by_value = [], [], []
    for _ in range(MAX_SHAPES - 1):
        if not len(todo):
            break
        shape = _shape_of(todo[0].as_py())
        if shape is None:
            by_value.append(todo_idx[0].as_py())
            todo, todo_idx = todo[1:], todo_idx[1:]
            continue
        more, hit = _apply_shape(todo, shape)
        if not hit[0].as_py():  # JSON escapes in the text: likely in the values left too
            break
        found_idx.append(todo_idx.filter(hit))
        found_frag.append(more.filter(hit))
        scanned = len(todo)
        todo, todo_idx = todo.filter(pc.invert(hit)), todo_idx.filter(pc.invert(hit))
        if len(found_idx[-1]) * 20 < scanned:  # under 5% of what it scanned: too varied
            break
    slow_idx = pa.concat_arrays([pa.array(by_value, pa.uint64()), todo_idx])
    reason = None
    if len(slow_idx):
        slow_frag, slow_reason = _per_value(arr.take(slow_idx), _json_value, col)
        found_idx.append(slow_idx)
        found_frag.append(slow_frag)
        if slow_reason is not None:
            in_slow = pc.is_in(pa.array(range(n), pa.uint64()), value_set=slow_idx)
            reason = pc.replace_with_mask(
                pa.nulls(n, pa.string()), in_slow, slow_reason.take(pc.sort_indices(slow_idx))
            )
    idx = pa.concat_arrays(found_idx)
    values = pa.concat_arrays(found_frag).take(pc.sort_indices(idx))
    return pc.replace_with_mask(frag, rest, values), reason


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


@dataclass(frozen=True, slots=True)
class _Encoded:
    """One attribute over the page: its wire text is open + body + close after the name, and
    a null body means no attribute. `size` counts towards the 400 KB item limit."""

    open: str
    body: pa.Array
    close: str
    size: pa.Array | int
    reasons: list[pa.Array]


def _encode_value(arr: pa.Array, text: pa.Array, attr: ValueAttr) -> _Encoded:
    col, enc, kind = attr.column, attr.encoding, attr.kind
    reasons = []
    if enc == "number":
        t = text
        if kind == "float":
            finite = pc.or_(pc.is_nan(arr), pc.is_inf(arr))
            reasons.append(_reason(finite, f"{col}: NaN or infinity has no DynamoDB number"))
        if kind in ("float", "text"):
            reasons.append(_range_reasons(t, col))
        if kind == "text":
            numeric = pc.fill_null(
                pc.match_substring_regex(t, r"^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$"), True
            )
            reasons.append(
                _reason(
                    pc.invert(numeric), f"{col}: not a number, but typed 'number' in the contract"
                )
            )
        if kind in ("decimal", "text") and (
            kind == "text" or arr.type.precision > MAX_NUMBER_DIGITS
        ):
            too_long = pc.greater(_digits(t), MAX_NUMBER_DIGITS)
            reasons.append(
                _reason(
                    too_long,
                    f"{col}: more than 38 significant digits, which a DynamoDB number cannot hold",
                )
            )
        return _Encoded('{"N":"', t, '"}', pc.binary_length(t), reasons)
    if enc in ("epoch_seconds", "epoch_millis"):
        t = _epoch(arr, kind, enc)
        bad = pc.and_(pc.is_valid(arr), pc.is_null(t))
        reasons.append(
            _reason(bad, f"{col}: not a calendar date (a zero date?), so no {enc} number")
        )
        return _Encoded('{"N":"', t, '"}', pc.binary_length(t), reasons)
    if enc == "string_set":
        body, r = _per_value(arr, _set_value, col)
        return _Encoded("", body, "", pc.binary_length(arr), [r])
    if enc == "json":
        body, r = _json_bodies(arr, col)
        return _Encoded("", body, "", pc.binary_length(arr), [r])
    if enc == "binary":
        return _Encoded('{"B":"', text, '"}', pc.binary_length(arr), reasons)
    if enc == "bool":
        body = pc.if_else(arr, '{"BOOL":true}', '{"BOOL":false}')
        return _Encoded("", body, "", 1, reasons)
    if kind == "bool" and enc == "number":
        t = pc.cast(pc.cast(arr, pa.int8()), pa.string())
        return _Encoded('{"N":"', t, '"}', pc.binary_length(t), reasons)
    # string, iso8601: the canonical text
    body = text if _safe_text(arr) else _escape(text)
    return _Encoded('{"S":"', body, '"}', pc.binary_length(text), reasons)


def to_dynamodb_items(page: pa.Table, plan: ItemPlan, *, with_keys: bool = False):
    """Items as DynamoDB JSON lines (`{"Item": {...}}\n`, the Import from S3 format).

    Each line is one join over the page: preformatted pieces (`,"amount":{"N":"`) beside
    the columns' text; an attribute whose value may be NULL is a fragment of its own, which
    the join skips where it is null."""
    n = page.num_rows
    if n == 0:
        empty = (pa.array([], pa.binary()), NO_REJECTS)
        return (
            (*empty, _item_keys(page, plan, pa.array([], pa.string()), {})) if with_keys else empty
        )
    text_cache: dict[str, pa.Array] = {}

    def text(col: str) -> pa.Array:
        if col not in text_cache:
            text_cache[col] = _text(page.column(col).combine_chunks(), plan.kinds[col])
        return text_cache[col]

    parts: list = [pa.scalar('{"Item":{')]  # the line: pieces and columns, joined once
    key_fragments: list[pa.Array] = []
    reasons: list[pa.Array | None] = []  # per check: reason text where the row fails, else null
    sizes: list[pa.Array] = []  # summed, with the attribute names' bytes in `fixed_size`
    fixed_size = 0
    for attr, tmpl in plan.key_attrs:
        pieces: list = []
        safe = not any(re.search(_NEEDS_ESCAPE, lit) for lit, _ in tmpl.parts)
        for (lit, col), filters in zip(
            tmpl.parts, tmpl.filters or [()] * len(tmpl.parts), strict=True
        ):
            if lit:
                pieces.append(pa.scalar(lit))
            if col:
                where = f"{attr} template {tmpl.text!r}"
                t, r = _apply_filters(text(col), filters, plan.kinds[col], where)
                pieces.append(t)
                reasons.append(r)
                safe = safe and _safe_text(page.column(col)) and "date" not in dict(filters)
        if not tmpl.columns:
            value = pa.array(["".join(p.as_py() for p in pieces)] * n, pa.string())
        else:
            value = pc.binary_join_element_wise(*pieces, "")
        for col in tmpl.columns:
            if page.column(col).null_count:
                reasons.append(
                    _reason(
                        pc.is_null(page.column(col)),
                        f"{attr} template {tmpl.text!r}: column {col} is NULL",
                    )
                )
        reasons.append(
            _reason(pc.equal(value, ""), f"{attr} template {tmpl.text!r} gives an empty key")
        )
        name_json = encode_basestring(attr)
        fragment = _wrap(name_json + ':{"S":"', value if safe else _escape(value), '"}')
        if key_fragments:
            parts.append(pa.scalar(","))
        parts.append(fragment)
        key_fragments.append(fragment)
        fixed_size += len(attr.encode())
        sizes.append(pc.fill_null(pc.binary_length(value), 0))
    for attr in plan.value_attrs:
        arr = page.column(attr.column).combine_chunks()
        e = _encode_value(arr, text(attr.column), attr)
        reasons.extend(e.reasons)
        name_json = encode_basestring(attr.name)
        opening = "," + name_json + ":" + e.open
        if e.body.null_count == 0:  # always present: its pieces go straight into the line
            parts += [pa.scalar(opening), e.body, pa.scalar(e.close)]
        else:
            fragment = _wrap(opening, e.body, e.close)
            if plan.null_values == "null":
                fragment = pc.fill_null(fragment, "," + name_json + ':{"NULL":true}')
            parts.append(fragment)
        fixed_size += len(attr.name.encode())
        if isinstance(e.size, int):
            fixed_size += e.size
        else:
            sizes.append(pc.fill_null(e.size, 0) if e.size.null_count else e.size)
    total = pc.cast(sizes[0], pa.int64())
    for s in sizes[1:]:
        total = pc.add(total, s)
    reasons.append(_reason(pc.greater(total, MAX_ITEM_BYTES - fixed_size), "item over 400 KB"))
    parts.append(pa.scalar("}}\n"))
    lines = pc.cast(pc.binary_join_element_wise(*parts, "", null_handling="skip"), pa.binary())
    reasons = [r for r in reasons if r is not None]
    reason = pc.coalesce(*reasons) if len(reasons) > 1 else (reasons[0] if reasons else None)
    n_keys = 2 if plan.has_sort_key else 1
    target_keys = (
        key_fragments[0]
        if n_keys == 1
        else pc.binary_join_element_wise(*key_fragments[:n_keys], ",")
    )
    if not _unique_by_a_column(page, [tmpl for _, tmpl in plan.key_attrs[:n_keys]]):
        reason = _mark_duplicates(reason, target_keys)
    if reason is None or reason.null_count == n:
        result = (lines, NO_REJECTS)
        return (*result, _item_keys(page, plan, target_keys, text_cache)) if with_keys else result
    ok = pc.is_null(reason)
    bad = pc.invert(ok)
    keys = page.select(list(plan.key_columns)).filter(bad).to_pylist()
    result = (lines.filter(ok), Rejected(keys, reason.filter(bad).to_pylist()))
    if not with_keys:
        return result
    texts = {c: text(c).filter(ok) for c in plan.key_columns}
    return (*result, _item_keys(page.filter(ok), plan, target_keys.filter(ok), texts))


def _item_keys(
    page: pa.Table, plan: ItemPlan, target_keys: pa.Array, texts: dict[str, pa.Array]
) -> pa.Table:
    """Each written item's key (as its wire JSON) beside the source key of the row it came
    from: verification finds keys that rows of different pages or tables share. `texts`: the
    key columns' text, where the caller has it."""
    cols = [
        texts[c] if c in texts else _text(page.column(c).combine_chunks(), plan.kinds[c])
        for c in plan.key_columns
    ]
    source = cols[0] if len(cols) == 1 else pc.binary_join_element_wise(*cols, ",")
    return pa.table({"target_key": pc.cast(target_keys, pa.string()), "source_key": source})


def _unique_by_a_column(page: pa.Table, templates: list[KeyTemplate]) -> bool:
    """Whether the page's target keys are unique because one key template is text and one
    integer column whose values are all different here (`ORDER#{id}`): digits write each
    integer one way, so that template's text, and the key holding it, differ row to row."""
    for tmpl in templates:
        dated = any(name == "date" for f in tmpl.filters for name, _ in f)
        if len(tmpl.columns) != 1 or dated:
            continue
        column = page.column(tmpl.columns[0])
        if (
            pa.types.is_integer(column.type)
            and pc.count_distinct(column, mode="all").as_py() == page.num_rows
        ):
            return True
    return False


def _mark_duplicates(reason: pa.Array | None, key: pa.Array) -> pa.Array | None:
    """Rows whose target key repeats an earlier row's in this page are refused, not merged."""
    if pc.count_distinct(key, mode="all").as_py() == len(key):
        return reason
    t = pa.table({"k": key, "i": pa.array(range(len(key)), pa.int64())})
    first = t.group_by("k", use_threads=False).aggregate([("i", "min")])
    is_first = pc.is_in(t.column("i"), value_set=first.column("i_min"))
    dup = pc.if_else(
        pc.invert(is_first),
        "duplicate target key: an earlier row of this page maps to the same key",
        None,
    )
    return dup if reason is None else pc.coalesce(reason, dup)
