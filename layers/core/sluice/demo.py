"""`make demo`: build the sample shop database and migrate it twice, to DynamoDB and MariaDB."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from . import db, estimate
from .contract import parse
from .demo_data import create_demo_database
from .local.run import run_local

SOURCE_DB = "sluice_demo"
TARGET_DB = "sluice_demo_copy"
DYNAMO_TABLE = "shop"


def dynamodb_contract(load: str = "write") -> dict:
    """The shop as a single-table design: users own their orders, orders their items.

    `load` "import": the table is created by Import from S3, with the index GSI1 (on GSI1PK:
    a user by e-mail, an order by id, a category's products)."""

    def entry(source, pk, sk, kind="table", key=None, **attrs):
        target = {"table": DYNAMO_TABLE, "partition_key": pk, "sort_key": sk}
        if attrs:
            target["attributes"] = attrs
        return {"source": source, "kind": kind, "key": key or ["id"], "target": target}

    return {
        "version": 1,
        "source": {"database": SOURCE_DB},
        "target": {
            "kind": "dynamodb",
            "tables": {
                DYNAMO_TABLE: {
                    "partition_key": "PK",
                    "sort_key": "SK",
                    **(
                        {"load": "import", "gsis": [{"name": "GSI1", "partition_key": "GSI1PK"}]}
                        if load == "import"
                        else {}
                    ),
                }
            },
        },
        "defaults": {"page_size": 5000},
        "tables": [
            entry("users", "USER#{id}", "PROFILE", GSI1PK="EMAIL#{email}"),
            entry(
                "orders", "USER#{user_id}", "ORDER#{id}", GSI1PK="ORDER#{id}", GSI1SK="{placed_at}"
            ),
            entry("order_items", "ORDER#{order_id}", "ITEM#{line_no}", key=["order_id", "line_no"]),
            entry("order_totals", "ORDER#{order_id}", "TOTAL", kind="view", key=["order_id"]),
            entry(
                "products", "PRODUCT#{sku}", "PRODUCT", key=["sku"], GSI1PK="CATEGORY#{category_id}"
            ),
            entry("categories", "CATEGORY#{id}", "CATEGORY"),
        ],
    }


def mysql_contract() -> dict:
    tables = [
        ("users", ["id"], "table"),
        ("orders", ["id"], "table"),
        ("order_items", ["order_id", "line_no"], "table"),
        ("order_totals", ["order_id"], "view"),
        ("products", ["sku"], "table"),
        ("categories", ["id"], "table"),
    ]
    return {
        "version": 1,
        "source": {"database": SOURCE_DB},
        "target": {"kind": "mysql", "database": TARGET_DB},
        "defaults": {"page_size": 5000},
        "tables": [
            {"source": s, "kind": k, "key": key, "target": {"table": s}} for s, key, k in tables
        ],
    }


def dynamodb_way(conn) -> estimate.Estimate:
    """Both ways into the new shop table, priced from the source: the demo takes the cheaper."""
    shop = parse(dynamodb_contract("import"))
    (total,) = estimate.per_target(estimate.for_contract(conn, shop))
    return total


def how_items_arrived(way: estimate.Estimate, summary: dict) -> str:
    """One line: which way the items took, what arrived, and both ways' estimated cost."""
    costs = f"{estimate.money(way.import_.cost)} vs {estimate.money(way.write.cost)} by writes"
    imp = (summary.get("imports") or {}).get(DYNAMO_TABLE)
    if way.cheaper == "import" and imp:
        return (
            f"items arrived by Import from S3: {imp.get('imported', 0):,} imported, "
            f"{imp.get('errors', 0):,} errors, {costs} (estimated, the cheaper way)"
        )
    return (
        f"items arrived by BatchWriteItem, the cheaper way here: {estimate.money(way.write.cost)} "
        f"vs {estimate.money(way.import_.cost)} by import (estimated)"
    )


def _connection_url() -> str:
    url = os.environ.get("SLUICE_MYSQL_URL") or os.environ.get("SLUICE_SOURCE_URL")
    if not url:
        raise SystemExit(
            "sluice demo: set SLUICE_MYSQL_URL (make demo does, from .sluice/mysql.env)"
        )
    return url


def run_demo(scale: float = 1.0, workdir: Path = Path(".sluice/demo"), out=None) -> int:
    out = out or sys.stdout
    url = _connection_url()
    os.environ.setdefault("SLUICE_SOURCE_URL", url)
    os.environ.setdefault("SLUICE_TARGET_URL", url)
    info = db.parse_url(url)
    conn = db.connect(info)
    t0 = time.time()
    counts = create_demo_database(conn, SOURCE_DB, scale=scale)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{TARGET_DB}`")
    way = dynamodb_way(conn)
    conn.close()
    out.write(
        f"Built the sample shop `{SOURCE_DB}` on {info.host}:{info.port} in {time.time() - t0:.1f} s: "
        + ", ".join(f"{t} {n:,}" for t, n in counts.items())
        + f" ({sum(counts.values()):,} rows)\n"
    )
    workdir.mkdir(parents=True, exist_ok=True)
    results = []
    how = "Import from S3" if way.cheaper == "import" else "BatchWriteItem"
    for label, doc in (
        (
            f"DynamoDB (single-table design, in-process emulator, by {how})",
            dynamodb_contract(way.cheaper),
        ),
        (f"MariaDB database `{TARGET_DB}`", mysql_contract()),
    ):
        path = workdir / f"contract-{doc['target']['kind']}.json"
        path.write_text(json.dumps(doc, indent=2) + "\n")
        out.write(f"\n== Migrating into {label}  (contract: {path})\n")
        out.flush()
        summary = run_local(
            path,
            samples=2 if doc["target"]["kind"] == "dynamodb" else 0,
            out=out,
            workers="auto",  # as `sluice run --local` runs it
        )
        results.append((label, summary))
    ok = all(s["ok"] for _, s in results)
    out.write("\n== Verdict\n")
    for label, s in results:
        out.write(f"  {'OK  ' if s['ok'] else 'FAIL'} {label}: {s['verdict']}\n")
        if label.startswith("DynamoDB"):
            out.write(f"       {how_items_arrived(way, s)}\n")
    out.write(
        "  Every row arrived.\n"
        if ok
        else "  Some rows did not arrive: see the failed pages above.\n"
    )
    return 0 if ok else 1
