"""`sluice run --local`: one migration through the local stack, with progress and a summary."""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .. import aws
from ..contract import load_document, parse
from ..errors import SluiceError
from ..manifest import TableProgress
from ..redrive import STAGES, Redriven, redrive
from ..redrive import render as render_redrive
from ..stages import _manifest
from .runtime import LocalStack, handler_output_to
from .state import PARTS, LocalState, run_dir


def local_contract(doc: dict) -> dict:
    """The contract as the local run uses it: a DynamoDB endpoint from AWS_ENDPOINT_URL_DYNAMODB
    becomes the target's (the manifest stays in the in-process emulator).

    Refused: a table that an import creates at an endpoint. ImportTable reads the staging
    bucket, which lives in this process's emulator, where no endpoint (DynamoDB Local,
    another emulator, an account) can see it."""
    doc = json.loads(json.dumps(doc))
    endpoint = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB")
    if doc["target"]["kind"] == "dynamodb" and endpoint and not doc["target"].get("endpoint_url"):
        doc["target"]["endpoint_url"] = endpoint
    if doc["target"]["kind"] == "dynamodb" and doc["target"].get("endpoint_url"):
        imported = [n for n, t in doc["target"]["tables"].items() if t.get("load") == "import"]
        if imported:
            raise SluiceError(
                f'table {imported[0]}: "load": "import" cannot reach the DynamoDB endpoint '
                f"{doc['target']['endpoint_url']} from a local run (the import reads the staging "
                f"bucket of the in-process emulator): set $.target.tables.{imported[0]}.load to "
                '"write", or run without an endpoint'
            )
    return doc


class ProgressView:
    """Per-table bars on a terminal; a line per change otherwise."""

    def __init__(self, stream, live: bool):
        self.stream, self.live = stream, live
        self.started = time.monotonic()
        self.lines = 0
        self.last = ""

    def show(self, tables: dict[str, TableProgress]) -> None:
        rows = []
        for name in sorted(tables):
            t = tables[name]
            frac = t.pages_loaded / t.pages if t.pages else 1.0
            bar = "#" * int(frac * 24) + "-" * (24 - int(frac * 24))
            rows.append(
                f"  {name:<24.24} [{bar}] {t.pages_loaded:>5}/{t.pages:<5} pages  {t.loaded:>9,} rows loaded  {t.rejected:>6,} rejected"
            )
        text = "\n".join(rows)
        if text == self.last:
            return
        self.last = text
        if self.live:
            if self.lines:
                self.stream.write(f"\x1b[{self.lines}F")
            self.stream.write("\n".join(r + "\x1b[K" for r in rows) + "\n")
            self.lines = len(rows)
        else:
            done = sum(t.pages_loaded for t in tables.values())
            total = sum(t.pages for t in tables.values())
            rows = sum(t.loaded for t in tables.values())
            elapsed = time.monotonic() - self.started
            self.stream.write(f"  [{elapsed:6.1f} s] {done}/{total} pages loaded, {rows:,} rows\n")
        self.stream.flush()


def run_local(
    contract_path: str | Path,
    *,
    as_json: bool = False,
    run_id: str | None = None,
    timeout: float = 3600,
    state_dir: Path | None = None,
    samples: int = 0,
    out=None,
    err=None,
    workers: str = "threads",
) -> dict[str, Any]:
    """Run one migration locally; returns the summary (also printed). `workers`: where the
    stage consumers run, "threads" of this process, "processes", or "auto" (LocalStack).

    When the run ends, its AWS state is saved under `state_dir` (LocalState): a run that did
    not succeed can be redriven and resumed from another shell."""
    doc = local_contract(load_document(contract_path))
    contract = parse(doc)
    run_id = run_id or time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{os.getpid()}"
    state = LocalState(state_dir or run_dir(run_id))
    state.write_meta(
        run_id=run_id,
        contract=doc,
        transforms_dir=str(Path(contract_path).resolve().parent),
        resumes=0,
    )
    payload = {"contract": doc, "run_id": run_id, "poll_seconds": 1}
    return _drive(
        state,
        contract,
        payload,
        run_id,
        run_id,
        as_json,
        timeout,
        samples,
        out,
        err,
        restore=None,
        workers=workers,
    )


