"""`sluice run --local` on the demo shop into a MySQL target, and the CLI's validate and init."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import time

import pytest
from sluice.contract import problems
from sluice.local.run import run_local

# The demo shop's tables and view with their keys (see sluice.demo_data).
DEMO_KEYS = {
    "users": ["id"],
    "categories": ["id"],
    "products": ["sku"],
    "orders": ["id"],
    "order_items": ["order_id", "line_no"],
    "order_totals": ["order_id"],
}


def sluice_cli(*args: str) -> subprocess.CompletedProcess:
    """The `sluice` command, run as a user runs it (a process of its own)."""
    return subprocess.run(
        [sys.executable, "-m", "sluice.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_local_run_copies_every_table_and_view_exactly(
    demo_source, target_only_account, mysql_env, monkeypatch, tmp_path, table_hex_rows
):
    # The target account sees only its own database, as on a separate server.
    monkeypatch.setenv("SLUICE_TARGET_URL", target_only_account.url)
    target_db = target_only_account.database
    contract = {
        "version": 1,
        "source": {"database": demo_source},
        "target": {"kind": "mysql", "database": target_db},
        "defaults": {"page_size": 40},
        "tables": [
            {
                "source": name,
                "kind": "view" if name == "order_totals" else "table",
                "key": key,
                "target": {"table": name},
            }
            for name, key in DEMO_KEYS.items()
        ],
    }
    path = tmp_path / "contract.json"
    path.write_text(json.dumps(contract))
    out, err = io.StringIO(), io.StringIO()

    summary = run_local(
        path, as_json=True, out=out, err=err, state_dir=tmp_path / "state", timeout=120
    )

    assert summary["status"] == "SUCCEEDED", summary["verdict"]
    assert summary["ok"] is True
    printed = json.loads(out.getvalue())
    assert (printed["run_id"], printed["status"]) == (summary["run_id"], "SUCCEEDED")
    assert set(summary["tables"]) == set(DEMO_KEYS)
    for name, t in summary["tables"].items():
        assert t["extracted"] == t["loaded"] > 0, name
        assert (t["rejected"], t["failed_pages"]) == (0, []), name
        assert t["pages_loaded"] == t["pages"], name
    assert summary["tables"]["order_items"]["pages"] > 1
    for name, key in DEMO_KEYS.items():
        assert table_hex_rows(target_db, name, key) == table_hex_rows(demo_source, name, key), name


def test_validate_reports_each_problem_of_a_bad_contract_by_json_path(tmp_path):
    bad = {
        "version": 1,
        "source": {"database": "shop db"},
        "target": {"kind": "mysql"},
        "tables": [{"source": "users", "key": [], "page_size": 0, "target": {"table": "users"}}],
    }
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))

    result = sluice_cli("validate", str(path))

    assert result.returncode == 1
    for line in (
        "$.source.database: 'shop db'",
        "$.target: 'database'",
        "$.tables[0].key: []",
        "$.tables[0].page_size: 0",
    ):
        assert f"  {line}" in result.stderr, result.stderr
    assert result.stdout == ""


def test_init_for_dynamodb_covers_every_table_and_the_view(demo_source, mysql_env, tmp_path):
    result = sluice_cli(
        "init", "--source", f"{mysql_env.rstrip('/')}/{demo_source}", "--target", "dynamodb"
    )

    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert problems(doc) == []
    assert "skipped" not in doc
    assert {t["source"]: t["key"] for t in doc["tables"]} == DEMO_KEYS
    assert {t["source"]: t["kind"] for t in doc["tables"]}["order_totals"] == "view"
    assert doc["target"]["kind"] == "dynamodb"
    path = tmp_path / "starter.json"
    path.write_text(result.stdout)
    # The starter contract also holds against the live schema.
    live = sluice_cli("validate", "--live", str(path))
    assert live.returncode == 0, live.stderr


def test_the_local_functions_are_created_as_the_template_declares_them(mysql_env):
    """Name, handler, timeout and runtime of each function in the emulator, from
    template.yaml (its Globals, then the function's own properties); one function's runtime
    changed before the stack is made shows the emulator's comes from the template."""
    import dataclasses

    from sluice import aws
    from sluice.local.runtime import LocalStack
    from sluice.local.template import load_yaml

    stack = LocalStack(consumers=False)
    doc = load_yaml(stack.root / "template.yaml")
    glob = doc["Globals"]["Function"]
    declared = {
        lid: doc["Resources"][lid]["Properties"].get("Runtime", glob["Runtime"])
        for lid in stack.template.functions
    }
    declared["PlanFunction"] = "python3.12"
    stack.template.functions["PlanFunction"] = dataclasses.replace(
        stack.template.functions["PlanFunction"], runtime="python3.12"
    )
    with stack:
        lam = aws.client("lambda")
        for lid, fn in stack.template.functions.items():
            props = doc["Resources"][lid]["Properties"]
            conf = lam.get_function(FunctionName=stack.function_names[lid])["Configuration"]
            assert conf["Runtime"] == declared[lid], lid
            assert conf["Handler"] == props.get("Handler", glob.get("Handler")), lid
            assert conf["Timeout"] == int(props.get("Timeout", glob["Timeout"])), lid
            assert conf["Timeout"] == fn.timeout, lid


def test_concurrent_consumers_of_one_function_each_run_their_own_handler_module(
    unwired_stack, monkeypatch
):
    """Lambda runs concurrent invocations in separate execution environments, and the load
    handler keeps its batch's state in a module-level BatchProcessor. The local stack's two
    load consumers, both inside a page at once, must each see their own module's processor:
    sharing one mixed up their batches' failures (a failed message reported handled and
    deleted: the fault-injection soak lost pages that way), and their metrics their own."""
    import threading

    from sluice import aws, stages
    from sluice.local.runtime import consumer_count
    from sluice.staging import TRANSFORMED, PageRef

    assert consumer_count("threads", "LoadFunction") == 2
    both_inside = threading.Barrier(2, timeout=30)
    first_inside = threading.Event()
    processors: list[int] = []
    metric_sets: list[dict] = []
    logged: list[tuple[str, str]] = []  # (the page a consumer holds, the page its log names)

    def load_page(ctx, key):
        frame = sys._getframe(1)
        while "processor" not in frame.f_globals:  # up to the handler module's record_handler
            frame = frame.f_back
        processors.append(id(frame.f_globals["processor"]))
        metric_sets.append(frame.f_globals["metrics"].provider.metric_set)
        first_inside.set()
        both_inside.wait()  # the other consumer is inside its own batch meanwhile
        # A line this consumer's logger writes now, as its formatter makes it.
        record = logging.LogRecord("load", logging.INFO, __file__, 1, "inside", None, None)
        line = json.loads(frame.f_globals["logger"].registered_formatter.format(record))
        logged.append((PageRef.from_key(key)[0].label, line.get("page")))
        return {"rows": 0, "rejected": 0, "seconds": 0.0}

    monkeypatch.setattr(stages, "load_page", load_page)
    sqs, url = aws.client("sqs"), unwired_stack.refs["LoadQueue"]
    consumed = unwired_stack.stats.consumed
    before = consumed["LoadQueue"]  # the s3:TestEvent the notifications' setup sent

    def send(page: int) -> None:
        key = PageRef("concurrent", "t", page).key(TRANSFORMED)
        body = {"Records": [{"eventName": "ObjectCreated:Put", "s3": {"object": {"key": key}}}]}
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))

    send(1)
    assert first_inside.wait(30)  # one consumer holds page 1, so the other takes page 2
    send(2)
    deadline = time.monotonic() + 30
    while consumed["LoadQueue"] < before + 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert consumed["LoadQueue"] == before + 2
    assert not both_inside.broken
    assert len(processors) == 2 and processors[0] != processors[1]
    # Powertools' Metrics shares its class's dicts among instances: each consumer's are its own.
    from aws_lambda_powertools import Metrics

    assert metric_sets[0] is not metric_sets[1]
    assert all(m is not Metrics._metrics for m in metric_sets)
    # Their loggers share one formatter; each line still names its own consumer's page.
    assert len(logged) == 2 and logged[0][0] != logged[1][0]
    assert all(held == named for held, named in logged), logged


