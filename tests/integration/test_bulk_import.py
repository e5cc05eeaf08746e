"""A bulk table whose DynamoDB table an import creates: the job stages the items under the
table's import prefix (as the transform stage does), and the run imports them."""

from __future__ import annotations

import pytest

from .bulk_helpers import ROWS, contract, create_source, ensure_spark, run

pytestmark = [pytest.mark.mysql, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def spark():
    ensure_spark()
    from sluice.bulk_spark import local_session

    return local_session()


def test_bulk_pages_are_staged_for_the_import_and_imported(
    connect, new_database, mysql_env, tmp_path
):
    source = new_database("bulk_imp")
    create_source(connect(), source)
    doc = contract(source, {"kind": "dynamodb", "table": "bulk-imported"}, path="bulk")
    doc["target"]["tables"]["bulk-imported"]["load"] = "import"
    summary = run(doc, tmp_path, "import")
    assert summary["ok"], summary["verdict"]
    assert "glue:startJobRun.sync" in summary["execution"]["task_resources"]
    for name, t in summary["tables"].items():
        assert (t["path"], t["load"]) == ("bulk", "import")
        assert (t["extracted"], t["loaded"], t["rejected"]) == (ROWS[name], ROWS[name], 0)
    imp = summary["imports"]["bulk-imported"]
    assert (imp["status"], imp["imported"]) == ("COMPLETED", sum(ROWS.values()))
