"""What the bulk path's tests share: PySpark and the JDBC driver made present, a source with
awkward values and a composite key, and one local run per contract."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest
from sluice.bulk_spark import JDBC_JAR

ROOT = Path(__file__).resolve().parents[2]


def ensure_spark() -> None:
    """scripts/ensure-spark.sh when PySpark or the MariaDB JDBC driver is missing (it installs
    them: the pinned pyspark into .venv, libmariadb-java from Debian)."""
    if importlib.util.find_spec("pyspark") is not None and Path(JDBC_JAR).exists():
        return
    proc = subprocess.run(
        [str(ROOT / "scripts" / "ensure-spark.sh")], capture_output=True, text=True, timeout=900
    )
    if proc.returncode != 0:
        pytest.fail(f"scripts/ensure-spark.sh failed: {proc.stderr[-2000:]}")
    importlib.invalidate_caches()


# Values that a lossy path would change: NULLs, the largest BIGINT UNSIGNED, DECIMAL past a
# double's digits, microseconds, a FLOAT, bytes with NUL and quotes, JSON, 4-byte UTF-8, and
# strings with quotes, backslashes, tabs and newlines (also in the composite key).
SOURCE_SQL = (
    """CREATE TABLE items (
        id BIGINT UNSIGNED PRIMARY KEY,
        name VARCHAR(60) NULL,
        price DECIMAL(30,10) NULL,
        ratio FLOAT NULL,
        at DATETIME(6) NULL,
        data BLOB NULL,
        doc JSON NULL
    ) CHARACTER SET utf8mb4""",
    """INSERT INTO items
       SELECT seq * 3,
              CASE WHEN seq % 7 = 0 THEN NULL
                   ELSE CONCAT('it''em "', seq, '" \\\\ \t', CHAR(10), ' 😀') END,
              CASE WHEN seq % 5 = 0 THEN NULL ELSE seq / 7 + 12345678901234567890 END,
              seq / 3,
              TIMESTAMPADD(MICROSECOND, seq, '2024-02-29 23:59:59.000001'),
              CASE WHEN seq % 4 = 0 THEN NULL ELSE CONCAT(X'00', '''', X'ff', seq) END,
              CASE WHEN seq % 3 = 0 THEN NULL ELSE JSON_OBJECT('n', seq, 's', 'é"\\\\') END
       FROM seq_1_to_1200""",
    "INSERT INTO items (id) VALUES (18446744073709551615)",
    """CREATE TABLE order_lines (
        order_id INT NOT NULL,
        code VARCHAR(20) NOT NULL,
        qty INT NOT NULL,
        PRIMARY KEY (order_id, code)
    ) CHARACTER SET utf8mb4""",
    """INSERT INTO order_lines
       SELECT o.seq, ELT(c.seq, 'a''b', 'a\\\\b', 'Z', 'é', 'a b', '%s'), o.seq * c.seq
       FROM seq_1_to_150 o, seq_1_to_6 c""",
    "ANALYZE TABLE items, order_lines",
)
ROWS = {"items": 1201, "order_lines": 900}
KEYS = {"items": ["id"], "order_lines": ["order_id", "code"]}


def create_source(conn, database: str) -> None:
    with conn.cursor() as cur:
        cur.execute(f"USE `{database}`")
        for sql in SOURCE_SQL:
            cur.execute(sql)
            if sql.startswith("ANALYZE"):
                cur.fetchall()


def contract(source_db: str, target: dict, *, path: str, page_size: int = 250) -> dict:
    """Both tables; with path "bulk" the items table is routed by the threshold (1 row) and
    order_lines by its own "path"; with "lambda" both say so, over the same threshold."""
    tables = []
    for name in ("items", "order_lines"):
        entry = {"source": name, "key": KEYS[name]}
        if target["kind"] == "mysql":
            entry["target"] = {"table": name}
        elif name == "items":
            entry["target"] = {
                "table": target["table"],
                "partition_key": "ITEM#{id}",
                "sort_key": "ITEM",
            }
        else:
            entry["target"] = {
                "table": target["table"],
                "partition_key": "ORDER#{order_id}",
                "sort_key": "LINE#{code}",
            }
        if path == "lambda" or name == "order_lines":
            entry["path"] = path
        tables.append(entry)
    if target["kind"] == "mysql":
        tgt = {"kind": "mysql", "database": target["database"]}
    else:
        tgt = {
            "kind": "dynamodb",
            "tables": {target["table"]: {"partition_key": "PK", "sort_key": "SK"}},
        }
    return {
        "version": 1,
        "source": {"database": source_db},
        "target": tgt,
        "defaults": {"page_size": page_size, "bulk_threshold_rows": 1},
        "tables": tables,
    }


def run(doc: dict, tmp_path: Path, label: str) -> dict:
    from sluice.local.run import run_local

    path = tmp_path / f"{label}.json"
    path.write_text(json.dumps(doc))
    return run_local(
        path,
        run_id=f"bulk-{label}-{uuid.uuid4().hex[:6]}",
        state_dir=tmp_path / label,
        out=io.StringIO(),
        err=io.StringIO(),
        timeout=600,
    )


def assert_paths(summary: dict, path: str) -> None:
    assert summary["ok"], summary["verdict"]
    assert {t["path"] for t in summary["tables"].values()} == {path}
    for name, t in summary["tables"].items():
        assert (t["extracted"], t["loaded"], t["rejected"]) == (ROWS[name], ROWS[name], 0), t
    glue = "glue:startJobRun.sync" in summary["execution"]["task_resources"]
    assert glue == (path == "bulk")
    # Bulk pages get no page messages: nothing is extracted by the Lambda workers.
    assert ("ExtractFunction" in summary["invocations"]) == (path == "lambda")


def environ_with(**values: str):
    saved = dict(os.environ)
    os.environ.update(values)
    return saved
