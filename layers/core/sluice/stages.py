"""The pipeline's stages, one function each: plan, extract, transform, load, progress, verify.

Handlers call exactly one of these. Each stage reads what the previous one wrote (the plan,
a staged page, the manifest) and nothing else.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache

import pyarrow as pa

from . import db, staging, transform, user_transform
from .aws import client, region
from .config import Settings
from .contract import Contract, from_json
from .contract import parse as parse_contract
from .errors import PageError, SluiceError
from .keys import PageRange, cut_pages
from .manifest import Manifest
from .source import SourceTable, decode_key, introspect, read_page
from .staging import PageRef
from .targets import dynamodb as ddb_target
from .targets import mysql as mysql_target
from .types import arrow_schema
from .validate import check_against_source

SQS_BATCH = 10


@dataclass(frozen=True, slots=True)
class Context:
    """What a stage needs from outside: settings and AWS handles, built once per process."""

    settings: Settings

    @property
    def s3(self):
        return client("s3")

    @property
    def manifest(self) -> Manifest:
        return _manifest(self.settings.manifest_table)

    def put(self, key: str, body: bytes, content_type: str = "application/octet-stream") -> None:
        self.s3.put_object(
            Bucket=self.settings.bucket, Key=key, Body=body, ContentType=content_type
        )

    def get(self, key: str) -> bytes:
        return self.s3.get_object(Bucket=self.settings.bucket, Key=key)["Body"].read()


@lru_cache(maxsize=4)
def _manifest(table_name: str) -> Manifest:
    import boto3

    from .aws import _CONFIG

    return Manifest(
        boto3.resource("dynamodb", region_name=region(), config=_CONFIG).Table(table_name)
    )


def context() -> Context:
    return Context(Settings.from_env())


# ---------------------------------------------------------------- per-process caches


@lru_cache(maxsize=8)
def _contract_for(bucket: str, run_id: str) -> Contract:
    body = client("s3").get_object(Bucket=bucket, Key=staging.contract_key(run_id))["Body"].read()
    return from_json(body.decode())


_connections: dict[tuple, object] = {}


def _connection(role: str, contract: Contract, *, raw: bool = False, local_infile: bool = False):
    """One connection per role per process, reused across invocations, replaced when dead."""
    # Target SQL names its database explicitly, which may not exist before the plan creates it.
    database = contract.source_database if role == "source" else None
    url = contract.source_url if role == "source" else contract.target_url
    info = db.resolve(role, url, database).with_database(database)
    k = (role, info, raw, local_infile)
    conn = _connections.get(k)
    if conn is not None:
        try:
            conn.ping(reconnect=False)
            return conn
        except Exception:  # a dead connection is replaced, whatever killed it
            _connections.pop(k, None)
    conn = db.connect(info, raw=raw, local_infile=local_infile)
    _connections[k] = conn
    return conn


@lru_cache(maxsize=64)
def _source_table(bucket: str, run_id: str, table: str) -> SourceTable:
    contract = _contract_for(bucket, run_id)
    found = introspect(_connection("source", contract), contract.source_database, only=[table])
    if table not in found:
        raise SluiceError(f"source table {contract.source_database}.{table} no longer exists")
    return found[table]


def _dynamo_client(contract: Contract):
    return _dynamo_clients(contract.endpoint_url or None)


@lru_cache(maxsize=4)
def _dynamo_clients(endpoint_url: str | None):
    return ddb_target.make_client(endpoint_url, region())


def reset_caches() -> None:
    """Forget what this process cached (contracts, tables, plans, clients, connections): for
    tests and the local runtime, which reuse one process as many cold starts."""
    for cached in (
        _contract_for,
        _source_table,
        _item_plan,
        _manifest,
        _dynamo_clients,
        _target_columns,
    ):
        cached.cache_clear()
    for conn in _connections.values():
        if conn.open:
            conn.close()
    _connections.clear()


# ---------------------------------------------------------------- plan


def plan_run(ctx: Context, event: dict) -> dict:
    """Validate the contract against the live source, prepare targets, cut pages, record them.

    Returns the fields the state machine routes on: run id, where the page batches are, and
    per-table page counts.
    """
    doc = event.get("contract")
    if doc is None and event.get("contract_key"):
        doc = json.loads(ctx.get(event["contract_key"]))
    if doc is None:
        raise SluiceError(
            "plan input needs 'contract' (the document) or 'contract_key' (an S3 key in the bucket)"
        )
    contract = parse_contract(doc)
    run_id = (
        event.get("run_id")
        or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:6]
    )
    _refuse_reused_run_id(ctx, run_id, contract)
    conn = _connection("source", contract)
    sources = introspect(conn, contract.source_database)
    check_against_source(contract, sources)
    target_columns = _prepare_targets(ctx, contract, sources)
    ctx.put(staging.contract_key(run_id), contract.to_json().encode(), "application/json")
    ctx.put(
        staging.target_columns_key(run_id), json.dumps(target_columns).encode(), "application/json"
    )

    raw = _connection("source", contract, raw=True)
    tables, pages, entries = [], [], []
    for spec in contract.tables:
        ranges = cut_pages(raw, contract.source_database, spec.source, spec.key, spec.page_size)
        path = (
            "bulk"
            if sources[spec.source].estimated_rows > contract.bulk_threshold_rows
            else "lambda"
        )
        tables.append(
            {
                "table": spec.source,
                "target_table": spec.target_table,
                "pages": len(ranges),
                "path": path,
                "estimated_rows": sources[spec.source].estimated_rows,
            }
        )
        for r in ranges:
            ref = PageRef(run_id, spec.source, r.page)
            pages.append((ref, r.to_dict()))
            entries.append(
                {
                    "Id": f"p{len(entries) % SQS_BATCH}",
                    "MessageBody": json.dumps({**ref.to_dict(), "lo": r.lo, "hi": r.hi}),
                }
            )
    batches = [{"Entries": entries[i : i + SQS_BATCH]} for i in range(0, len(entries), SQS_BATCH)]
    ctx.put(staging.plan_batches_key(run_id), json.dumps(batches).encode(), "application/json")
    ctx.manifest.record_plan(
        run_id,
        {"target_kind": contract.target_kind, "contract_key": staging.contract_key(run_id)},
        tables,
        pages,
    )
    return {
        "run_id": run_id,
        "bucket": ctx.settings.bucket,
        "batches_key": staging.plan_batches_key(run_id),
        "page_count": len(pages),
        "batch_count": len(batches),
        "tables": tables,
        "started_at": time.time(),
        "poll_seconds": int(event.get("poll_seconds", ctx.settings.poll_seconds)),
    }


def _refuse_reused_run_id(ctx: Context, run_id: str, contract: Contract) -> None:
    """A run id names one contract: planning it again (a retried Plan task) must not change
    what workers, which cache the contract per run, will read."""
    if ctx.manifest.run(run_id) is None:
        return
    try:
        staged = json.loads(ctx.get(staging.contract_key(run_id)))
    except ctx.s3.exceptions.NoSuchKey:
        return
    if staged != contract.raw:
        raise SluiceError(
            f"run id {run_id!r} was already planned with another contract: choose a new run id"
        )


def _prepare_targets(
    ctx: Context, contract: Contract, sources: dict[str, SourceTable]
) -> dict[str, list[str]]:
    """Create or check every target table; returns MySQL targets' columns ({} for DynamoDB)."""
    if contract.target_kind == "mysql":
        conn = _connection("target", contract)
        for spec in contract.tables:
            src = sources[spec.source]
            cols = transform.selected_columns(spec, list(src.column_names))
            mysql_target.ensure_table(
                conn,
                contract.target_database,
                contract.source_database,
                src,
                spec.target_table,
                cols,
                spec.rename,
                spec.key,
                source_conn=_connection("source", contract),
            )
        return {
            spec.target_table: list(
                mysql_target.target_columns(conn, contract.target_database, spec.target_table) or {}
            )
            for spec in contract.tables
        }
    ddb = _dynamo_client(contract)
    for table in contract.dynamo_tables.values():
        if ctx.settings.create_missing_tables:
            ddb_target.ensure_table(ddb, table)
        else:
            try:
                ddb.describe_table(TableName=table.name)
            except ddb.exceptions.ResourceNotFoundException as exc:
                raise SluiceError(
                    f"DynamoDB table {table.name} does not exist: create it (keys "
                    f"{table.partition_key}/{table.sort_key}) before the run"
                ) from exc
    return {}


