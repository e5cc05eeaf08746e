"""`sluice demo` at a small scale: the shop database migrated to DynamoDB and to MariaDB."""

from __future__ import annotations

import io
import re

import pytest
from sluice.demo import run_demo

from .conftest import restored_environ

pytestmark = [pytest.mark.mysql, pytest.mark.slow]

DEMO_TABLES = ("users", "orders", "order_items", "order_totals", "products", "categories")


def test_demo_migrates_the_shop_to_both_targets_and_verifies_them(monkeypatch, mysql_env, tmp_path):
    monkeypatch.setenv("SLUICE_MYSQL_URL", mysql_env)
    monkeypatch.chdir(tmp_path)  # run state goes under ./.sluice
    out = io.StringIO()

    with restored_environ():  # the local runtime sets AWS_* and SLUICE_* for its handlers
        assert run_demo(scale=0.02, workdir=tmp_path / "demo", out=out) == 0
    text = out.getvalue()

    # The per-table summary of each run: every table, all rows loaded, none rejected.
    for table in DEMO_TABLES:
        rows = re.findall(rf"^  {table} +([\d,]+) +([\d,]+) +([\d,]+) +\d+ ", text, re.M)
        assert len(rows) == 2, f"{table}: expected a summary line per target in\n{text}"
        for extracted, loaded, rejected in rows:
            assert extracted == loaded != "0" and rejected == "0", (table, extracted, loaded)
    # Sample items of the single-table design, read back from DynamoDB.
    assert "Sample items" in text
    assert re.search(r"^    users +PK=USER#\d+, SK=PROFILE", text, re.M)
    assert re.search(r"^    orders +PK=USER#\d+, SK=ORDER#\d+", text, re.M)
    # The new shop table came by Import from S3, the cheaper way, and the summary says so.
    assert re.search(
        r"^       items arrived by Import from S3: [\d,]+ imported, 0 errors, "
        r"\$[\d.]+ vs \$[\d.]+ by writes",
        text,
        re.M,
    ), text
    assert re.search(
        r"^  shop: Import from S3 COMPLETED: ([\d,]+) of \1 items imported", text, re.M
    )
    # Both targets verified.
    assert re.search(r"^  OK +DynamoDB .*: VERIFIED: ", text, re.M)
    assert re.search(r"^  OK +MariaDB .*: VERIFIED: ", text, re.M)
    assert "NOT VERIFIED" not in text
    assert (tmp_path / "demo" / "contract-dynamodb.json").exists()