def resume_local(
    run_id: str,
    *,
    state_dir: Path | None = None,
    as_json: bool = False,
    timeout: float = 3600,
    out=None,
    err=None,
    workers: str = "threads",
) -> dict[str, Any]:
    """`sluice resume --local`: a saved run's state in a fresh local stack, whose consumers
    take the messages waiting in its queues (redriven ones included), and a new execution
    that waits for every page, imports and verifies. Saved again when it ends."""
    state = LocalState(state_dir or run_dir(run_id))
    meta = state.meta()
    if meta["run_id"] != run_id:
        raise SluiceError(f"{state.folder} holds run {meta['run_id']}, not {run_id}")
    contract = parse(meta["contract"])
    resumes = int(meta.get("resumes", 0)) + 1
    state.write_meta(resumes=resumes)
    payload = {"resume": True, "run_id": run_id, "poll_seconds": 1}
    return _drive(
        state,
        contract,
        payload,
        run_id,
        f"{run_id}-resume-{resumes}",
        as_json,
        timeout,
        0,
        out,
        err,
        restore=state.restorer(),
        workers=workers,
    )


def redrive_local(
    run_id: str, stages=STAGES, *, state_dir: Path | None = None, out=None
) -> list[Redriven]:
    """`sluice redrive --local`: the saved run's dead-letter messages back to their queues
    (a receive/send/delete loop: the emulator has no message move task), pages marked
    redriven; saved again. `sluice resume --local` then processes them."""
    out = out or sys.stdout
    state = LocalState(state_dir or run_dir(run_id))
    meta = state.meta()
    with (
        _local_session(meta),
        LocalStack(consumers=False, restore=state.restorer(("manifest", "queues"))) as stack,
    ):
        queues = [q for q in stack.stage_queues() if q.stage in stages]
        manifest = _manifest(stack.environment["SLUICE_MANIFEST_TABLE"])
        results = redrive(aws.client("sqs"), manifest, queues, run_id=run_id, move_task=False)
        state.save(stack, run_id, parts=("manifest", "queues"))
    out.write(render_redrive(results, run_id))
    if any(r.moved for r in results):
        out.write(f"  next: sluice resume --local --run {run_id}\n")
    out.flush()
    return results


def status_local(run_id: str, *, state_dir: Path | None = None):
    """`sluice status --local`: the saved run's manifest and dead-letter queues, as
    `sluice status` shows a deployed run."""
    from ..operate import RunStatus, Stack, run_status

    state = LocalState(state_dir or run_dir(run_id))
    meta = state.meta()
    with (
        _local_session(meta),
        LocalStack(consumers=False, restore=state.restorer(("manifest", "queues"))) as stack,
    ):
        local = Stack(
            name=f"local ({state.folder})",
            state_machine_arn=stack.state_machine_arn,
            bucket=stack.environment["SLUICE_BUCKET"],
            manifest_table=stack.environment["SLUICE_MANIFEST_TABLE"],
            dlq_urls={q.stage: q.dlq_url for q in stack.stage_queues()},
        )
        st = run_status(local, run_id, dynamodb=_manifest_resource(), sqs=aws.client("sqs"))
    execution = {"status": meta.get("execution_status")} if meta.get("execution_status") else None
    return RunStatus(st.run_id, st.run, st.tables, st.dlq_depths, execution)


def _manifest_resource():
    import boto3

    return boto3.resource("dynamodb", region_name=aws.region())


@contextmanager
def _local_session(meta: dict):
    """What a local stack of this run needs around it: the contract's transforms importable,
    the manifest in the emulator (a DynamoDB endpoint from the environment is the target's
    alone, and the staged contract names it), fresh clients afterwards."""
    transforms_dir = meta.get("transforms_dir")
    added = bool(transforms_dir) and transforms_dir not in sys.path
    if added:
        sys.path.insert(0, transforms_dir)
    saved_endpoint = os.environ.pop("AWS_ENDPOINT_URL_DYNAMODB", None)
    try:
        yield
    finally:
        if added:
            sys.path.remove(transforms_dir)
        if saved_endpoint is not None:
            os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = saved_endpoint
        aws.reset_clients()


def _emulated_tables(contract) -> list[str]:
    """DynamoDB target tables that live in the local emulator (not at an endpoint)."""
    if contract.target_kind != "dynamodb" or contract.endpoint_url:
        return []
    return [t.name for t in contract.dynamo_tables.values()]


