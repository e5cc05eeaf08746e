"""Deep verification: each loaded page read back from the target and compared with what was
loaded, naming every page and key that differs (`sluice verify --run ID`).

MySQL target: the page's key range is read back from the target table, typed as the loaded
rows were, put in key order and summed (sluice.checksum); the sum must equal the page's
`loaded_sum`, recorded by the load over the rows it wrote. Only a page whose sum differs is
looked at row by row: its staged rows against the target's, by key, naming rows missing from
the target, rows in its range that no source row made (extra), and rows whose values differ
(with the first column that does).

DynamoDB target: every item key the page's transform wrote (its keys object) is read back
with BatchGetItem and each item compared with the staged item, values as plain values (so a
number spelled "2.50" equals "2.5"). Items a run wrote that no page accounts for are found by
one Scan of each target table's keys.

Rows the run rejected (rejected/ objects) are expected to be missing, and reported as rejected.
"""

from __future__ import annotations

import base64
import gzip
import json
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa

from . import checksum, staging
from .contract import Contract, TableSpec
from .errors import SluiceError
from .source import SourceTable, decode_key, introspect, read_page
from .staging import PageRef
from .types import arrow_schema
from .verify import _plain

MAX_KEYS = 100  # keys named per kind and page in the report
BATCH_GET = 100  # keys per BatchGetItem (DynamoDB's limit)
MAX_ATTEMPTS = 10
SCAN_KEYS_LIMIT = 1_000_000  # above this many items, scanning a table for extra keys costs too much

Getter = Callable[[str], bytes | None]  # an object of the staging bucket, None when absent


# ---------------------------------------------------------------- what the manifest says


@dataclass(frozen=True, slots=True)
class PageRecord:
    """One page as the manifest recorded it."""

    ref: PageRef
    status: str
    lo: list | None
    hi: list | None
    transform_sum: str | None
    loaded_sum: str | None
    rejected: int
    load_rejected: int

    @classmethod
    def from_item(cls, run_id: str, item: dict) -> PageRecord:
        rng = json.loads(item["range"])
        return cls(
            PageRef(run_id, item["table"], int(item["page"])),
            item["status"],
            rng.get("lo"),
            rng.get("hi"),
            item.get("transform_sum"),
            item.get("loaded_sum"),
            int(item.get("rejected", 0)),
            int(item.get("load_rejected", 0)),
        )


def page_records(run_id: str, items: Sequence[dict]) -> dict[str, list[PageRecord]]:
    """Each source table's pages, in page order, from the run's manifest items."""
    out: dict[str, list[PageRecord]] = {}
    for it in items:
        if it["sk"].startswith("PAGE#"):
            out.setdefault(it["table"], []).append(PageRecord.from_item(run_id, it))
    return {t: sorted(r, key=lambda p: p.ref.page) for t, r in out.items()}


# ---------------------------------------------------------------- results


@dataclass(slots=True)
class PageResult:
    """A page that does not match, with the keys that show it (at most MAX_KEYS of each)."""

    page: int
    reason: str
    missing: list = field(default_factory=list)
    extra: list = field(default_factory=list)
    different: list = field(default_factory=list)  # {"key": ..., "column": first differing}
    rejected: list = field(default_factory=list)  # missing as they should be
    counts: dict = field(default_factory=dict)  # how many of each, all of them

    def to_dict(self) -> dict:
        return {
            "page": self.page,
            "reason": self.reason,
            "missing": self.missing,
            "extra": self.extra,
            "different": self.different,
            "rejected": self.rejected,
            "counts": self.counts,
        }