# ---------------------------------------------------------------- extract


def extract_page(ctx: Context, message: dict) -> dict:
    """Read one keyset page from the source and stage it as Arrow IPC in S3."""
    started = time.time()
    ref = PageRef.from_dict(message)
    rng = PageRange(ref.page, message.get("lo"), message.get("hi"))
    contract = _contract_for(ctx.settings.bucket, ref.run_id)
    spec = contract.table(ref.table)
    src = _source_table(ctx.settings.bucket, ref.run_id, ref.table)
    conn = _connection("source", contract, raw=True)
    body, rows = staging.write_arrow(
        arrow_schema(src.columns),
        read_page(
            conn, contract.source_database, src, spec.key, decode_key(rng.lo), decode_key(rng.hi)
        ),
    )
    # The manifest moves before the object lands: the object's S3 event starts the next stage.
    ctx.manifest.advance(ref, "extracted", {"extracted": rows}, started_at=started)
    ctx.put(ref.key(staging.EXTRACTED), body)
    return {"page": ref.label, "rows": rows, "bytes": len(body), "seconds": time.time() - started}


# ---------------------------------------------------------------- transform


@lru_cache(maxsize=64)
def _item_plan(
    bucket: str, run_id: str, table: str, kinds: tuple[tuple[str, str], ...]
) -> transform.ItemPlan:
    contract = _contract_for(bucket, run_id)
    return transform.item_plan(contract, contract.table(table), [c for c, _ in kinds], dict(kinds))