def _drive(
    state: LocalState,
    contract,
    payload: dict,
    run_id: str,
    execution_name: str,
    as_json: bool,
    timeout: float,
    samples: int,
    out,
    err,
    restore,
    workers: str = "threads",
) -> dict[str, Any]:
    """One execution on a local stack, with progress on `err`, the summary on `out`, and the
    run's state saved when it ends."""
    out = out or sys.stdout
    err = err or sys.stderr
    meta = state.meta()
    started = time.time()
    log = state.folder / "lambda.log"
    with (
        _local_session(meta),
        handler_output_to(log),
        LocalStack(restore=restore, workers=workers, target_kind=contract.target_kind) as stack,
    ):
        view = ProgressView(err, live=err.isatty() and not as_json)
        manifest = _manifest(stack.environment["SLUICE_MANIFEST_TABLE"])
        if not as_json:
            what = "resuming run" if payload.get("resume") else "run"
            err.write(
                f"sluice: {what} {run_id}: {len(contract.tables)} tables "
                f"{contract.source_database} -> {contract.target_kind} (logs: {log})\n"
            )
        arn = stack.start_execution(payload, name=execution_name)

        def tick():
            if not as_json:
                view.show(manifest.progress(run_id))

        desc = stack.wait(arn, timeout=timeout, on_tick=tick)
        summary = _summary(stack, manifest, run_id, arn, desc, time.time() - started)
        summary["log_file"] = str(log)
        if samples and contract.target_kind == "dynamodb":
            summary["samples"] = sample_items(contract, samples)
        # What a deployed stack would still hold, for status, redrive and resume later.
        # A run that succeeded keeps what `sluice verify --local` reads (manifest, staged
        # pages); the emulator's target tables only while something is left to redrive.
        parts = ("manifest", "s3") if summary["ok"] else PARTS
        summary["state_dir"] = str(state.dir)
        state.save(stack, run_id, parts=parts, target_tables=_emulated_tables(contract))
        if summary["ok"]:
            state.drop(("targets", "queues"))
        state.write_meta(
            execution_status=summary["status"], verdict=summary["verdict"], ok=summary["ok"]
        )
    (state.folder / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    if as_json:
        out.write(json.dumps(summary, default=str) + "\n")
    else:
        out.write(render_summary(summary))
    out.flush()
    return summary


def _summary(
    stack: LocalStack, manifest, run_id: str, arn: str, desc: dict, seconds: float
) -> dict:
    tables = manifest.progress(run_id)
    verify = _verify_report(stack, run_id)
    history = stack.history(arn)
    state_types = sorted(
        {e["type"] for e in history if e["type"].startswith(("Map", "TaskState", "Wait"))}
    )
    per_table = {}
    for name, t in sorted(tables.items()):
        d = t.to_dict()
        d["rows_per_second"] = round(t.loaded / t.seconds) if t.seconds else None
        per_table[name] = d
    status = desc["status"]
    return {
        "run_id": run_id,
        "status": status,
        "ok": status == "SUCCEEDED",
        "seconds": round(seconds, 2),
        "verdict": verify.get("verdict") or _failure(desc) or status,
        "tables": per_table,
        "execution": {
            "arn": arn,
            "status": status,
            "history_event_types": state_types,
            # What the run's own Task states called, such as lambda:invoke or, for bulk
            # tables, glue:startJobRun.sync.
            "task_resources": sorted(
                {
                    f"{d['resourceType']}:{d['resource']}"
                    for e in history
                    if (d := e.get("taskScheduledEventDetails"))
                }
            ),
        },
        "imports": manifest.imports(run_id),
        "sqs_messages": {
            "consumed": dict(stack.stats.consumed),
            "failed": dict(stack.stats.failed),
        },
        "invocations": dict(stack.stats.invocations),
    }


def sample_items(contract, n: int) -> dict[str, list[dict]]:
    """The target items of each table's first `n` source rows, read back from DynamoDB.

    Keys are made by the same transform that made the items, from rows read afresh.
    """
    import pyarrow as pa
    from boto3.dynamodb.types import TypeDeserializer

    from ..db import connect, resolve
    from ..source import introspect, read_page
    from ..stages import _dynamo_client
    from ..transform import item_plan, page_kinds, to_dynamodb_items
    from ..types import arrow_schema

    des = TypeDeserializer()
    dynamo = _dynamo_client(contract)
    info = resolve("source", contract.source_url, contract.source_database)
    conn, raw = connect(info), connect(info, raw=True)
    sources = introspect(conn, contract.source_database)
    out: dict[str, list[dict]] = {}
    for spec in contract.tables:
        src = sources[spec.source]
        batches = read_page(raw, contract.source_database, src, spec.key, None, None, chunk_rows=n)
        first = next(iter(batches), None)
        batches.close()
        if first is None:
            continue
        page = pa.Table.from_batches([first.slice(0, n)], schema=arrow_schema(src.columns))
        plan = item_plan(contract, spec, page.column_names, page_kinds(page))
        lines, _ = to_dynamodb_items(page, plan)
        table = contract.dynamo_tables[spec.target_table]
        items = []
        for line in lines.to_pylist():
            item = json.loads(line)["Item"]
            key = {k: item[k] for k in (table.partition_key, table.sort_key) if k}
            got = dynamo.get_item(TableName=table.name, Key=key).get("Item")
            items.append(
                {k: _jsonable(des.deserialize(v)) for k, v in got.items()}
                if got
                else {"missing": key}
            )
        out[spec.source] = items
    conn.close()
    raw.close()
    return out


def _failure(desc: dict) -> str | None:
    """An execution's failure in one line: the handler's error type and message if it was one."""
    cause = desc.get("cause")
    if not cause:
        return desc.get("error")
    try:
        err = json.loads(cause)
        return f"{desc.get('error', 'failed')}: {err['errorType']}: {err['errorMessage']}"
    except (ValueError, KeyError, TypeError):
        return f"{desc.get('error', 'failed')}: {cause}"


def _verify_report(stack: LocalStack, run_id: str) -> dict:
    """The Verify stage's report from staging (it is there whether the run succeeded or not)."""
    try:
        body = aws.client("s3").get_object(
            Bucket=stack.environment["SLUICE_BUCKET"], Key=f"runs/{run_id}/verify.json"
        )
    except aws.client("s3").exceptions.NoSuchKey:
        return {}
    return json.loads(body["Body"].read())


def render_summary(s: dict) -> str:
    lines = ["", f"Run {s['run_id']}: {s['status']} in {s['seconds']:.1f} s", ""]
    head = f"  {'table':<24} {'extracted':>10} {'loaded':>10} {'rejected':>9} {'pages':>6} {'seconds':>8} {'rows/s':>9}"
    lines += [head, "  " + "-" * (len(head) - 2)]
    for name, t in s["tables"].items():
        rps = f"{t['rows_per_second']:,}" if t["rows_per_second"] else "-"
        lines.append(
            f"  {name:<24} {t['extracted']:>10,} {t['loaded']:>10,} {t['rejected']:>9,} {t['pages']:>6} {t['seconds']:>8.2f} {rps:>9}"
        )
        for p in t["failed_pages"]:
            lines.append(
                f"      page {p['page']}: {p['status']} at {p['stage']} after {p['attempts']} attempts: {p['error']}"
            )
    for table, imp in sorted((s.get("imports") or {}).items()):
        if not imp.get("import_arn"):  # refused before it started
            lines.append(f"  {table}: Import from S3 {imp.get('status')}: {imp.get('failure')}")
            continue
        where = f"s3://{imp.get('bucket')}/{imp.get('prefix')}"
        lines.append(
            f"  {table}: Import from S3 {imp.get('status')}: {imp.get('imported', 0):,} of "
            f"{imp.get('expected', 0):,} items imported, {imp.get('errors', 0):,} errors ({where})"
        )
    if s.get("samples"):
        lines += ["", "  Sample items (the single-table design):"]
        for table, items in s["samples"].items():
            for item in items:
                lines.append(f"    {table:<14} {_compact(item)}")
    lines += ["", f"  {s['verdict']}", ""]
    if not s["ok"] and s.get("state_dir"):
        lines += [
            f"  The run's queues, dead-letter queues, manifest and staged pages are saved in "
            f"{s['state_dir']}.",
            "  Fix the cause, then:",
            f"    sluice status  --local --run {s['run_id']}",
            f"    sluice redrive --local --run {s['run_id']}",
            f"    sluice resume  --local --run {s['run_id']}",
            "",
        ]
    return "\n".join(lines)


def _jsonable(v):
    """A deserialised DynamoDB value as plain JSON (numbers stay exact as text when fractional)."""
    from decimal import Decimal

    from boto3.dynamodb.types import Binary

    if isinstance(v, Binary | bytes | bytearray):
        return {"bytes": len(bytes(v))}
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() and abs(v) < 2**53 else str(v)
    if isinstance(v, set):
        return sorted(_jsonable(x) for x in v)
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    return v


def _compact(item: dict, width: int = 150) -> str:
    keys = [k for k in ("PK", "SK") if k in item] + sorted(k for k in item if k not in ("PK", "SK"))
    text = ", ".join(f"{k}={_short(item[k])}" for k in keys)
    return text if len(text) <= width else text[: width - 3] + "..."


def _short(v) -> str:
    if isinstance(v, dict) and set(v) == {"bytes"}:
        return f"<{v['bytes']} bytes>"
    if isinstance(v, list | dict):
        return json.dumps(v, default=str, ensure_ascii=False)
    return str(v)