@dataclass(slots=True)
class TableResult:
    table: str
    target_table: str
    pages: int = 0
    checked: int = 0
    rejected: int = 0
    unchecked: list = field(default_factory=list)  # {"page", "reason"}
    mismatched: list[PageResult] = field(default_factory=list)
    # DynamoDB: every page's keys were read back (so a Scan can tell items no page made).
    keys_complete: bool = True

    @property
    def ok(self) -> bool:
        return not self.mismatched and not self.unchecked

    def to_dict(self) -> dict:
        return {
            "table": self.table,
            "target_table": self.target_table,
            "pages": self.pages,
            "checked": self.checked,
            "matched": self.checked - len(self.mismatched),
            "rejected_rows": self.rejected,
            "unchecked": self.unchecked,
            "mismatched": [p.to_dict() for p in self.mismatched],
            "ok": self.ok,
        }


def _json_safe(v):
    """A key value as JSON (as rejected/ objects carry keys): bytes as {"b64": ...}, numbers
    that JSON cannot spell exactly as text."""
    if isinstance(v, bytes | bytearray):
        return {"b64": base64.b64encode(v).decode()}
    if v is None or isinstance(v, bool | int | float | str | dict):
        return v
    return str(v)


def _key_id(values: Sequence) -> str:
    return json.dumps([_json_safe(v) for v in values], sort_keys=True, ensure_ascii=False)


def _rejected_ids(get: Getter, key: str, names: Sequence[str]) -> dict[str, dict]:
    """Keys of a rejected/ object's rows (id -> key as written there), {} when absent."""
    body = get(key)
    if not body:
        return {}
    out = {}
    for line in body.splitlines():
        k = json.loads(line)["key"]
        out[_key_id([k.get(n) for n in names])] = k
    return out


# ---------------------------------------------------------------- MySQL


@dataclass(frozen=True, slots=True)
class MysqlTarget:
    """Where a MySQL table's pages are read back, and what the loaded rows looked like."""

    conn: object  # raw connection (db.connect(raw=True)) to the target server
    database: str
    get: Getter
    # The loaded rows' schema when no staged page is left: the source's columns as the
    # transform selects and renames them.
    source_schema: Callable[[TableSpec], pa.Schema | None]


def _plain_schema(schema: pa.Schema) -> pa.Schema:
    """Names and types only: what a page checksum covers."""
    return pa.schema([pa.field(f.name, f.type) for f in schema])


def _staged_rows(get: Getter, ref: PageRef) -> pa.Table | None:
    body = get(ref.key(staging.TRANSFORMED))
    return staging.read_arrow(body) if body else None


def _read_target(
    t: MysqlTarget, table: SourceTable, schema: pa.Schema, key: Sequence[str], rec: PageRecord
) -> pa.Table:
    """The target's rows in the page's key range, typed as `schema`, in key order."""
    cols = SourceTable(table.name, "table", tuple(table.column(c) for c in schema.names), (), 0)
    read = pa.Table.from_batches(
        list(read_page(t.conn, t.database, cols, key, decode_key(rec.lo), decode_key(rec.hi))),
        schema=arrow_schema(cols.columns),
    )
    return checksum.key_ordered(read.cast(_plain_schema(schema)), key)