@pytest.mark.parametrize(("target_kind", "loads"), [("dynamodb", 1), ("mysql", 2), (None, 2)])
def test_a_stack_starts_the_load_consumer_threads_its_run_s_target_wants(
    mysql_env, target_kind, loads
):
    """run_local names the run's target: into DynamoDB the one interpreter lock makes a second
    load consumer a cost, into MySQL the second loads while the first waits on the server."""
    from sluice.local.runtime import LocalStack

    with LocalStack(target_kind=target_kind) as stack:
        names = [t.name for t in stack._threads]
        assert names.count("sqs-LoadFunction") == loads
        assert names.count("sqs-ExtractFunction") == names.count("sqs-TransformFunction") == 1
        # what the load workers divide a table's write rate by
        assert stack.environment["SLUICE_LOAD_CONCURRENCY"] == str(loads)


def test_a_process_that_made_a_local_stack_freezes_its_objects_at_exit():
    """The last collections at exit walked the emulator's state (0.70 s after a million-row
    run's summary): a process that made a local stack freezes its objects at exit, after the
    exit handlers registered before its first stack, and one that made none does not."""
    script = """
import atexit, gc, sys
atexit.register(lambda: print("frozen at exit:", gc.get_freeze_count() > 0))  # runs last
if sys.argv[1] == "stack":
    from sluice.local.runtime import LocalStack
    with LocalStack(consumers=False):
        pass
    with LocalStack(consumers=False):  # a second stack registers nothing more
        pass
print("frozen before exit:", gc.get_freeze_count() > 0)
"""
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    for arg, frozen in (("stack", "True"), ("none", "False")):
        done = subprocess.run(
            [sys.executable, "-c", script, arg], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == [
            "frozen before exit: False",
            f"frozen at exit: {frozen}",
        ]