@lru_cache(maxsize=8)
def _target_columns(bucket: str, run_id: str) -> dict[str, list[str]]:
    """The MySQL target tables' columns, as the plan recorded them ({} for DynamoDB)."""
    body = (
        client("s3")
        .get_object(Bucket=bucket, Key=staging.target_columns_key(run_id))["Body"]
        .read()
    )
    return json.loads(body)


def transform_page(ctx: Context, key: str) -> dict:
    """Apply the contract to an extracted page: target rows or items, plus rejected rows."""
    started = time.time()
    ref, stage = PageRef.from_key(key)
    if stage != staging.EXTRACTED:
        raise PageError(f"transform got a {stage} object ({key}); only extracted pages belong here")
    contract = _contract_for(ctx.settings.bucket, ref.run_id)
    spec = contract.table(ref.table)
    page = staging.read_arrow(ctx.get(key))
    rejected = transform.NO_REJECTS
    if spec.transform:
        columns = _target_columns(ctx.settings.bucket, ref.run_id).get(spec.target_table)
        templates = [spec.partition_key, spec.sort_key, *spec.attributes.values()]
        named = sorted({c for t in templates if t for c in t.columns})
        page, rejected = user_transform.apply(spec.transform, page, spec.key, columns, named)
    if contract.target_kind == "mysql":
        rows = transform.to_mysql_rows(page, spec)
        body, n = staging.write_arrow(rows.schema, rows.to_batches())
    else:
        kinds = tuple(transform.page_kinds(page).items())
        plan = _item_plan(ctx.settings.bucket, ref.run_id, ref.table, kinds)
        lines, refused, keys = transform.to_dynamodb_items(page, plan, with_keys=True)
        rejected = rejected + refused
        body_keys, _ = staging.write_arrow(keys.schema, keys.to_batches())
        ctx.put(ref.key(staging.KEYS), body_keys)
        body, n = staging.gzip_lines(lines), len(lines)
    if len(rejected):
        ctx.put(ref.key(staging.REJECTED), rejected.to_jsonl(), "application/x-ndjson")
    ctx.manifest.advance(ref, "transformed", {"transformed": n, "rejected": len(rejected)})
    ctx.put(ref.key(staging.TRANSFORMED, contract.target_kind), body)
    return {
        "page": ref.label,
        "rows": n,
        "rejected": len(rejected),
        "seconds": time.time() - started,
    }


# ---------------------------------------------------------------- load