def check_mysql_table(
    contract: Contract, spec: TableSpec, records: Sequence[PageRecord], t: MysqlTarget
) -> TableResult:
    key = [spec.rename.get(k, k) for k in spec.key]
    result = TableResult(spec.source, spec.target_table, pages=len(records))
    found = introspect(t.conn, t.database, only=[spec.target_table]).get(spec.target_table)
    schema = None
    for rec in records:
        result.rejected += rec.rejected + rec.load_rejected
        if rec.status != "loaded":
            result.unchecked.append({"page": rec.ref.page, "reason": f"not loaded ({rec.status})"})
            continue
        if rec.loaded_sum is None:
            result.unchecked.append(
                {
                    "page": rec.ref.page,
                    "reason": "no checksum recorded (a bulk-path page, or a run from before "
                    "checksums): its rows can be counted, not compared",
                }
            )
            continue
        if found is None:
            result.mismatched.append(
                PageResult(rec.ref.page, f"target table {t.database}.{spec.target_table} is gone")
            )
            continue
        if schema is None:
            schema = _loaded_schema(t, spec, records)
            if schema is None:
                result.unchecked.append(
                    {
                        "page": rec.ref.page,
                        "reason": "no staged page is left to tell the loaded columns, and the "
                        "table has a transform of its own",
                    }
                )
                continue
        result.checked += 1
        try:
            actual = _read_target(t, found, schema, key, rec)
        except (KeyError, pa.ArrowInvalid, pa.ArrowNotImplementedError, SluiceError) as exc:
            result.mismatched.append(
                PageResult(
                    rec.ref.page,
                    f"target {spec.target_table} cannot be read back as loaded "
                    f"({type(exc).__name__}: {exc})",
                )
            )
            continue
        if checksum.page_sum(actual, checksum.legacy(rec.loaded_sum)) == rec.loaded_sum:
            continue
        bad = _mysql_page_diff(t, spec, rec, key, found, actual)
        if bad is not None:
            result.mismatched.append(bad)
    return result


def _loaded_schema(t: MysqlTarget, spec: TableSpec, records: Sequence[PageRecord]):
    """The loaded rows' schema: a staged page's (the rows as loaded), else the source's."""
    for rec in records:
        if rec.status == "loaded":
            body = t.get(rec.ref.key(staging.TRANSFORMED))
            if body:
                return staging.read_arrow(body).schema
    return None if spec.transform else t.source_schema(spec)


