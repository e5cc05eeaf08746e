"""`sluice plan --estimate` per path: each table's AWS bill line by line and its duration at the
stack's concurrency, hand-computed for small cases, and the stack settings the estimate keeps
checked against template.yaml."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from sluice import cli, contract, estimate
from sluice.local.template import Template, load_yaml

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
GB_S = 0.0000166667  # USD per GB-second


# ---------------------------------------------------------------- the stack


def test_the_stack_the_estimate_assumes_is_template_yaml_s():
    doc = load_yaml(TEMPLATE)
    template = Template.load(TEMPLATE)
    params = template.parameter_defaults()
    resources = doc["Resources"]
    stack = estimate.STACK
    for stage, lid in estimate.STAGE_FUNCTIONS.items():
        props = resources[lid]["Properties"]
        memory = props.get("MemorySize", doc["Globals"]["Function"]["MemorySize"])
        assert stack.memory_mb[stage] == int(memory), lid
        (source,) = template.functions[lid].sqs_sources
        assert stack.batch_size[stage] == source.batch_size, lid
    # The two concurrency parameters are what caps the extract and load consumers.
    for lid, param in (
        ("ExtractFunction", "ExtractConcurrency"),
        ("LoadFunction", "LoadConcurrency"),
    ):
        (event,) = resources[lid]["Properties"]["Events"].values()
        assert event["Properties"]["ScalingConfig"]["MaximumConcurrency"] == {"Ref": param}
    assert (
        "ScalingConfig"
        not in next(iter(resources["TransformFunction"]["Properties"]["Events"].values()))[
            "Properties"
        ]
    )  # transform has no cap, so the estimate lets it bound nothing
    assert stack.extract_concurrency == int(params["ExtractConcurrency"])
    assert stack.load_concurrency == int(params["LoadConcurrency"])
    assert stack.poll_seconds == int(params["PollSeconds"])
    assert stack.page_size == int(params["PageSize"]) == contract.DEFAULT_PAGE_SIZE
    assert (
        stack.bulk_threshold_rows
        == int(params["BulkThresholdRows"])
        == contract.DEFAULT_BULK_THRESHOLD
    )
    job = resources["BulkJob"]["Properties"]
    assert job["WorkerType"] == {"Ref": "BulkWorkerType"}
    assert job["NumberOfWorkers"] == {"Ref": "BulkNumberOfWorkers"}
    assert stack.glue_worker_type == params["BulkWorkerType"]
    assert stack.glue_workers == int(params["BulkNumberOfWorkers"])
    assert stack.bulk_write_units == float(params["BulkWriteUnitsPerSecond"])
    allowed = doc["Parameters"]["BulkWorkerType"]["AllowedValues"]
    assert set(allowed) <= set(estimate.GLUE_WORKER_TYPES)


def test_every_price_names_its_region_date_and_page_and_says_when_it_is_from_memory():
    for name, price in estimate.PRICES.items():
        d = price.to_dict()
        assert d["region"] == "us-east-1", name
        assert d["source"].startswith("https://aws.amazon.com/"), name
        assert d["as_of"] == estimate.PRICES_AS_OF or "from memory" in d["as_of"], name
    p = estimate.PRICES
    assert (p["sqs_request"].usd, p["sqs_request"].units) == (0.40, 1e6)
    assert (p["s3_put"].usd, p["s3_put"].units) == (0.005, 1e3)
    assert (p["s3_get"].usd, p["s3_get"].units) == (0.0004, 1e3)
    assert (p["sfn_transition"].usd, p["sfn_transition"].units) == (0.025, 1e3)
    assert p["glue_dpu_hour"].usd == 0.44
    assert p["lambda_gb_second"].text() == "$0.0000166667 per GB-second (x86)"
    assert p["lambda_request"].text() == "$0.20 per million requests"


# ---------------------------------------------------------------- the Lambda path


@pytest.fixture
def round_rates(monkeypatch):
    """CPU rates and request overhead with round numbers, for figures computed by hand."""
    monkeypatch.setattr(
        estimate,
        "ROWS_PER_CPU_SECOND",
        {
            "extract": 100_000,
            "transform_dynamodb": 50_000,
            "gzip": 200_000,
            "load_dynamodb": 100_000,
            "transform_mysql": 1_000_000,
            "load_mysql": 1_000_000,
        },
    )
    monkeypatch.setattr(estimate, "PAGE_REQUEST_SECONDS", 0.1)
    monkeypatch.setattr(estimate, "MYSQL_TARGET_ROWS_PER_SECOND", 20_000)


# A vCPU each (1,769 MB), two workers at once per capped stage, a poll every 10 s.
SMALL = estimate.Stack(
    memory_mb={"extract": 1769, "transform": 1769, "load": 1769},
    extract_concurrency=2,
    load_concurrency=2,
    poll_seconds=10,
)


def test_lambda_path_bills_each_stage_and_paces_writes_at_the_write_rate(round_rates):
    # 100,000 items of 200 B (a write unit each): 10 pages of 10,000.
    p = estimate.lambda_path(100_000, 200, write_rate=1_000, stack=SMALL)
    assert (p.path, p.pages, p.target) == ("lambda", 10, "DynamoDB by writes")
    gb = 1769 / 1024  # GB-seconds of one second at 1,769 MB
    # A page: extract 10,000 / 100,000 = 0.1 s CPU + 0.1 s requests; transform 10,000 / 50,000
    # + 10,000 / 200,000 = 0.25 s + 0.1 s; load 0.1 + 0.1 s of CPU, but its worker's share of
    # the write rate is 1,000 / 2 = 500 units a second: 10,000 units wait 20 s.
    assert p.line("Lambda extract").quantity == pytest.approx(10 * 0.2 * gb)
    assert p.line("Lambda transform").quantity == pytest.approx(10 * 0.35 * gb)
    assert p.line("Lambda load").quantity == pytest.approx(10 * 20 * gb)
    assert p.line("Lambda load").cost == pytest.approx(10 * 20 * gb * GB_S)
    # Extract does 2 / 0.2 = 10 pages a second, load 2 / 20 = 0.1: the write rate paces, and
    # the last page takes its trip through the stages after it.
    assert p.seconds == pytest.approx(10 / 0.1 + 0.2 + 0.35 + 20)
    assert p.bound == "the write rate (1,000 units/s)"
    polls = math.ceil(p.seconds / 10) + 1  # 14
    # Lambda: extract one page an invocation, transform and load five; plan, verify, polls.
    assert p.line("Lambda requests").quantity == 10 + 2 + 2 + 2 + polls
    # SQS: the plan sends 10 pages in one batch, S3 notifies a message a page to transform and
    # to load; a receive and a delete per batch of each stage.
    assert p.line("SQS requests").quantity == (1 + 10 + 10) + 2 * (10 + 2 + 2)
    assert p.line("SQS requests").cost == pytest.approx(49 * 0.40 / 1e6)
    # S3: 3 objects a page, 4 plan objects, a LIST of the keys; 3 reads a page.
    assert p.line("S3 PUT/LIST").quantity == 10 * 3 + 4 + 1
    assert p.line("S3 PUT/LIST").cost == pytest.approx(35 * 0.005 / 1000)
    assert p.line("S3 GET").quantity == 10 * 3
    assert p.line("S3 GET").cost == pytest.approx(30 * 0.0004 / 1000)
    # Step Functions: 10 for the run, 3 per child sending 10 pages, 3 per poll.
    assert p.line("Step Functions").quantity == 10 + 3 + 3 * polls
    assert p.line("Step Functions").cost == pytest.approx((13 + 3 * polls) * 0.025 / 1000)
    assert p.line("DynamoDB writes").quantity == 100_000
    assert p.line("DynamoDB writes").cost == pytest.approx(0.0625)
    # Manifest: plan + 3 stages write a page's item; transform and load read it (half a unit);
    # each poll reads 10 items of 700 B, two 4 KB units, eventually consistent, and so does
    # each check of the polls that wait for the last pages, for the slowest stage's page (the
    # load's 20 s, longer than a 10 s poll): 20 s / 0.25 s = 80 checks.
    manifest = p.line("DynamoDB manifest")
    assert manifest.quantity == 40 + (10 + (polls + 80) * 1)
    assert manifest.cost == pytest.approx(40 * 0.625 / 1e6 + (10 + polls + 80) * 0.125 / 1e6)
    assert "(14 progress polls, 80 checks of the last pages)" in manifest.note
    assert p.cost == pytest.approx(sum(line.cost for line in p.lines))


def test_a_function_under_1769_mb_gets_a_share_of_a_vcpu_and_more_workers_go_faster(round_rates):
    half = estimate.Stack(memory_mb={"extract": 1024, "transform": 1024, "load": 1024})
    p = estimate.lambda_path(100_000, 200, write_rate=1e9, stack=half)
    # 0.1 s of CPU at 1024/1769 of a vCPU, plus the requests; billed at 1 GB.
    extract = 0.1 * 1769 / 1024 + 0.1
    assert p.line("Lambda extract").quantity == pytest.approx(10 * extract)
    assert p.bound == f"extract (10 at once, {extract:.2f} s a page)"
    faster = estimate.Stack(memory_mb=half.memory_mb, extract_concurrency=20, load_concurrency=20)
    assert estimate.lambda_path(100_000, 200, write_rate=1e9, stack=faster).seconds < p.seconds


def test_lambda_path_by_import_has_no_load_stage_and_waits_for_the_import(round_rates):
    p = estimate.lambda_path(100_000, 200, load="import", target_table="shop", stack=SMALL)
    assert p.target == "DynamoDB shop by Import from S3"
    assert [line.what for line in p.lines if line.what.startswith("Lambda ")] == [
        "Lambda extract",
        "Lambda transform",
        "Lambda requests",
    ]
    assert p.bound == "extract (2 at once, 0.20 s a page)"
    imported = 0.02 / estimate.IMPORT_GB_PER_HOUR * 3600 + estimate.IMPORT_SETUP_SECONDS
    assert p.seconds == pytest.approx(10 / 10 + 0.2 + 0.35 + imported)
    assert p.line("DynamoDB import").cost == pytest.approx(0.02 * 0.15)
    assert p.line("SQS requests").quantity == (1 + 10) + 2 * (10 + 2)
    # The import reads each object, its duplicate check the keys again (and lists them).
    assert p.line("S3 GET").quantity == 10 * (1 + 1 + 2)
    assert p.line("S3 PUT/LIST").quantity == 10 * 3 + 4 + 2


def test_lambda_path_into_mysql_bills_no_writes_and_is_paced_by_the_server(round_rates):
    p = estimate.lambda_path(100_000, 120, target_kind="mysql", target_table="t", stack=SMALL)
    assert p.target == "MySQL t"
    target = p.line("MySQL target")
    assert (target.cost, target.quantity) == (0.0, 0)
    assert "no AWS charge" in target.note
    # 20,000 rows/s for both loads: 10,000 rows wait 1 s, more than their 0.01 + 0.1 s of CPU.
    assert p.bound == "the MySQL target (20,000 rows/s)"
    assert p.seconds == pytest.approx(10 / 2 + 0.2 + 0.11 + 1)
    assert p.line("S3 PUT/LIST").quantity == 10 * 2 + 4  # no item keys
    assert p.line("S3 GET").quantity == 10 * 2


# ---------------------------------------------------------------- the bulk path


def test_bulk_path_bills_dpu_hours_of_the_glue_job(round_rates, monkeypatch):
    monkeypatch.setattr(estimate, "BULK_ROWS_PER_TASK_SECOND", {"dynamodb": 10_000, "mysql": 1})
    monkeypatch.setattr(estimate, "GLUE_START_SECONDS", 60)
    three = estimate.Stack(glue_workers=3)  # G.1X: the driver's worker and 2 x 4 tasks
    imported = estimate.bulk_path(1_000_000, 200, load="import", stack=three)
    assert imported.bound == "8 Spark tasks at 10,000 rows/s each"
    job = 60 + 1_000_000 / 80_000  # 72.5 s
    glue = imported.line("Glue")
    assert glue.quantity == pytest.approx(3 * 1 * job / 3600)
    assert glue.cost == pytest.approx(3 * job / 3600 * 0.44)
    assert imported.seconds == pytest.approx(job + estimate.by_import(1_000_000, 200).seconds)
    assert imported.line("SQS requests").quantity == 0
    # By writes, 1,000,000 units at 4,000 a second take longer than the tasks: 250 s.
    written = estimate.bulk_path(1_000_000, 200, write_rate=4_000, stack=three)
    assert written.bound == "the write rate (4,000 units/s)"
    assert written.line("Glue").quantity == pytest.approx(3 * (60 + 250) / 3600)
    # The job's own cap, when lower, paces it.
    capped = estimate.Stack(glue_workers=3, bulk_write_units=1_000)
    assert estimate.bulk_path(1_000_000, 200, stack=capped).seconds == pytest.approx(60 + 1000)
    # G.2X: 2 DPU and 8 tasks a worker.
    g2 = estimate.bulk_path(
        1_000_000, 200, load="import", stack=estimate.Stack(glue_workers=3, glue_worker_type="G.2X")
    )
    assert g2.bound == "16 Spark tasks at 10,000 rows/s each"
    assert g2.line("Glue").quantity == pytest.approx(3 * 2 * (60 + 1e6 / 160_000) / 3600)


def test_a_short_glue_job_bills_a_minute(monkeypatch):
    monkeypatch.setattr(estimate, "GLUE_START_SECONDS", 10)
    p = estimate.bulk_path(1_000, 200, load="import", stack=estimate.Stack(glue_workers=3))
    assert p.line("Glue").quantity == pytest.approx(3 * 60 / 3600)
    assert p.seconds < 60 + estimate.by_import(1_000, 200).seconds
    empty = estimate.bulk_path(0, 200)
    assert (empty.pages, empty.line("Glue").cost) == (0, 0)


# ---------------------------------------------------------------- which path


def test_each_table_gets_the_path_the_plan_would_choose():
    c = contract.parse(
        {
            "version": 1,
            "source": {"database": "shop"},
            "target": {"kind": "mysql", "database": "copy"},
            "defaults": {"bulk_threshold_rows": 1_000, "page_size": 100},
            "tables": [
                {"source": "small", "key": ["id"], "target": {"table": "small"}},
                {"source": "big", "key": ["id"], "target": {"table": "big"}},
                {"source": "forced", "key": ["id"], "path": "bulk", "target": {"table": "f"}},
            ],
        }
    )
    sizes = {"small": (1_000, 50), "big": (1_001, 50), "forced": (10, 50)}
    small, big, forced = estimate.paths_for_contract(c, sizes)
    assert (small.path, small.why) == ("lambda", "1,000 rows <= bulk_threshold_rows 1,000")
    assert (big.path, big.why) == ("bulk", "1,001 rows > bulk_threshold_rows 1,000")
    assert (forced.path, forced.why) == ("bulk", 'the contract says "path": "bulk"')
    assert (small.pages, big.pages, forced.pages) == (10, 11, 1)
    assert all(p.chosen and p.line("MySQL target").cost == 0 for p in (small, big, forced))
    text = "".join(estimate.render_paths([small, big, forced]))
    assert "all tables: $" in text and "they share the workers" in text


# ---------------------------------------------------------------- the command


def test_plan_estimate_prints_both_paths_for_rows_without_a_database(capsys):
    argv = ["plan", "--estimate", "--rows", "100000000", "--item-bytes", "200"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "(--rows): bulk path (the plan's path: 100,000,000 rows > bulk_threshold_rows" in out
    assert "(--rows): lambda path (not the plan's path" in out
    for what in ("Glue", "Lambda extract", "Lambda load", "SQS requests", "S3 PUT/LIST"):
        assert f"    {what} " in out, what
    assert "Step Functions" in out and "DynamoDB writes" in out
    assert "Price table (us-east-1" in out and "https://aws.amazon.com/glue/pricing/" in out
    assert "from memory" in out

    assert cli.main([*argv, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    bulk, lam = doc["paths"]
    assert (bulk["path"], bulk["chosen"], lam["path"], lam["chosen"]) == (
        "bulk",
        True,
        "lambda",
        False,
    )
    assert bulk["cost_usd"] == pytest.approx(sum(x["cost_usd"] for x in bulk["lines"]))
    assert doc["stack"]["extract_concurrency"] == estimate.STACK.extract_concurrency
    assert set(doc["prices"]) == set(estimate.PRICES)
    assert all(p["region"] == "us-east-1" for p in doc["prices"].values())


def test_plan_estimate_takes_the_concurrency_from_the_flags(capsys):
    argv = ["plan", "--estimate", "--rows", "1000000", "--item-bytes", "200", "--json"]
    argv += ["--write-rate", "1000000000"]  # so that the workers pace the run
    assert cli.main(argv) == 0
    default = json.loads(capsys.readouterr().out)["paths"][0]
    assert cli.main([*argv, "--extract-concurrency", "40", "--load-concurrency", "40"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["stack"]["extract_concurrency"], doc["stack"]["load_concurrency"]) == (40, 40)
    assert doc["paths"][0]["path"] == default["path"] == "lambda"
    assert doc["paths"][0]["seconds"] < default["seconds"]

    assert cli.main([*argv, "--extract-concurrency", "0"]) == 1
    assert "--extract-concurrency 0: give at least 1" in capsys.readouterr().err