def load_page(ctx: Context, key: str) -> dict:
    """Write a transformed page to the target, idempotently; rows the target refuses go to
    rejected/ with their reason, and the page completes."""
    started = time.time()
    ref, stage = PageRef.from_key(key)
    if stage != staging.TRANSFORMED:
        raise PageError(f"load got a {stage} object ({key}); only transformed pages belong here")
    contract = _contract_for(ctx.settings.bucket, ref.run_id)
    spec = contract.table(ref.table)
    data = ctx.get(key)
    if contract.target_kind == "mysql":
        rows: pa.Table = staging.read_arrow(data)
        conn = _connection("target", contract, local_infile=True)
        key_cols = [spec.rename.get(k, k) for k in spec.key]
        n, rejected = mysql_target.load_page_rows(
            conn, contract.target_database, spec.target_table, rows, key_cols, spec.on_conflict
        )
    else:
        table = contract.dynamo_tables[spec.target_table]
        key_names = [k for k in (table.partition_key, table.sort_key) if k]
        lines = staging.gunzip_lines(data)
        n, rejected = ddb_target.write_page_items(
            _dynamo_client(contract), spec.target_table, lines, key_names
        )
    if len(rejected):
        ctx.put(ref.key(staging.LOAD_REJECTED), rejected.to_jsonl(), "application/x-ndjson")
    ctx.manifest.advance(ref, "loaded", {"loaded": n, "load_rejected": len(rejected)})
    return {
        "page": ref.label,
        "rows": n,
        "rejected": len(rejected),
        "seconds": time.time() - started,
    }


# ---------------------------------------------------------------- progress and verify


def dlq_depths(ctx: Context) -> dict[str, int]:
    sqs = client("sqs")
    out = {}
    for stage, url in ctx.settings.dlq_urls.items():
        attrs = sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        out[stage] = int(attrs["ApproximateNumberOfMessages"]) + int(
            attrs["ApproximateNumberOfMessagesNotVisible"]
        )
    return out


def progress(ctx: Context, event: dict) -> dict:
    """Where the run stands: `done` when every page is loaded, `failed` when a page cannot be."""
    run_id = event["run_id"]
    tables = ctx.manifest.progress(run_id)
    depths = dlq_depths(ctx)
    failed_pages = sum(
        1 for t in tables.values() for p in t.failed_pages if p["status"] == "failed"
    )
    pages = sum(t.pages for t in tables.values())
    loaded = sum(t.pages_loaded for t in tables.values())
    started = float(event.get("started_at") or time.time())
    timed_out = time.time() - started > ctx.settings.run_timeout_seconds
    done = loaded == pages
    # Dead-letter queues may hold other runs' messages, so only this run's manifest decides.
    stuck = not done and failed_pages > 0
    return {
        "run_id": run_id,
        "started_at": started,
        "done": done,
        "failed": stuck or (timed_out and not done),
        "timed_out": timed_out and not done,
        "pages": pages,
        "pages_loaded": loaded,
        "failed_pages": failed_pages,
        "dlq_depths": depths,
        "poll_seconds": event.get("poll_seconds", ctx.settings.poll_seconds),
    }


def _item_keys_of(ctx: Context, run_id: str, table: str) -> pa.Table | None:
    """Every item key the transform wrote for a source table (None if it wrote none)."""
    prefix = f"runs/{run_id}/{staging.KEYS}/{table}/"
    pages = []
    for page in ctx.s3.get_paginator("list_objects_v2").paginate(
        Bucket=ctx.settings.bucket, Prefix=prefix
    ):
        pages.extend(o["Key"] for o in page.get("Contents", []))
    return pa.concat_tables([staging.read_arrow(ctx.get(k)) for k in pages]) if pages else None


def verify_run(ctx: Context, event: dict) -> dict:
    from .verify import verify

    run_id = event["run_id"]
    contract = _contract_for(ctx.settings.bucket, run_id)
    report = verify(
        contract,
        ctx.manifest.progress(run_id),
        source_conn=_connection("source", contract),
        target_conn=_connection("target", contract) if contract.target_kind == "mysql" else None,
        dynamo=_dynamo_client(contract) if contract.target_kind == "dynamodb" else None,
        item_keys=(lambda table: _item_keys_of(ctx, run_id, table))
        if contract.target_kind == "dynamodb"
        else None,
    )
    ctx.put(
        f"runs/{run_id}/verify.json",
        json.dumps(report, indent=2, default=str).encode(),
        "application/json",
    )
    ctx.manifest.set_run(
        run_id,
        status="succeeded" if report["ok"] else "failed",
        verdict=report["verdict"],
        finished_at=_decimal(time.time()),
    )
    return report


def _decimal(x: float):
    from decimal import Decimal

    return Decimal(str(round(x, 3)))
