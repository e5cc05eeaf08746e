"""A local run that ends with a failed page stays redrivable after its process exits:
`sluice status`, `redrive` and `resume --local` from other processes finish it exactly."""

from __future__ import annotations

import io
import json
import subprocess
import sys

from sluice.local.run import run_local

PAGE_SIZE = 10


def sluice_cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """The `sluice` command in a process of its own, as from another shell."""
    return subprocess.run(
        [sys.executable, "-m", "sluice.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _contract(source: str, target: str) -> dict:
    return {
        "version": 1,
        "source": {"database": source},
        "target": {"kind": "mysql", "database": target},
        "defaults": {"page_size": PAGE_SIZE},
        "tables": [{"source": "users", "key": ["id"], "target": {"table": "users"}}],
    }


def test_failed_page_is_redriven_and_resumed_from_other_processes(
    demo_source, new_database, connect, mysql_env, tmp_path, table_hex_rows
):
    target = new_database("dst")
    admin = connect()
    with admin.cursor() as cur:
        cur.execute(f"CREATE TABLE `{target}`.users LIKE `{demo_source}`.users")
        cur.execute(f"SELECT COUNT(*), MIN(id) FROM `{demo_source}`.users")
        rows, first_id = cur.fetchone()
        # A target-side rule that refuses one row's page outright (SIGNAL is no value
        # error, so the whole page fails, is retried, and lands in the load DLQ).
        cur.execute(
            f"CREATE TRIGGER `{target}`.no_first BEFORE INSERT ON `{target}`.users "
            f"FOR EACH ROW BEGIN IF NEW.id = {int(first_id)} THEN "
            "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'first user refused by a trigger'; "
            "END IF; END"
        )
    assert rows > 2 * PAGE_SIZE
    path = tmp_path / "contract.json"
    path.write_text(json.dumps(_contract(demo_source, target)))
    state = tmp_path / "run"

    summary = run_local(path, as_json=True, out=io.StringIO(), err=io.StringIO(), state_dir=state)

    run_id = summary["run_id"]
    assert summary["status"] == "FAILED", summary["verdict"]
    users = summary["tables"]["users"]
    assert [(p["page"], p["status"], p["stage"]) for p in users["failed_pages"]] == [
        (1, "failed", "load")
    ]
    assert "first user refused by a trigger" in users["failed_pages"][0]["error"]
    assert users["loaded"] == rows - PAGE_SIZE  # every other page arrived

    # Another process sees the saved run: the failed page and the message in the load DLQ.
    where = ("--local", "--run", run_id, "--state-dir", str(state))
    st = sluice_cli("status", *where, "--json")
    assert st.returncode == 0, st.stderr
    status = json.loads(st.stdout)
    assert status["dlq_depths"] == {"extract": 0, "transform": 0, "load": 1}
    assert status["pages_loaded"] == status["pages"] - 1
    assert [p["page"] for p in status["tables"]["users"]["failed_pages"]] == [1]

    # The user fixes the cause, then redrives and resumes, each from a process of its own.
    with admin.cursor() as cur:
        cur.execute(f"DROP TRIGGER `{target}`.no_first")
    rd = sluice_cli("redrive", *where)
    assert rd.returncode == 0, rd.stderr
    assert "1 messages back to the queue (loop)" in rd.stdout, rd.stdout
    st = json.loads(sluice_cli("status", *where, "--json").stdout)
    assert st["dlq_depths"]["load"] == 0
    assert st["tables"]["users"]["failed_pages"][0]["status"] == "redriven"

    rs = sluice_cli("resume", *where, "--json")
    assert rs.returncode == 0, rs.stderr + rs.stdout
    resumed = json.loads(rs.stdout)
    assert resumed["status"] == "SUCCEEDED", resumed["verdict"]
    assert resumed["tables"]["users"]["loaded"] == rows
    assert resumed["tables"]["users"]["failed_pages"] == []
    assert table_hex_rows(target, "users", ["id"]) == table_hex_rows(demo_source, "users", ["id"])

    # Done: status says so, and there is nothing left to redrive.
    st = json.loads(sluice_cli("status", *where, "--json").stdout)
    assert (st["pages_loaded"], st["dlq_depths"]["load"]) == (st["pages"], 0)
    assert "nothing to redrive" in sluice_cli("redrive", *where).stdout
