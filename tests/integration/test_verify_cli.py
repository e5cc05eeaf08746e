"""`sluice verify --run ID --stack NAME`: the stack's verify function invoked and waited for,
its report printed per table, exit code 1 when a page differs."""

from __future__ import annotations

import pytest
from sluice import cli, operate
from sluice.local.moto_hooks import lambda_routes

from .cfn_rehearsal import REGION
from .test_operate import rehearsed

pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS::")

STACK = "sluice-verify"
PARAMS = {
    "SourceSecretArn": f"arn:aws:secretsmanager:{REGION}:123456789012:secret:shop-AbCdEf",
    "TargetKind": "mysql",
    "TargetSecretArn": f"arn:aws:secretsmanager:{REGION}:123456789012:secret:copy-AbCdEf",
}


def report(run_id: str, mismatched: list[dict]) -> dict:
    """A deep report as stages.verify_run returns it (its shape, not its reading)."""
    return {
        "run_id": run_id,
        "deep": True,
        "ok": not mismatched,
        "verdict": "NOT VERIFIED (deep): orders: 1 of 3 pages differ (pages 2)"
        if mismatched
        else "VERIFIED (deep): 3 pages of 1 tables read back from the target match what was loaded",
        "tables": {
            "orders": {
                "table": "orders",
                "target_table": "orders",
                "pages": 3,
                "checked": 3,
                "matched": 3 - len(mismatched),
                "rejected_rows": 0,
                "unchecked": [],
                "mismatched": mismatched,
                "ok": not mismatched,
            }
        },
        "dynamodb_tables": {},
        "counts": {"ok": True},
    }


@pytest.fixture
def session():
    with rehearsed(STACK, PARAMS) as session:
        yield session


def test_the_stack_names_its_verify_function(session):
    stack = operate.find_stack(session.client("cloudformation"), STACK)
    names = session.client("lambda").list_functions()["Functions"]
    assert stack.verify_function in {f["FunctionName"] for f in names}
    assert "VerifyFunction" in stack.verify_function


def test_verify_invokes_the_function_deep_and_prints_each_mismatching_page(session, capsys):
    stack = operate.find_stack(session.client("cloudformation"), STACK)
    events = []
    bad_page = {
        "page": 2,
        "reason": "1 row missing from the target; 1 row with different values",
        "missing": [{"id": 41}],
        "extra": [],
        "different": [{"key": {"id": 57}, "column": "total"}],
        "rejected": [],
        "counts": {"missing": 1, "extra": 0, "different": 1, "rejected": 0},
    }

    def verify_function(_name, event):
        events.append(event)
        return report(event["run_id"], [bad_page] if event["run_id"] == "bad" else [])

    with lambda_routes({stack.verify_function: verify_function}):
        clean = cli.main(["verify", "--stack", STACK, "--run", "good"])
        clean_out = capsys.readouterr().out
        bad = cli.main(["verify", "--stack", STACK, "--run", "bad", "--table", "orders"])
        bad_out = capsys.readouterr().out

    assert events == [
        {"run_id": "good", "deep": True},
        {"run_id": "bad", "deep": True, "tables": ["orders"]},
    ]
    assert clean == 0
    assert "VERIFIED (deep): 3 pages" in clean_out
    assert bad == 1
    assert "page 2: 1 row missing from the target; 1 row with different values" in bad_out
    assert "missing    id=41" in bad_out
    assert "different  id=57 (first differing: total)" in bad_out


def test_a_failing_verify_function_is_reported_with_its_error(session, capsys):
    stack = operate.find_stack(session.client("cloudformation"), STACK)

    def verify_function(_name, event):
        raise KeyError("run r9 has no contract")

    with lambda_routes({stack.verify_function: verify_function}):
        code = cli.main(["verify", "--stack", STACK, "--run", "r9", "--json"])

    assert code == 1
    err = capsys.readouterr().err
    assert "the verify function of stack sluice-verify failed on run r9" in err
    assert "KeyError" in err


def test_verify_needs_to_know_where_the_run_is(capsys):
    assert cli.main(["verify", "--run", "r1"]) == 1
    assert "--stack NAME" in capsys.readouterr().err
