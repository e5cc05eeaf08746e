"""`sluice plan --estimate --contract` on a live source: each table's path and its AWS bill,
for a MySQL target too (which has no ways into DynamoDB to compare)."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.mysql]


def test_plan_estimate_prices_each_table_s_path_into_mysql(
    demo_source, mysql_env, connect, tmp_path, capsys
):
    from sluice import cli
    from sluice.demo import mysql_contract

    doc = mysql_contract()
    doc["source"]["database"] = demo_source
    doc["tables"][0]["path"] = "bulk"  # users: forced onto the bulk path
    path = tmp_path / "contract.json"
    path.write_text(json.dumps(doc))

    assert cli.main(["plan", "--estimate", "--contract", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["tables"], report["targets"]) == ([], [])  # no DynamoDB ways
    paths = {p["name"]: p for p in report["paths"]}
    assert list(paths) == [t["source"] for t in doc["tables"]]
    with connect(demo_source).cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM order_totals")
        assert paths["order_totals"]["rows"] == cur.fetchone()[0]  # a view: counted
    for name, p in paths.items():
        lines = {line["what"]: line for line in p["lines"]}
        assert p["chosen"] and p["rows"] > 0 and p["pages"] >= 1, name
        assert p["pages"] == -(-p["rows"] // 5000), name  # the contract's page_size
        assert lines["MySQL target"]["cost_usd"] == 0, name
        assert p["cost_usd"] == pytest.approx(sum(x["cost_usd"] for x in p["lines"])), name
        if name == "users":
            assert (p["path"], p["why"]) == ("bulk", 'the contract says "path": "bulk"')
            assert lines["Glue"]["quantity"] > 0
        else:
            assert p["path"] == "lambda", name
            assert "rows <= bulk_threshold_rows 50,000,000" in p["why"], name
            assert lines["Lambda load"]["quantity"] > 0 and lines["SQS requests"]["quantity"] > 0

    assert cli.main(["plan", "--estimate", "--contract", str(path)]) == 0
    out = capsys.readouterr().out
    assert "users: bulk path (the plan's path" in out and "into MySQL users" in out
    assert "all tables: $" in out and "Price table (us-east-1" in out
    assert "cheaper" not in out.split("users:")[0]  # no write-vs-import table
