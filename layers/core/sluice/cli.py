"""The `sluice` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import contract as contract_mod
from .errors import ContractError, SluiceError


def cmd_init(args) -> int:
    from .db import connect, parse_url, tls_from_env
    from .scaffold import starter_contract

    info = tls_from_env(parse_url(args.source), "source")
    if not info.database:
        raise SluiceError("--source must name a database: mysql://user:pw@host:port/DATABASE")
    if args.target != "dynamodb" and not args.target.startswith(("mysql://", "mariadb://")):
        raise SluiceError("--target is 'dynamodb' or a mysql://host:port/database URL")
    conn = connect(info)
    doc = starter_contract(conn, info, args.target)
    text = json.dumps(doc, indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(text)
        print(f"wrote {args.output}: {len(doc['tables'])} tables and views", file=sys.stderr)
    else:
        sys.stdout.write(text)
    for s in doc.get("skipped", []):
        print(f"left out {s['source']}: {s['reason']}", file=sys.stderr)
    return 0


def cmd_validate(args) -> int:
    try:
        doc = contract_mod.load_document(args.file)
    except ContractError as exc:
        print(exc, file=sys.stderr)
        return 1
    found = contract_mod.problems(doc)
    if not found and args.live:
        from .db import connect, resolve
        from .source import introspect
        from .validate import check_against_source

        c = contract_mod.parse(doc)
        conn = connect(resolve("source", c.source_url, c.source_database))
        try:
            check_against_source(c, introspect(conn, c.source_database))
        except ContractError as exc:
            found = exc.problems
    if found:
        print(f"{args.file}: {len(found)} problem(s)", file=sys.stderr)
        for p in found:
            print(f"  {p}", file=sys.stderr)
        return 1
    print(f"{args.file}: valid")
    return 0


def cmd_plan(args) -> int:
    """`sluice plan --estimate`: per table, the path the plan takes with its AWS bill and
    duration, and for DynamoDB both ways in (writes, Import from S3), priced and timed."""
    from dataclasses import replace

    from . import estimate

    if not args.estimate:
        raise SluiceError("sluice plan only estimates for now: add --estimate")
    if args.write_rate is None:
        args.write_rate = estimate.DEFAULT_WRITE_RATE
    stack = estimate.STACK
    for flag, value, setting in (
        ("--extract-concurrency", args.extract_concurrency, "extract_concurrency"),
        ("--load-concurrency", args.load_concurrency, "load_concurrency"),
    ):
        if value is not None:
            if value < 1:
                raise SluiceError(f"{flag} {value}: give at least 1 (workers at once)")
            stack = replace(stack, **{setting: value})
    override = args.rows is not None or args.item_bytes is not None
    if override:
        if args.rows is None or args.item_bytes is None:
            raise SluiceError("--rows and --item-bytes go together: give both")
        rows = [
            estimate.estimate(
                args.rows, args.item_bytes, name="(--rows)", write_rate=args.write_rate, load=""
            )
        ]
        totals = None
        paths = estimate.both_paths(
            args.rows, args.item_bytes, write_rate=args.write_rate, stack=stack
        )
    else:
        if not args.contract:
            raise SluiceError("give --contract FILE (read the source), or --rows N --item-bytes B")
        from .db import connect, resolve

        c = contract_mod.load(args.contract)
        conn = connect(resolve("source", c.source_url, c.source_database))
        try:
            sizes = estimate.table_sizes(conn, c)
        finally:
            conn.close()
        rows, totals = [], None
        if c.target_kind == "dynamodb":  # the two ways into DynamoDB
            rows = estimate.for_contract(None, c, write_rate=args.write_rate, sizes=sizes)
            totals = estimate.per_target(rows, write_rate=args.write_rate)
        paths = estimate.paths_for_contract(c, sizes, write_rate=args.write_rate, stack=stack)
    if args.json:
        print(
            json.dumps(
                {
                    "tables": [e.to_dict() for e in rows],
                    "targets": [e.to_dict() for e in totals or []],
                    "paths": [p.to_dict() for p in paths],
                    "stack": stack.to_dict(),
                    "prices": {name: p.to_dict() for name, p in estimate.PRICES.items()},
                    "assumptions": estimate.assumptions(args.write_rate, stack),
                }
            )
        )
    else:
        sys.stdout.write(estimate.render(rows, totals, args.write_rate, paths, stack))
    return 0


def cmd_run(args) -> int:
    if not args.local:
        raise SluiceError(
            "only --local runs from here; on AWS use `sluice start --stack NAME` (see README)"
        )
    from .local.run import run_local

    summary = run_local(
        args.contract, as_json=args.json, timeout=args.timeout, workers=args.workers
    )
    return 0 if summary["ok"] else 1


def _aws_errors(fn):
    """AWS errors (no credentials, access denied...) as one line, not a traceback."""

    def wrapped(args) -> int:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(args)
        except (BotoCoreError, ClientError) as exc:
            print(f"sluice: AWS: {exc}", file=sys.stderr)
            return 1

    return wrapped


@_aws_errors
def cmd_start(args) -> int:
    from . import operate

    aws = operate.clients(args.region)
    stack = operate.find_stack(aws["cloudformation"], args.stack)
    started = operate.start_run(
        stack,
        contract_mod.load_document(args.contract),
        s3=aws["s3"],
        stepfunctions=aws["stepfunctions"],
        run_id=args.run_id,
    )
    print(f"run id:    {started.run_id}")
    print(f"execution: {started.execution_arn}")
    print(f"contract:  s3://{stack.bucket}/{started.contract_key}")
    print(f"watch it:  sluice status --stack {args.stack} --run {started.run_id}", file=sys.stderr)
    return 0


def _where(args) -> str:
    """--local or --stack NAME: exactly one."""
    if bool(args.local) == bool(args.stack):
        raise SluiceError(
            "say where the run is: --stack NAME (a deployed stack) or --local (a run of "
            "`sluice run --local`, saved in .sluice/runs/<run id>)"
        )
    return "local" if args.local else "stack"


def _state_dir(args) -> Path | None:
    return Path(args.state_dir) if getattr(args, "state_dir", None) else None


@_aws_errors
def cmd_status(args) -> int:
    from . import operate

    if _where(args) == "local":
        from .local.run import status_local

        status = status_local(args.run, state_dir=_state_dir(args))
        if args.json:
            print(json.dumps(status.to_dict(), default=str))
        else:
            sys.stdout.write(operate.render_status(status))
        return 0
    aws = operate.clients(args.region)
    stack = operate.find_stack(aws["cloudformation"], args.stack)
    _print_status(args, stack, aws)
    return 0


def _print_status(args, stack, aws) -> None:
    """A deployed run's status, as text or (--json) one JSON document."""
    from . import operate

    status = operate.run_status(
        stack,
        args.run,
        dynamodb=aws["dynamodb"],
        sqs=aws["sqs"],
        stepfunctions=aws["stepfunctions"],
    )
    if args.json:
        print(json.dumps(status.to_dict(), default=str))
    else:
        sys.stdout.write(operate.render_status(status))


