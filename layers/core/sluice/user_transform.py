"""User transforms: a contract may name `module:function` to reshape each page.

The function takes the page as a `pyarrow.Table` and returns a `pyarrow.Table`. What it
returns is checked before anything is written: the key columns are still there, every column
has a type Sluice can write, and (for a MySQL target) every column exists in the target
table. Rows it drops are rejected as dropped; if it raises or returns something unusable, the
page's rows are rejected with that error, and the run goes on.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Sequence
from functools import lru_cache

import pyarrow as pa

from .errors import SluiceError
from .staging import NO_REJECTS, Rejected
from .types import kind_of

REF = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$")


@lru_cache(maxsize=32)
def load(ref: str) -> Callable[[pa.Table], pa.Table]:
    """Import `module:function`: on the Lambda layer's path, or beside the contract locally."""
    if not REF.match(ref):
        raise SluiceError(f"transform {ref!r} is not 'module:function'")
    module_name, func_name = ref.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SluiceError(
            f"transform {ref!r}: cannot import {module_name!r} ({exc}); keep the module beside "
            "the contract in contracts/ (packaged as the TransformsLayer by sam build)"
        ) from exc
    fn = getattr(module, func_name, None)
    if not callable(fn):
        raise SluiceError(f"transform {ref!r}: {module_name} has no function {func_name!r}")
    return fn


def _kind_for(field: pa.Field, original: dict[str, pa.Field]) -> str | None:
    """The kind of a returned column: the source's if unchanged, else one from its Arrow type."""
    before = original.get(field.name)
    if before is not None and before.type == field.type:
        return kind_of(before)
    t = field.type
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_decimal(t):
        return "decimal"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "text"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "binary"
    return None


def _reject_all(page: pa.Table, key: Sequence[str], reason: str) -> tuple[pa.Table, Rejected]:
    keys = page.select(list(key)).to_pylist()
    return page.slice(0, 0), Rejected(keys, [reason] * len(keys))


def apply(
    ref: str,
    page: pa.Table,
    key: Sequence[str],
    target_columns: Sequence[str] | None = None,
    required: Sequence[str] = (),
) -> tuple[pa.Table, Rejected]:
    """Run the user's function on a page; returns (checked result, rejected rows).

    `target_columns`: the MySQL target table's columns; `required`: columns the contract's
    key templates name."""
    if page.num_rows == 0:
        return page, NO_REJECTS
    try:
        out = load(ref)(page)
    except Exception as exc:  # the user's code: any failure rejects its page's rows, not the run
        return _reject_all(page, key, f"transform {ref} failed: {type(exc).__name__}: {exc}")
    if isinstance(out, pa.RecordBatch):
        out = pa.Table.from_batches([out])
    if not isinstance(out, pa.Table):
        return _reject_all(
            page, key, f"transform {ref} returned {type(out).__name__}, not a pyarrow.Table"
        )
    missing = [k for k in key if k not in out.column_names]
    if missing:
        return _reject_all(page, key, f"transform {ref} dropped the key column(s) {missing}")
    absent = [c for c in required if c not in out.column_names]
    if absent:
        return _reject_all(
            page,
            key,
            f"transform {ref} returned no column(s) {absent}, which the key templates name",
        )
    original = {f.name: f for f in page.schema}
    fields = []
    for f in out.schema:
        kind = _kind_for(f, original)
        if kind is None:
            return _reject_all(
                page,
                key,
                f"transform {ref} returned column {f.name!r} of type {f.type}, which Sluice cannot write",
            )
        meta = (
            dict(original[f.name].metadata or {})
            if f.name in original and original[f.name].type == f.type
            else {}
        )
        meta[b"kind"] = kind.encode()
        fields.append(pa.field(f.name, f.type, nullable=True, metadata=meta))
    if target_columns is not None:
        unknown = [c for c in out.column_names if c not in target_columns]
        if unknown:
            return _reject_all(
                page,
                key,
                f"transform {ref} returned column(s) {unknown} that the target table does not have",
            )
    out = pa.Table.from_arrays(
        [out.column(i) for i in range(out.num_columns)], schema=pa.schema(fields)
    )
    # Row identity by key: the function may drop rows (they are rejected as dropped), never
    # invent or repeat them.
    before = page.select(list(key)).to_pylist()
    after = out.select(list(key)).to_pylist()
    seen = {tuple(sorted(r.items())) for r in before}
    after_keys = [tuple(sorted(r.items())) for r in after]
    if len(set(after_keys)) != len(after_keys) or not set(after_keys) <= seen:
        return _reject_all(
            page, key, f"transform {ref} returned rows whose keys are new or repeated"
        )
    if len(after_keys) == len(before):
        return out, NO_REJECTS
    kept = set(after_keys)
    dropped = [r for r in before if tuple(sorted(r.items())) not in kept]
    return out, Rejected(dropped, [f"dropped by transform {ref}"] * len(dropped))
