"""`sluice init`: a starter contract written from the live source schema."""

from __future__ import annotations

import os
from typing import Any

from .db import ConnInfo
from .source import SourceTable, introspect
from .sql import check_ident, q, qualified


def _unique_not_null(conn, database: str, view: str, cols: list[str]) -> bool:
    expr = ", ".join(q(c) for c in cols)
    nulls = " OR ".join(f"{q(c)} IS NULL" for c in cols)
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT COUNT(*), COUNT(DISTINCT {expr}), COALESCE(SUM({nulls}), 0) FROM {qualified(database, view)}"  # noqa: S608
        )
        total, distinct, null_rows = cur.fetchone()
    return int(null_rows) == 0 and int(distinct) == int(total)


def _not_plain(src: SourceTable) -> list[str]:
    """The source's name and column names that Sluice cannot quote (see sql.check_ident)."""
    bad = []
    for name in (src.name, *src.column_names):
        try:
            check_ident(name)
        except ValueError:
            bad.append(name)
    return bad


def view_key(conn, database: str, view: SourceTable) -> list[str] | None:
    """Key columns for a view, proposed only when the data shows them unique and not null:
    single id-like columns first, then the first column, then the first two together."""
    names = list(view.column_names)
    idlike = [n for n in names if n.lower() == "id" or n.lower().endswith(("id", "_id"))]
    candidates = [[n] for n in dict.fromkeys([*idlike, names[0]])]
    if len(names) >= 2:
        candidates.append(names[:2])
    for cols in candidates:
        if _unique_not_null(conn, database, view.name, cols):
            return cols
    return None


def starter_contract(conn, info: ConnInfo, target: str) -> dict[str, Any]:
    """A contract moving every base table and view that has a usable key."""
    database = info.database
    sources = introspect(conn, database)
    entries, skipped = [], []
    for name, src in sources.items():
        if bad := _not_plain(src):
            skipped.append(
                {
                    "source": name,
                    "reason": f"{', '.join(repr(b) for b in bad)}: not a plain identifier "
                    "(letters, digits, _ and $); move it through a view that renames it",
                }
            )
            continue
        if src.kind == "table":
            key = list(src.primary_key)
            if not key:
                skipped.append(
                    {
                        "source": name,
                        "reason": "no primary key: add one, or declare key columns by hand",
                    }
                )
                continue
        else:
            key = view_key(conn, database, src)
            if key is None:
                skipped.append(
                    {
                        "source": name,
                        "reason": "view: no column (or first pair) is unique and not null in the data; declare key columns by hand",
                    }
                )
                continue
        entries.append((name, src, key))
    doc: dict[str, Any] = {
        "version": 1,
        "source": {
            "database": database,
            "url": f"mysql://{info.user}@{info.host}:{info.port}/{database}",
        },
    }
    notes = []
    if target == "dynamodb":
        table = database if len(database) >= 3 else f"{database}-items"
        load, why = proposed_load(table)
        notes.append(why)
        doc["target"] = {
            "kind": "dynamodb",
            "tables": {table: {"partition_key": "PK", "sort_key": "SK", "load": load}},
        }
        doc["tables"] = [_dynamo_entry(name, src, key, table) for name, src, key in entries]
    else:
        from .db import parse_url

        tinfo = parse_url(target)
        if not tinfo.database:
            raise ValueError(f"target URL {target!r} names no database: mysql://host:port/DATABASE")
        doc["target"] = {
            "kind": "mysql",
            "database": tinfo.database,
            "url": f"mysql://{tinfo.user}@{tinfo.host}:{tinfo.port}/{tinfo.database}",
        }
        doc["tables"] = [
            {
                "source": name,
                "kind": src.kind,
                "key": key,
                "target": {"table": name, "on_conflict": "replace"},
            }
            for name, src, key in entries
        ]
    doc["defaults"] = {"page_size": 10000}
    if notes:
        doc["notes"] = notes
    if skipped:
        doc["skipped"] = skipped
    return doc


def proposed_load(table: str) -> tuple[str, str]:
    """How items should reach the new table `table`: ("import" | "write", why).

    Import from S3 is the cheaper way into a table that does not exist yet (see `sluice plan
    --estimate`), and the only one that uses no write capacity. `init` works offline, without
    AWS credentials, so it cannot ask the account whether the table exists: it proposes
    "import" and says so. With AWS_ENDPOINT_URL_DYNAMODB set (DynamoDB Local, an emulator)
    it keeps "write": a local run's import reads the staging bucket of its own in-process
    emulator, which no endpoint can see.
    """
    endpoint = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB")
    if endpoint:
        return "write", (
            f'table {table}: "load": "write" (BatchWriteItem), since items go to the '
            f"endpoint {endpoint}, which cannot import from a local run's staging bucket"
        )
    return "import", (
        f'table {table}: "load": "import" proposed, as for a table that does not exist yet: '
        "Import from S3 creates it without using write capacity and costs less (`sluice plan "
        "--estimate`). sluice init did not check your AWS account: if the table exists, set "
        f'$.target.tables.{table}.load to "write"'
    )


def _dynamo_entry(name: str, src: SourceTable, key: list[str], table: str) -> dict:
    entity = name.upper()
    pk = f"{entity}#{{{key[0]}}}"
    sk = f"{entity}#" + "#".join(f"{{{k}}}" for k in key[1:]) if len(key) > 1 else entity
    return {
        "source": name,
        "kind": src.kind,
        "key": key,
        "target": {"table": table, "partition_key": pk, "sort_key": sk},
    }