def _stages(args) -> tuple[str, ...]:
    from .redrive import STAGES

    return STAGES if args.stage == "all" else (args.stage,)


@_aws_errors
def cmd_redrive(args) -> int:
    from . import operate, redrive

    if _where(args) == "local":
        if not args.run:
            raise SluiceError("--local needs --run: each local run has queues of its own")
        from .local.run import redrive_local

        redrive_local(args.run, _stages(args), state_dir=_state_dir(args))
        return 0
    aws = operate.clients(args.region)
    stack = operate.find_stack(aws["cloudformation"], args.stack)
    results = operate.redrive_stack(
        stack,
        args.run,
        _stages(args),
        sqs=aws["sqs"],
        dynamodb=aws["dynamodb"],
        say=lambda m: print(f"  {m}", file=sys.stderr),
    )
    sys.stdout.write(redrive.render(results, args.run))
    if args.run and any(r.moved for r in results):
        print(f"  next: sluice resume --stack {args.stack} --run {args.run}")
    return 0


@_aws_errors
def cmd_resume(args) -> int:
    from . import operate

    if _where(args) == "local":
        from .local.run import resume_local

        summary = resume_local(
            args.run,
            state_dir=_state_dir(args),
            as_json=args.json,
            timeout=args.timeout,
            workers=args.workers,
        )
        return 0 if summary["ok"] else 1
    aws = operate.clients(args.region)
    stack = operate.find_stack(aws["cloudformation"], args.stack)
    arn = operate.resume_execution(
        stack, args.run, dynamodb=aws["dynamodb"], stepfunctions=aws["stepfunctions"]
    )
    print(f"execution: {arn}", file=sys.stderr)
    if args.no_wait:
        print(f"watch it:  sluice status --stack {args.stack} --run {args.run}", file=sys.stderr)
        return 0

    def tick():
        st = operate.run_status(stack, args.run, dynamodb=aws["dynamodb"], sqs=aws["sqs"])
        print(f"  {st.pages_loaded}/{st.pages} pages loaded", file=sys.stderr)

    desc = operate.wait_execution(aws["stepfunctions"], arn, on_tick=tick)
    _print_status(args, stack, aws)
    return 0 if desc["status"] == "SUCCEEDED" else 1


@_aws_errors
def cmd_verify(args) -> int:
    """Every page of a run read back from the target and compared with what was loaded."""
    from . import verify_deep

    if _where(args) == "local":
        from .local.verify import verify_local

        report = verify_local(args.run, tables=args.table, state_dir=_state_dir(args))
    else:
        from . import operate

        aws = operate.clients(args.region)
        stack = operate.find_stack(aws["cloudformation"], args.stack)
        report = operate.deep_verify(
            stack, args.run, lambda_client=operate.lambda_client(args.region), tables=args.table
        )
    if args.json:
        print(json.dumps(report, default=str))
    else:
        sys.stdout.write(verify_deep.render(report))
    return 0 if report["ok"] else 1


def cmd_demo(args) -> int:
    from .demo import run_demo

    return run_demo(scale=args.scale)