def _mysql_page_diff(
    t: MysqlTarget,
    spec: TableSpec,
    rec: PageRecord,
    key: Sequence[str],
    found: SourceTable,
    actual: pa.Table,
) -> PageResult | None:
    """Row by row, by key: what differs between the page as loaded and the target's range
    (None when nothing does: the page's own staged rows explain the sum)."""
    page = rec.ref.page
    staged = _staged_rows(t.get, rec.ref)
    if staged is None:
        return PageResult(
            page,
            "the target's rows in this range do not sum to what was loaded; the staged page is "
            "gone, so the keys cannot be named",
        )
    if (
        rec.transform_sum is not None
        and checksum.page_sum(staged, checksum.legacy(rec.transform_sum)) != rec.transform_sum
    ):
        return PageResult(
            page,
            "the target's rows do not sum to what was loaded, and the staged page changed "
            "after it was loaded, so the keys cannot be named",
        )
    if _plain_schema(staged.schema) != _plain_schema(actual.schema):
        # This page's own columns (a transform may type a page's columns its own way).
        try:
            actual = _read_target(t, found, staged.schema, key, rec)
        except (KeyError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            return PageResult(
                page, f"the target cannot be read back as this page was loaded ({exc})"
            )
        if checksum.page_sum(actual, checksum.legacy(rec.loaded_sum)) == rec.loaded_sum:
            return None
    refused = _rejected_ids(t.get, rec.ref.key(staging.LOAD_REJECTED), key)
    dropped = _rejected_ids(t.get, rec.ref.key(staging.REJECTED), spec.key)
    names = staged.schema.names
    want = {}
    for row in staged.to_pylist():
        kid = _key_id([row[k] for k in key])
        if kid not in refused:
            want[kid] = row
    have = {_key_id([row[k] for k in key]): row for row in actual.to_pylist()}
    res = PageResult(page, "")
    missing = [k for k in want if k not in have]
    extra = [k for k in have if k not in want]
    different = []
    for kid, row in want.items():
        other = have.get(kid)
        if other is not None and other != row:
            column = next(c for c in names if row.get(c) != other.get(c))
            different.append({"key": _shown(key, row), "column": column})
    rejected = [k for k in {**refused, **dropped} if k not in have]
    res.missing = [_shown(key, want[k]) for k in missing[:MAX_KEYS]]
    res.extra = [_shown(key, have[k]) for k in extra[:MAX_KEYS]]
    res.different = different[:MAX_KEYS]
    res.rejected = [({**refused, **dropped})[k] for k in rejected[:MAX_KEYS]]
    res.counts = {
        "missing": len(missing),
        "extra": len(extra),
        "different": len(different),
        "rejected": len(rejected),
    }
    if not (missing or extra or different):
        res.reason = (
            "the target's rows do not sum to what was loaded, yet no row differs by key "
            "(a value the key comparison cannot see, such as a column's bytes in another collation)"
        )
    else:
        res.reason = _reason(res.counts)
    return res


def _shown(key: Sequence[str], row: dict) -> dict:
    return {k: _json_safe(row[k]) for k in key}


def _reason(counts: dict, noun: str = "row") -> str:
    parts = [
        f"{counts[k]} {noun}{'' if counts[k] == 1 else 's'} {label}"
        for k, label in (
            ("missing", "missing from the target"),
            ("extra", "in the target that no source row made"),
            ("different", "with different values"),
        )
        if counts.get(k)
    ]
    return "; ".join(parts)


# ---------------------------------------------------------------- DynamoDB


@dataclass(frozen=True, slots=True)
class DynamoTarget:
    client: object  # a botocore DynamoDB client
    get: Getter
    threads: int = 4


def _wire_key(target_key: str) -> dict:
    """A key as the transform recorded it (wire JSON fragments) as a Key for GetItem."""
    return json.loads("{" + target_key + "}")


def _item_id(item: dict, key_names: Sequence[str]) -> tuple:
    return tuple(_plain(item[k]) if k in item else None for k in key_names)


def batch_get(
    client, table: str, keys: Sequence[dict], key_names: Sequence[str], threads: int = 4
) -> dict[tuple, dict]:
    """Every item of `keys` that `table` holds (consistent reads), by key values; 100 keys a
    BatchGetItem, UnprocessedKeys asked again with a jittered backoff."""
    chunks = [list(keys[i : i + BATCH_GET]) for i in range(0, len(keys), BATCH_GET)]

    def one(chunk: list[dict]) -> list[dict]:
        got, pending, attempt = [], {table: {"Keys": chunk, "ConsistentRead": True}}, 0
        while pending:
            resp = client.batch_get_item(RequestItems=pending)
            got.extend(resp.get("Responses", {}).get(table, []))
            pending = resp.get("UnprocessedKeys") or {}
            if pending:
                attempt += 1
                if attempt >= MAX_ATTEMPTS:
                    left = len(pending.get(table, {}).get("Keys", []))
                    raise SluiceError(
                        f"DynamoDB table {table}: {left} keys still unprocessed by BatchGetItem "
                        f"after {attempt} attempts; verify again when the table is less busy"
                    )
                time.sleep(min(5.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.0))
        return got

    if threads > 1 and len(chunks) > 1:
        with ThreadPoolExecutor(threads) as pool:
            parts = list(pool.map(one, chunks))
    else:
        parts = [one(c) for c in chunks]
    return {_item_id(it, key_names): it for part in parts for it in part}


def check_dynamodb_table(
    contract: Contract,
    spec: TableSpec,
    records: Sequence[PageRecord],
    t: DynamoTarget,
    *,
    imported: bool,
    expected_keys: set | None = None,
) -> TableResult:
    """Each page's items read back and compared with the staged items. On the import way a
    page is done once transformed (its items wait under the import prefix). Adds every key
    a page accounts for (read back or rejected) to `expected_keys`."""
    table = contract.dynamo_tables[spec.target_table]
    key_names = [k for k in (table.partition_key, table.sort_key) if k]
    done = "transformed" if imported else "loaded"
    result = TableResult(spec.source, spec.target_table, pages=len(records))
    for rec in records:
        result.rejected += rec.rejected + rec.load_rejected
        if rec.status != done:
            result.unchecked.append({"page": rec.ref.page, "reason": f"not loaded ({rec.status})"})
            result.keys_complete = False
            continue
        staged_key = (
            rec.ref.import_key(spec.target_table)
            if imported
            else rec.ref.key(staging.TRANSFORMED, "dynamodb")
        )
        body = t.get(staged_key)
        if body is None:
            result.unchecked.append(
                {"page": rec.ref.page, "reason": f"its staged items ({staged_key}) are gone"}
            )
            result.keys_complete = False
            continue
        lines = gzip.decompress(body)
        result.checked += 1
        if (
            rec.transform_sum is not None
            and checksum.lines_sum(lines, checksum.legacy(rec.transform_sum)) != rec.transform_sum
        ):
            result.mismatched.append(
                PageResult(
                    rec.ref.page,
                    f"its staged items {staged_key} changed after the transform wrote them, so "
                    "they cannot stand for the source rows",
                )
            )
            result.keys_complete = False
            continue
        bad = _dynamodb_page(t, table.name, key_names, rec, lines, expected_keys)
        if bad is not None:
            result.mismatched.append(bad)
    return result


def _dynamodb_page(
    t: DynamoTarget,
    table: str,
    key_names: Sequence[str],
    rec: PageRecord,
    lines: bytes,
    expected_keys: set | None,
) -> PageResult | None:
    want = {}
    for line in lines.splitlines():
        item = json.loads(line)["Item"]
        want[_item_id(item, key_names)] = item
    source_of: dict[tuple, str] = {}
    keys_body = t.get(rec.ref.key(staging.KEYS))
    if keys_body:
        recorded = staging.read_arrow(keys_body).to_pylist()
        keys = [_wire_key(r["target_key"]) for r in recorded]
        for k, r in zip(keys, recorded, strict=True):
            source_of[_item_id(k, key_names)] = r["source_key"]
    else:  # the staged items name their keys too
        keys = [{k: item[k] for k in key_names} for item in want.values()]
    refused = {
        tuple(k.get(n) for n in key_names): k
        for k in (
            json.loads(line)["key"]
            for line in (t.get(rec.ref.key(staging.LOAD_REJECTED)) or b"").splitlines()
        )
    }
    have = batch_get(t.client, table, keys, key_names, t.threads)
    res = PageResult(rec.ref.page, "")
    missing, different, rejected = [], [], []
    for k in keys:
        kid = _item_id(k, key_names)
        if expected_keys is not None:
            expected_keys.add(kid)
        got = have.get(kid)
        shown = _shown_item(kid, key_names, source_of.get(kid))
        if got is None:
            (rejected if kid in refused else missing).append(shown)
            continue
        item = want.get(kid)
        if item is None:
            continue  # a key the transform recorded but did not stage: nothing to compare
        column = _first_difference(item, got)
        if column is not None:
            different.append({"key": shown, "column": column})
    res.counts = {"missing": len(missing), "different": len(different), "rejected": len(rejected)}
    res.rejected = rejected[:MAX_KEYS]
    if not (missing or different):
        return None
    res.missing, res.different = missing[:MAX_KEYS], different[:MAX_KEYS]
    res.reason = _reason(res.counts, "item")
    return res


def _shown_item(kid: tuple, key_names: Sequence[str], source_key: str | None) -> dict:
    shown = {n: _json_safe(v) for n, v in zip(key_names, kid, strict=True)}
    if source_key is not None:
        shown["source_key"] = source_key
    return shown


def _first_difference(want: dict, got: dict) -> str | None:
    """The first attribute (in the staged item's order, then the target's) whose plain value
    differs, or None when the items are equal."""
    for name in [*want, *(n for n in got if n not in want)]:
        a = _plain(want[name]) if name in want else None
        b = _plain(got[name]) if name in got else None
        if name not in want or name not in got or a != b:
            return name
    return None


def extra_items(client, table: str, key_names: Sequence[str], expected: set) -> list[tuple]:
    """Keys of items in `table` that no page of the run accounts for (one keys-only Scan)."""
    names = {f"#k{i}": n for i, n in enumerate(key_names)}
    kwargs = {
        "TableName": table,
        "ProjectionExpression": ", ".join(names),
        "ExpressionAttributeNames": names,
    }
    extra = []
    while True:
        resp = client.scan(**kwargs)
        for it in resp.get("Items", []):
            kid = _item_id(it, key_names)
            if kid not in expected:
                extra.append(kid)
        if "LastEvaluatedKey" not in resp:
            return extra
        kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


# ---------------------------------------------------------------- the run


def verify_pages(
    contract: Contract,
    run_id: str,
    items: Sequence[dict],
    *,
    mysql: MysqlTarget | None = None,
    dynamo: DynamoTarget | None = None,
    imports_done: Callable[[str], bool] | None = None,
    loaded_counts: dict[str, int] | None = None,
    tables: Sequence[str] | None = None,
) -> dict:
    """Every page of the run's tables (or of `tables`) compared with the target.

    Returns {"ok", "verdict", "tables": {source table: TableResult as dict},
    "dynamodb_tables": {name: {"extra": [...], "extra_count": n}}}. `loaded_counts` (items
    the run loaded per DynamoDB table) bounds the Scan for extra items."""
    records = page_records(run_id, items)
    specs = [s for s in contract.tables if tables is None or s.source in tables]
    unknown = sorted(set(tables or ()) - {s.source for s in contract.tables})
    if unknown:
        raise SluiceError(
            f"run {run_id} has no table {', '.join(unknown)}: its tables are "
            + ", ".join(s.source for s in contract.tables)
        )
    results: dict[str, TableResult] = {}
    expected: dict[str, set] = {}
    for spec in specs:
        recs = records.get(spec.source, [])
        if contract.target_kind == "mysql":
            if mysql is None:
                raise SluiceError("verifying a MySQL target needs its connection")
            results[spec.source] = check_mysql_table(contract, spec, recs, mysql)
        else:
            if dynamo is None:
                raise SluiceError("verifying a DynamoDB target needs its client")
            table = contract.dynamo_tables[spec.target_table]
            imported = table.imports
            if imported and not (imports_done and imports_done(table.name)):
                r = TableResult(spec.source, spec.target_table, pages=len(recs))
                r.unchecked = [
                    {"page": p.ref.page, "reason": f"the import of {table.name} did not complete"}
                    for p in recs
                ]
                results[spec.source] = r
                continue
            results[spec.source] = check_dynamodb_table(
                contract,
                spec,
                recs,
                dynamo,
                imported=imported,
                expected_keys=expected.setdefault(spec.target_table, set()),
            )
    targets = _extra_items(contract, results, expected, dynamo, loaded_counts or {})
    ok = all(r.ok for r in results.values()) and not any(
        t.get("extra_count") for t in targets.values()
    )
    return {
        "ok": ok,
        "verdict": _verdict(ok, results, targets),
        "tables": {n: r.to_dict() for n, r in results.items()},
        "dynamodb_tables": targets,
    }


def _extra_items(contract, results, expected, dynamo, loaded_counts) -> dict:
    """Per DynamoDB target table whose every source table was checked whole: items no page
    accounts for."""
    out: dict[str, dict] = {}
    if dynamo is None:
        return out
    for name in expected:
        sources = [s.source for s in contract.sources_of(name)]
        if any(s not in results or not results[s].keys_complete for s in sources):
            out[name] = {
                "note": "not every page of this table was checked: no scan for extra items"
            }
            continue
        if loaded_counts.get(name, 0) > SCAN_KEYS_LIMIT:
            out[name] = {"note": "too large to scan for extra items"}
            continue
        table = contract.dynamo_tables[name]
        key_names = [k for k in (table.partition_key, table.sort_key) if k]
        extra = extra_items(dynamo.client, name, key_names, expected[name])
        out[name] = {
            "extra": [_shown_item(k, key_names, None) for k in extra[:MAX_KEYS]],
            "extra_count": len(extra),
        }
    return out


def _verdict(ok: bool, results: dict[str, TableResult], targets: dict) -> str:
    pages = sum(r.checked for r in results.values())
    if ok:
        return (
            f"VERIFIED (deep): {pages} pages of {len(results)} tables read back from the target "
            "match what was loaded"
        )
    bad = []
    for name, r in results.items():
        if r.mismatched:
            listed = ", ".join(str(p.page) for p in r.mismatched[:20])
            bad.append(f"{name}: {len(r.mismatched)} of {r.checked} pages differ (pages {listed})")
        if r.unchecked:
            why = r.unchecked[0]["reason"]
            bad.append(f"{name}: {len(r.unchecked)} pages not checked ({why})")
    for name, t in targets.items():
        if t.get("extra_count"):
            bad.append(f"{name}: {t['extra_count']} items that no source row made")
    return "NOT VERIFIED (deep): " + " | ".join(bad)


def loaded_schema_from_source(src: SourceTable, spec: TableSpec) -> pa.Schema:
    """The schema of a table's loaded rows as the transform makes them from the source."""
    from .transform import to_mysql_rows

    return to_mysql_rows(arrow_schema(src.columns).empty_table(), spec).schema


# ---------------------------------------------------------------- the report on a terminal

SHOWN_KEYS = 20  # keys printed per mismatching page


def _show(key: dict) -> str:
    source = key.get("source_key")
    text = ", ".join(
        f"{k}={json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v}"
        for k, v in key.items()
        if k != "source_key"
    )
    return f"{text} (source key {source})" if source is not None else text


def render(report: dict) -> str:
    """Per table: pages checked and mismatching, and each mismatching page's keys."""
    lines = [f"Run {report.get('run_id', '?')}: every page read back from the target", ""]
    lines.append(
        f"  {'table':<24} {'pages':>6} {'checked':>8} {'matched':>8} {'mismatched':>11} "
        f"{'unchecked':>10} {'rejected':>9}"
    )
    for name, t in report["tables"].items():
        lines.append(
            f"  {name:<24.24} {t['pages']:>6} {t['checked']:>8} {t['matched']:>8} "
            f"{len(t['mismatched']):>11} {len(t['unchecked']):>10} {t['rejected_rows']:>9}"
        )
        for p in t["mismatched"]:
            lines.append(f"      page {p['page']}: {p['reason']}")
            shown = 0
            for kind in ("missing", "extra", "different", "rejected"):
                for entry in p[kind]:
                    if shown == SHOWN_KEYS:
                        break
                    if kind == "different":
                        text = f"{_show(entry['key'])} (first differing: {entry['column']})"
                    else:
                        text = _show(entry)
                    lines.append(f"        {kind:<10} {text}")
                    shown += 1
            more = sum(p["counts"].get(k, 0) for k in ("missing", "extra", "different", "rejected"))
            if more > shown:
                lines.append(
                    f"        ... and {more - shown} more (the JSON report lists {MAX_KEYS} of each)"
                )
        for u in t["unchecked"][:5]:
            lines.append(f"      page {u['page']}: not checked: {u['reason']}")
        if len(t["unchecked"]) > 5:
            lines.append(f"      ... and {len(t['unchecked']) - 5} more pages not checked")
    for name, d in (report.get("dynamodb_tables") or {}).items():
        if d.get("extra_count"):
            lines.append(f"  DynamoDB table {name}: {d['extra_count']} items no source row made")
            lines.extend(f"        extra      {_show(k)}" for k in d["extra"][:SHOWN_KEYS])
        elif d.get("note"):
            lines.append(f"  DynamoDB table {name}: {d['note']}")
    lines += ["", f"  {report['verdict']}"]
    return "\n".join(lines) + "\n"
