"""Verification: source counts against the manifest's page counts and the target's own."""

from __future__ import annotations

from .contract import Contract
from .manifest import TableProgress
from .sql import qualified

SCAN_COUNT_LIMIT = 1_000_000  # above this many items, counting a DynamoDB table costs too much


def _count(conn, database: str, table: str) -> int:
    with conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {qualified(database, table)}")  # noqa: S608
        return int(cur.fetchone()[0])


def _scan_count(dynamo, table: str) -> int:
    total, kwargs = 0, {"TableName": table, "Select": "COUNT"}
    while True:
        resp = dynamo.scan(**kwargs)
        total += resp["Count"]
        if "LastEvaluatedKey" not in resp:
            return total
        kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


def _shared_keys(contract: Contract, item_keys) -> dict[str, list[dict]]:
    """Item keys that rows of different pages or tables share: DynamoDB keeps one of them.

    (Within a page the transform refuses the repeat; across pages only the union shows it.)"""
    import pyarrow as pa
    import pyarrow.compute as pc

    by_target: dict[str, list] = {}
    for spec in contract.tables:
        keys = item_keys(spec.source)
        if keys is not None and keys.num_rows:
            keys = keys.append_column(
                "source", pa.array([spec.source] * keys.num_rows, pa.string())
            )
            by_target.setdefault(spec.target_table, []).append(keys)
    out: dict[str, list[dict]] = {}
    for target, parts in by_target.items():
        allkeys = pa.concat_tables(parts)
        counts = allkeys.group_by("target_key").aggregate([("target_key", "count")])
        shared = counts.filter(pc.greater(counts.column("target_key_count"), 1)).column(
            "target_key"
        )
        if len(shared) == 0:
            continue
        rows = allkeys.filter(pc.is_in(allkeys.column("target_key"), value_set=shared)).to_pylist()
        grouped: dict[str, list] = {}
        for r in rows:
            grouped.setdefault(r["target_key"], []).append((r["source"], r["source_key"]))
        out[target] = [{"key": k, "rows": v} for k, v in sorted(grouped.items())]
    return out


def verify(
    contract: Contract,
    progress: dict[str, TableProgress],
    *,
    source_conn,
    target_conn=None,
    dynamo=None,
    item_keys=None,
) -> dict:
    """Per table: every page loaded, source rows = extracted = loaded + rejected, and the
    target holds them (MySQL: its COUNT(*); DynamoDB: items per target table)."""
    tables, ok = {}, True
    per_target: dict[str, int] = {}
    for spec in contract.tables:
        p = progress.get(spec.source) or TableProgress(spec.source)
        problems = []
        source_rows = _count(source_conn, contract.source_database, spec.source)
        if not p.done:
            missing = p.pages - p.pages_loaded
            problems.append(f"{missing} of {p.pages} pages not loaded")
        if source_rows != p.extracted:
            problems.append(f"source has {source_rows} rows, pages extracted {p.extracted}")
        if p.extracted != p.loaded + p.rejected:
            problems.append(f"extracted {p.extracted} != loaded {p.loaded} + rejected {p.rejected}")
        entry = {
            "source_rows": source_rows,
            "extracted": p.extracted,
            "loaded": p.loaded,
            "rejected": p.rejected,
            "pages": p.pages,
        }
        if target_conn is not None:
            target_rows = _count(target_conn, contract.target_database, spec.target_table)
            entry["target_rows"] = target_rows
            if target_rows != p.loaded:
                problems.append(
                    f"target {spec.target_table} has {target_rows} rows, loaded {p.loaded}"
                )
        per_target[spec.target_table] = per_target.get(spec.target_table, 0) + p.loaded
        entry["problems"] = problems
        entry["ok"] = not problems
        ok &= not problems
        tables[spec.source] = entry
    targets = {}
    if item_keys is not None:
        for name, clashes in _shared_keys(contract, item_keys).items():
            targets.setdefault(name, {})["shared_keys"] = clashes
            ok = False
    if dynamo is not None:
        for name, loaded in per_target.items():
            if loaded > SCAN_COUNT_LIMIT:
                targets[name] = {
                    "loaded": loaded,
                    "items": None,
                    "note": "too large to count by scan",
                }
                continue
            items = _scan_count(dynamo, name)
            targets.setdefault(name, {}).update(
                {"loaded": loaded, "items": items, "ok": items == loaded}
            )
            ok &= items == loaded
    rows = sum(t["source_rows"] for t in tables.values())
    rejected = sum(t["rejected"] for t in tables.values())
    if ok:
        verdict = f"VERIFIED: all {rows} source rows accounted for ({rows - rejected} loaded, {rejected} rejected)"
    else:
        bad = [f"{n}: {'; '.join(t['problems'])}" for n, t in tables.items() if t["problems"]]
        bad += [
            f"{n}: {v['items']} items, {v['loaded']} loaded"
            for n, v in targets.items()
            if v.get("ok") is False
        ]
        for n, v in targets.items():
            for c in v.get("shared_keys", [])[:5]:
                rows = ", ".join(f"{t}({k})" for t, k in c["rows"])
                bad.append(
                    f"{n}: key {c['key']} written by {len(c['rows'])} rows, so merged: {rows}"
                )
        verdict = "NOT VERIFIED: " + " | ".join(bad)
    return {"ok": ok, "verdict": verdict, "tables": tables, "dynamodb_tables": targets}