def _where_args(s) -> None:
    s.add_argument("--stack", help="the CloudFormation stack name of a deployed run")
    s.add_argument("--region", help="AWS region (default: AWS_REGION or the profile's)")
    s.add_argument("--local", action="store_true", help="a run of `sluice run --local`")
    s.add_argument("--state-dir", help="--local: the run's folder (default .sluice/runs/<run id>)")


def _workers_arg(s) -> None:
    s.add_argument(
        "--workers",
        choices=("auto", "processes", "threads"),
        default="auto",
        help="--local: run the stage consumers in worker processes, on every core, or in "
        "threads of this process (default auto: processes on 4 cores or more)",
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="sluice", description="Serverless MySQL migration to DynamoDB or MySQL"
    )
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("init", help="write a starter contract from the live schema")
    s.add_argument("--source", required=True, help="mysql://user:pw@host:port/database")
    s.add_argument("--target", required=True, help="'dynamodb' or mysql://user@host:port/database")
    s.add_argument("-o", "--output")
    s.set_defaults(fn=cmd_init)
    s = sub.add_parser("validate", help="report every problem of a contract with its JSON path")
    s.add_argument("file")
    s.add_argument(
        "--live", action="store_true", help="also check tables and columns against the source"
    )
    s.set_defaults(fn=cmd_validate)
    s = sub.add_parser(
        "plan",
        help="price a migration (--estimate): each table's path and AWS bill, and the ways "
        "into DynamoDB (writes or Import from S3)",
    )
    s.add_argument("--contract", help="the contract whose source tables to price")
    s.add_argument(
        "--estimate",
        action="store_true",
        help="print per table its path's cost and duration, and both ways into DynamoDB",
    )
    s.add_argument("--rows", type=int, help="price N items instead of reading a source")
    s.add_argument("--item-bytes", type=int, help="with --rows: the size of one item in bytes")
    s.add_argument(
        "--write-rate",
        type=float,
        help="write request units a second the write way reaches (default 4000: what a new "
        "on-demand table accepts at once)",
    )
    s.add_argument(
        "--extract-concurrency",
        type=int,
        help="extract workers at once (default: template.yaml's ExtractConcurrency, 10)",
    )
    s.add_argument(
        "--load-concurrency",
        type=int,
        help="load workers at once (default: template.yaml's LoadConcurrency, 10)",
    )
    s.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    s.set_defaults(fn=cmd_plan)
    s = sub.add_parser("run", help="run a migration (--local: on this machine)")
    s.add_argument("--local", action="store_true")
    s.add_argument("--contract", required=True)
    s.add_argument("--json", action="store_true", help="print one JSON summary on stdout")
    s.add_argument("--timeout", type=float, default=3600)
    _workers_arg(s)
    s.set_defaults(fn=cmd_run)
    s = sub.add_parser("start", help="start a run on a deployed stack (sam deploy)")
    s.add_argument("--stack", required=True, help="the CloudFormation stack name")
    s.add_argument("--contract", required=True)
    s.add_argument("--run-id", help="name the run (default: a timestamp and a random suffix)")
    s.add_argument("--region", help="AWS region (default: AWS_REGION or the profile's)")
    s.set_defaults(fn=cmd_start)
    s = sub.add_parser("status", help="per-table progress of a run (deployed, or --local)")
    _where_args(s)
    s.add_argument("--run", required=True, help="the run id `sluice start` or `run` printed")
    s.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    s.set_defaults(fn=cmd_status)
    s = sub.add_parser(
        "redrive", help="move failed pages' messages from the dead-letter queues back"
    )
    _where_args(s)
    s.add_argument("--run", help="only this run's messages (default: every message)")
    s.add_argument("--stage", choices=["extract", "transform", "load", "all"], default="all")
    s.set_defaults(fn=cmd_redrive)
    s = sub.add_parser(
        "resume", help="wait for a run's redriven pages, then import and verify it again"
    )
    _where_args(s)
    s.add_argument("--run", required=True)
    s.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    s.add_argument("--timeout", type=float, default=3600, help="--local: seconds to wait")
    s.add_argument("--no-wait", action="store_true", help="--stack: start the execution and return")
    _workers_arg(s)
    s.set_defaults(fn=cmd_resume)
    s = sub.add_parser(
        "verify",
        help="read every page of a run back from the target and name each page and key "
        "that differs (exit 1 if any)",
    )
    _where_args(s)
    s.add_argument("--run", required=True, help="the run id `sluice start` or `run` printed")
    s.add_argument(
        "--table", action="append", help="only this source table (repeat for more; default all)"
    )
    s.add_argument("--json", action="store_true", help="print the report as one JSON document")
    s.set_defaults(fn=cmd_verify)
    s = sub.add_parser("demo", help="build the sample shop database and migrate it twice")
    s.add_argument("--scale", type=float, default=float(os.environ.get("SLUICE_DEMO_SCALE", "1.0")))
    s.set_defaults(fn=cmd_demo)
    args = p.parse_args(argv)
    try:
        return args.fn(args)
    except ContractError as exc:
        print(f"sluice: {exc}", file=sys.stderr)
        return 1
    except SluiceError as exc:
        print(f"sluice: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
