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


def verify(
    contract: Contract,
    progress: dict[str, TableProgress],
    *,
    source_conn,
    target_conn=None,
    dynamo=None,
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
            targets[name] = {"loaded": loaded, "items": items, "ok": items == loaded}
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
        verdict = "NOT VERIFIED: " + " | ".join(bad)
    return {"ok": ok, "verdict": verdict, "tables": tables, "dynamodb_tables": targets}
