"""The pipeline's stages, one function each: plan, extract, transform, load, progress, import,
verify.

Handlers call exactly one of these. Each stage reads what the previous one wrote (the plan,
a staged page, the manifest) and nothing else.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import pyarrow as pa
import pyarrow.compute as pc
from botocore.exceptions import ClientError

from . import (
    bulk,
    checksum,
    config,
    db,
    ddb_import,
    ratelimit,
    retry,
    staging,
    transform,
    user_transform,
)
from .aws import client, region
from .config import Settings
from .contract import Contract, from_json
from .contract import parse as parse_contract
from .errors import PageError, SluiceError
from .keys import PageRange, cut_pages
from .manifest import Manifest, import_succeeded
from .source import SourceTable, decode_key, introspect, page_query, read_page, rows_to_batch
from .staging import PageRef
from .targets import dynamodb as ddb_target
from .targets import mysql as mysql_target
from .types import arrow_schema
from .validate import check_against_source
from .verify import shared_keys, show_key

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


def _connection(role: str, contract: Contract, *, raw: bool = False, local_infile: bool = False):
    """The pooled connection for a role of this contract."""
    # Target SQL names its database explicitly, which may not exist before the plan creates it.
    database = contract.source_database if role == "source" else None
    url = contract.source_url if role == "source" else contract.target_url
    info = db.resolve(role, url, database).with_database(database)
    # The raw source session reads rows (pages, the plan's boundaries, verify's samples): the
    # server ends any of its statements that outlives the statement timeout.
    timeout = db.source_statement_timeout() if role == "source" and raw else None
    return db.pooled(info, raw=raw, local_infile=local_infile, statement_timeout=timeout)


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


def _dynamo_writer(contract: Contract):
    """The fast HTTP writer wherever DynamoDB is reachable over HTTP (AWS, DynamoDB Local, an
    emulator server); the SDK client only for the local runtime's in-process emulator, which
    says so with SLUICE_DYNAMODB_SENDER=sdk."""
    if contract.endpoint_url or os.environ.get("SLUICE_DYNAMODB_SENDER", "http") != "sdk":
        return _http_writers(contract.endpoint_url or None)
    return _dynamo_client(contract)


@lru_cache(maxsize=4)
def _http_writers(endpoint_url: str | None):
    from .targets.dynamodb_http import HttpBatchWriter

    return HttpBatchWriter(region(), endpoint_url)


@lru_cache(maxsize=8)
def _write_rates(bucket: str, run_id: str) -> dict:
    body = client("s3").get_object(Bucket=bucket, Key=ratelimit.rates_key(run_id))["Body"].read()
    return json.loads(body)


@lru_cache(maxsize=16)
def _worker_bucket(run_id: str, table: str, rate: float) -> ratelimit.TokenBucket:
    """This process's bucket for a table, kept across the pages it loads."""
    return ratelimit.TokenBucket(rate, full=False)


def _write_meter(ctx: Context, run_id: str, table) -> ratelimit.Meter:
    """A page's meter: under a write_rate, on this worker's share of it (the Lambda path's share
    the plan set, divided among the load workers that can run at once)."""
    if table.write_rate is None:
        return ratelimit.Meter()
    share = _write_rates(ctx.settings.bucket, run_id)[table.name]["lambda"]
    rate = share / ctx.settings.load_concurrency
    return ratelimit.Meter(_worker_bucket(run_id, table.name, rate))


def reset_caches() -> None:
    """Forget what this process cached (contracts, tables, plans, clients, connections): for
    tests and the local runtime, which reuse one process as many cold starts."""
    for cached in (
        _contract_for,
        _source_table,
        _item_plan,
        _manifest,
        _dynamo_clients,
        _http_writers,
        _target_columns,
        _write_rates,
        _worker_bucket,
    ):
        cached.cache_clear()
    db.close_pooled()


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
    caps = ratelimit.table_caps(
        contract, lambda name: _dynamo_client(contract).describe_table(TableName=name)["Table"]
    )
    ctx.put(staging.contract_key(run_id), contract.to_json().encode(), "application/json")
    ctx.put(
        staging.target_columns_key(run_id), json.dumps(target_columns).encode(), "application/json"
    )

    raw = _connection("source", contract, raw=True)
    tables, pages, entries, bulk_runs = [], [], [], []
    for spec in contract.tables:
        ranges = cut_pages(raw, contract.source_database, spec.source, spec.key, spec.page_size)
        path = spec.path or (
            "bulk"
            if sources[spec.source].estimated_rows > contract.bulk_threshold_rows
            else "lambda"
        )
        if path == "bulk" and ranges:
            # The Glue job gets the ranges from S3; its pages get no Lambda page messages.
            key = bulk.ranges_key(run_id, spec.source)
            doc = bulk.ranges_document(run_id, spec.source, ranges)
            ctx.put(key, json.dumps(doc).encode(), "application/json")
            bulk_runs.append({"table": spec.source, "ranges_key": key})
        tables.append(
            {
                "table": spec.source,
                "target_table": spec.target_table,
                "pages": len(ranges),
                "path": path,
                "load": _load_way(contract, spec.target_table),
                "estimated_rows": sources[spec.source].estimated_rows,
            }
        )
        for r in ranges:
            ref = PageRef(run_id, spec.source, r.page)
            pages.append((ref, r.to_dict()))
            if path == "bulk":
                continue
            entries.append(
                {
                    "Id": f"p{len(entries) % SQS_BATCH}",
                    "MessageBody": json.dumps({**ref.to_dict(), "lo": r.lo, "hi": r.hi}),
                }
            )
    _refuse_too_many_import_objects(contract, tables)
    rates = ratelimit.split(caps, tables)
    ctx.put(ratelimit.rates_key(run_id), json.dumps(rates).encode(), "application/json")
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
        # One Glue job run per bulk table (the state machine's BulkTables map).
        "bulk": bulk_runs,
        "bulk_count": len(bulk_runs),
        # The state machine imports after the pages when this is above 0.
        "import_count": len(contract.import_tables),
        "started_at": time.time(),
        "poll_seconds": int(event.get("poll_seconds", ctx.settings.poll_seconds)),
    }


def resume_run(ctx: Context, event: dict) -> dict:
    """Pick a planned run up again (`sluice resume`): nothing is planned or extracted anew;
    the state machine waits for its pages (redriven ones included), imports, verifies.

    Returns the fields the state machine routes on, like plan_run, with a fresh `started_at`
    so the run's time limit counts from the resume."""
    run_id = event.get("run_id")
    run = ctx.manifest.run(run_id) if run_id else None
    if run is None:
        raise SluiceError(
            f"no run {run_id!r} to resume: the manifest does not know it (`sluice start` and "
            "`sluice run --local` print the run id)"
        )
    contract = _contract_for(ctx.settings.bucket, run_id)
    tables = ctx.manifest.progress(run_id)
    now = time.time()
    ctx.manifest.set_run(
        run_id,
        status="running",
        verdict=None,
        resumed_at=_decimal(now),
        resumes=int(run.get("resumes", 0)) + 1,
    )
    return {
        "run_id": run_id,
        "bucket": ctx.settings.bucket,
        "page_count": sum(t.pages for t in tables.values()),
        "tables": [
            {"table": n, "pages": t.pages, "path": t.path, "load": t.load}
            for n, t in sorted(tables.items())
        ],
        "import_count": len(contract.import_tables),
        "started_at": now,
        "poll_seconds": int(event.get("poll_seconds", ctx.settings.poll_seconds)),
        "resumed": True,
    }


def _load_way(contract: Contract, target_table: str) -> str:
    table = contract.dynamo_tables.get(target_table)
    return table.load if table else "write"


def _refuse_too_many_import_objects(contract: Contract, tables: list[dict]) -> None:
    """One import reads at most 50,000 objects, and the import way stages one per page."""
    for table in contract.import_tables:
        pages = sum(t["pages"] for t in tables if t["target_table"] == table.name)
        if pages > ddb_import.MAX_OBJECTS:
            raise SluiceError(
                f"DynamoDB table {table.name}: {pages:,} pages, but one import reads at most "
                f"{ddb_import.MAX_OBJECTS:,} S3 objects (one a page): raise page_size in "
                "$.defaults or its tables' entries"
            )


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
        if table.imports:
            _refuse_existing_import_table(ddb, table)
        elif ctx.settings.create_missing_tables:
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


def _refuse_existing_import_table(ddb, table) -> None:
    """Import from S3 creates its table: a table of that name already there would make the
    import fail after every page was extracted, so the plan refuses it first."""
    try:
        ddb.describe_table(TableName=table.name)
    except ddb.exceptions.ResourceNotFoundException:
        return
    raise SluiceError(
        f'DynamoDB table {table.name} exists, but "load": "import" creates its table: set '
        f'$.target.tables.{table.name}.load to "write" to write into it, or delete it first'
    )


# ---------------------------------------------------------------- extract


def extract_page(ctx: Context, message: dict) -> dict:
    """Read one keyset page from the source and stage it as Arrow IPC in S3."""
    started = time.time()
    ref = PageRef.from_dict(message)
    rng = PageRange(ref.page, message.get("lo"), message.get("hi"))
    contract = _contract_for(ctx.settings.bucket, ref.run_id)
    spec = contract.table(ref.table)
    src = _source_table(ctx.settings.bucket, ref.run_id, ref.table)
    lo, hi = decode_key(rng.lo), decode_key(rng.hi)
    # Summed as it streams: the next stage refuses an object that no longer holds these rows.
    # A transient MySQL failure reads the whole page again, on a fresh connection.
    body, rows, page_sum = retry.call(
        f"page {ref.label} of run {ref.run_id} (extract)",
        lambda: checksum.write_arrow(
            arrow_schema(src.columns),
            read_page(
                _connection("source", contract, raw=True),
                contract.source_database,
                src,
                spec.key,
                lo,
                hi,
            ),
        ),
    )
    # The manifest moves before the object lands: the object's S3 event starts the next stage.
    ctx.manifest.advance(
        ref, "extracted", {"extracted": rows, "extract_sum": page_sum}, started_at=started
    )
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


def _user_transformed(bucket: str, run_id: str, spec, page: pa.Table):
    """The page after the contract's own module:function, if it names one: (page, rejected)."""
    if not spec.transform:
        return page, transform.NO_REJECTS
    columns = _target_columns(bucket, run_id).get(spec.target_table)
    templates = [spec.partition_key, spec.sort_key, *spec.attributes.values()]
    named = sorted({c for t in templates if t for c in t.columns})
    return user_transform.apply(spec.transform, page, spec.key, columns, named)


def _dynamodb_items(bucket: str, run_id: str, spec, page: pa.Table):
    """A source page as DynamoDB items: (item lines, rejected rows, item keys). The transform
    stage and verification's read-back both use it, so both make the same items."""
    page, rejected = _user_transformed(bucket, run_id, spec, page)
    kinds = tuple(transform.page_kinds(page).items())
    plan = _item_plan(bucket, run_id, spec.source, kinds)
    lines, refused, keys = transform.to_dynamodb_items(page, plan, with_keys=True)
    return lines, rejected + refused, keys


def _refuse_changed(
    ctx: Context, ref: PageRef, key: str, field: str, found: str, found_old: Callable[[], str]
) -> None:
    """Refuse a staged object whose rows are not those the stage before recorded (`field`,
    a checksum on the page's manifest item): changed, replaced or damaged since. `found` is
    the object's sum; `found_old()` sums it the legacy way, for a legacy recorded sum."""
    recorded = (ctx.manifest.page(ref) or {}).get(field)
    if checksum.legacy(recorded):
        found = found_old()
    if recorded is not None and recorded != found:
        raise PageError(
            f"page {ref.label} of run {ref.run_id}: the staged object {key} does not hold the "
            f"rows recorded when it was written ({field} {recorded}, the object sums to "
            f"{found}): it was changed or replaced since. Nothing was written for this page; "
            "stage it again (`sluice redrive` re-runs the stage before)"
        )


# ---------------------------------------------------------------- pages a slice at a time

# A transform or load holds one slice of its page at a time, not the page, so a worker's peak
# RSS stays under 256 MB for any page a contract allows (200,000 rows; `python -m bench.worker
# all`). A multiple of the DynamoDB writer's batch: the load sends the batches it would send
# of the whole page.
SLICE_ROWS = 10_000
_ROW = "__sluice_row__"  # a slice's row numbers, in a column of their own


def _staged_sum(data: bytes, key: list[str] | None = None, old: bool = False) -> tuple[str, bool]:
    """A staged Arrow page's checksum (checksum.page_sum; `old`: a legacy one), summed a slice
    at a time; and whether its rows are in `key` order as checksum.key_ordered sorts them,
    which makes their key-ordered sum the same sum."""
    summed = checksum.PageSum(staging.arrow_schema_of(data), old)
    ordered, last = bool(key), None
    for part in staging.iter_arrow(data, SLICE_ROWS):
        summed.update(part)
        if ordered and part.num_rows:
            keys = part.select(key)
            ordered = _in_key_order(keys if last is None else pa.concat_tables([last, keys]), key)
            last = keys.slice(keys.num_rows - 1)
    return summed.hexdigest(), ordered


def _in_key_order(rows: pa.Table, key: list[str]) -> bool:
    """Whether checksum.key_ordered's sort (stable) leaves `rows` where they are."""
    if len(key) == 1 and rows.num_rows > 1:
        col = rows.column(key[0])
        if col.null_count == 0 and _ordered_as_sorted(col.type):
            # A stable sort leaves a non-decreasing column as it is and moves anything else:
            # one comparison a row instead of a sort (the page's staged-sum pass, 50k rows:
            # 9.5 ms with the sort, 3.9 ms with this).
            n = rows.num_rows
            return pc.all(pc.less_equal(col.slice(0, n - 1), col.slice(1))).as_py()
    order = pc.sort_indices(rows, sort_keys=[(k, "ascending") for k in key])
    return order.equals(pa.array(range(len(order)), order.type))


def _ordered_as_sorted(t: pa.DataType) -> bool:
    """Types whose `less_equal` is the order sort_indices sorts them in (bytes for text);
    not floats, which sort NaN last, nor checksum's view types, which have no `less_equal`."""
    return (
        pa.types.is_integer(t)
        or pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
    )


def _staged_lines_sum(data: bytes, old: bool = False) -> str:
    """checksum.lines_sum of a staged page of item lines (gzip), unzipped a piece at a time."""
    h = checksum.lines_hasher(old)
    for piece in staging.iter_gunzip(data):
        h.update(piece)
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class _Items:
    """A page made into DynamoDB items: what transform_page stages and records."""

    body: bytes  # the item lines, gzip (staging.gzip_lines of them all)
    keys: bytes  # each item's key beside its source row's (Arrow IPC)
    n: int
    rejected: staging.Rejected
    lines_sum: str  # checksum.lines_sum of the lines


def _page_items(data: bytes, plan_of, user=None) -> _Items:
    """An extracted page (Arrow IPC) as DynamoDB items, made SLICE_ROWS rows at a time with
    the same lines, rejected rows (in page order) and keys as to_dynamodb_items of the whole
    page. `plan_of(schema)` gives the item plan; `user`, the contract's own transform, sees
    the whole page, as it always has."""
    if user is None:
        schema, rejected = staging.arrow_schema_of(data), transform.NO_REJECTS

        def parts():
            return staging.iter_arrow(data, SLICE_ROWS)
    else:
        page, rejected = user(staging.read_arrow(data))
        schema = page.schema

        def parts():
            return (page.slice(i, SLICE_ROWS) for i in range(0, page.num_rows, SLICE_ROWS))

    plan = plan_of(schema)
    # Slices are made on their own, then their keys checked once for a key that two slices
    # share (the whole page's transform refuses the later rows of a key). Only a page that
    # has one is made again, each slice then checked against the keys of those before it.
    items = _sliced_items(parts(), schema, plan, rejected, repeats=False)
    return items or _sliced_items(parts(), schema, plan, rejected, repeats=True)


def _sliced_items(parts, schema: pa.Schema, plan, rejected, *, repeats: bool) -> _Items | None:
    """_page_items of these slices; None if a key is in two slices and `repeats` is false
    (each slice is then not checked against the slices before it)."""
    body, h = staging.GzipWriter(), checksum.lines_hasher()
    targets: list[pa.Array] = []  # the items' keys, as the keys object holds them
    sources: list[pa.Array] = []
    others: list[pa.Array] = []  # refused rows' target keys: a later row of one is refused too
    keys_schema, n = None, 0
    for part in parts:
        if repeats:
            lines, refused, keys = _slice_items(part, plan, targets + others)
        else:
            lines, refused, keys = transform.to_dynamodb_items(part, plan, with_keys=True)
        buf = staging.lines_view(lines)
        body.write(buf)
        h.update(buf)
        n += len(lines)
        del buf, lines  # one slice's lines at a time: the page's are only in `body`, zipped
        rejected = rejected + refused
        keys_schema = keys.schema
        targets += keys.column("target_key").chunks
        sources += keys.column("source_key").chunks
        if len(refused):
            mine = keys.column("target_key").combine_chunks()
            every = _key_only(part, plan).column("target_key")
            others += every.filter(pc.invert(pc.is_in(every, value_set=mine))).chunks
    if keys_schema is None:  # an empty page: the keys table of no rows, as the whole page's
        keys = transform.to_dynamodb_items(schema.empty_table(), plan, with_keys=True)[2]
    else:
        target = pa.chunked_array(targets, keys_schema.field("target_key").type).combine_chunks()
        targets.clear()
        if not repeats and _has_repeats(pa.concat_arrays([target, *others]) if others else target):
            return None
        source = pa.chunked_array(sources, keys_schema.field("source_key").type).combine_chunks()
        sources.clear()
        keys = pa.Table.from_arrays([target, source], schema=keys_schema)
    keys_body, _ = staging.write_arrow(keys.schema, keys.to_batches())
    return _Items(body.getvalue(), keys_body, n, rejected, h.hexdigest())


def _has_repeats(keys: pa.Array) -> bool:
    """Whether a value is in `keys` more than once: sorted, and compared a slice at a time
    (a hash table of the keys would take several times their size)."""
    order = pc.sort_indices(keys)
    for i in range(0, len(keys) - 1, SLICE_ROWS):
        run = keys.take(order.slice(i, SLICE_ROWS + 1))
        if pc.any(pc.equal(run.slice(1), run.slice(0, len(run) - 1))).as_py():
            return True
    return False


def _slice_items(part: pa.Table, plan: transform.ItemPlan, seen: list[pa.Array]):
    """to_dynamodb_items of one slice, also refusing a row whose target key a row of an earlier
    slice has (`seen`), as the whole page's transform refuses a repeated key."""
    lines, refused, keys = transform.to_dynamodb_items(part, plan, with_keys=True)
    if not seen or not len(keys):
        return lines, refused, keys
    target = keys.column("target_key")
    repeat = pc.is_in(target, value_set=pa.concat_arrays(seen))
    if not pc.any(repeat).as_py():
        return lines, refused, keys
    # Rare: rows repeating an earlier slice's key. One row of each such key put before the
    # slice (a copy of the slice's own row) is an earlier row of that key, and the transform
    # refuses the slice's rows of it as it would in the whole page, in order, each with the
    # reason the whole page gives it. The copies' items (first, all written) are dropped.
    numbered = part.append_column(_ROW, pa.array(range(part.num_rows), pa.int64()))
    rows_of = dataclasses.replace(plan, key_columns=(_ROW,), kinds={**plan.kinds, _ROW: "int"})
    _, _, at = transform.to_dynamodb_items(numbered, rows_of, with_keys=True)
    repeated = pc.cast(at.column("source_key"), pa.int64()).filter(repeat).to_pylist()
    first: dict[str, int] = {}
    for k, row in zip(target.filter(repeat).to_pylist(), repeated, strict=True):
        first.setdefault(k, row)
    copies = sorted(first.items(), key=lambda kv: kv[1])
    lines, refused, keys = transform.to_dynamodb_items(
        pa.concat_tables([part.take(pa.array([r for _, r in copies], pa.int64())), part]),
        plan,
        with_keys=True,
    )
    w = len(copies)
    if keys.column("target_key").slice(0, w).to_pylist() != [k for k, _ in copies]:
        raise SluiceError(
            "transform: rows repeating a key of an earlier slice were not refused as the whole "
            "page would refuse them (a Sluice bug: report it); nothing of the page was staged"
        )
    return lines.slice(w), refused, keys.slice(w)


def _key_only(part: pa.Table, plan: transform.ItemPlan) -> pa.Table:
    """The target keys of a slice's rows that have one (its refused rows too), from the key
    templates alone."""
    n_keys = 2 if plan.has_sort_key else 1
    keys_plan = dataclasses.replace(plan, key_attrs=plan.key_attrs[:n_keys], value_attrs=())
    return transform.to_dynamodb_items(part, keys_plan, with_keys=True)[2]


def _rows_written_sum(
    data: bytes, key: list[str], refused: list[dict], page_sum: str, in_key_order: bool
) -> str:
    """checksum.rows_written_sum of a staged page, a slice at a time when its rows are in key
    order (`in_key_order`, from _staged_sum; pages are read from the source in key order)."""
    if not in_key_order:  # the key-ordered sum sorts the page: it takes the whole page
        return checksum.rows_written_sum(staging.read_arrow(data), key, refused)
    if not refused:
        return page_sum
    gone = {tuple(k[c] for c in key) for k in refused}
    summed = checksum.PageSum(staging.arrow_schema_of(data))
    for part in staging.iter_arrow(data, SLICE_ROWS):
        keep = [tuple(r[c] for c in key) not in gone for r in part.select(key).to_pylist()]
        summed.update(part.filter(pa.array(keep, pa.bool_())))
    return summed.hexdigest()


def _lines_written_sum(data: bytes, key_names: list[str], refused: list[dict], page_sum: str):
    """checksum.lines_written_sum of a staged page of item lines, a slice at a time."""
    if not refused:
        return page_sum
    gone = {tuple(k[n] for n in key_names if n in k) for k in refused}
    h = checksum.lines_hasher()
    for lines in staging.iter_gunzip_lines(data, SLICE_ROWS):
        h.update(
            b"".join(
                line + b"\n"
                for line in lines
                if checksum.item_key(json.loads(line)["Item"], key_names) not in gone
            )
        )
    return h.hexdigest()


def transform_page(ctx: Context, key: str) -> dict:
    """Apply the contract to an extracted page: target rows or items, plus rejected rows.

    Items for a table that an import creates go under that table's import prefix, whose
    suffix no S3 notification matches: those pages are done here, and the import loads them.
    """
    started = time.time()
    ref, stage = PageRef.from_key(key)
    if stage != staging.EXTRACTED:
        raise PageError(f"transform got a {stage} object ({key}); only extracted pages belong here")
    contract = _contract_for(ctx.settings.bucket, ref.run_id)
    spec = contract.table(ref.table)
    data = ctx.get(key)
    out_key, imports = ref.key(staging.TRANSFORMED, contract.target_kind), False
    if contract.target_kind == "mysql":
        extracted = staging.read_arrow(data)
        _refuse_changed(
            ctx,
            ref,
            key,
            "extract_sum",
            checksum.page_sum(extracted),
            lambda: checksum.page_sum(extracted, old=True),
        )
        page, rejected = _user_transformed(ctx.settings.bucket, ref.run_id, spec, extracted)
        rows = transform.to_mysql_rows(page, spec)
        body, n, out_sum = checksum.write_arrow(rows.schema, rows.to_batches())
    else:
        _refuse_changed(
            ctx,
            ref,
            key,
            "extract_sum",
            _staged_sum(data)[0],
            lambda: _staged_sum(data, old=True)[0],
        )
        bucket, run_id = ctx.settings.bucket, ref.run_id

        def plan_of(schema: pa.Schema) -> transform.ItemPlan:
            kinds = tuple(transform.page_kinds(schema.empty_table()).items())
            return _item_plan(bucket, run_id, spec.source, kinds)

        def user(page: pa.Table):
            return _user_transformed(bucket, run_id, spec, page)

        items = _page_items(data, plan_of, user if spec.transform else None)
        ctx.put(ref.key(staging.KEYS), items.keys)
        body, n, rejected, out_sum = items.body, items.n, items.rejected, items.lines_sum
        if contract.dynamo_tables[spec.target_table].imports:
            out_key, imports = ref.import_key(spec.target_table), True
    if len(rejected):
        ctx.put(ref.key(staging.REJECTED), rejected.to_jsonl(), "application/x-ndjson")
    counts = {"transformed": n, "rejected": len(rejected), "transform_sum": out_sum}
    if imports:
        # Done means in S3: the import starts once every page is done, so the object first.
        ctx.put(out_key, body)
        ctx.manifest.advance(ref, "transformed", counts)
    else:
        # The manifest moves before the object lands: its S3 event starts the load.
        ctx.manifest.advance(ref, "transformed", counts)
        ctx.put(out_key, body)
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
    paced: dict[str, int] = {}  # DynamoDB: write units sent, ms waited on the write-rate cap
    # The page is read a slice at a time (SLICE_ROWS), summed before anything is written.
    if contract.target_kind == "mysql":
        key_cols = [spec.rename.get(k, k) for k in spec.key]
        found, in_key_order = _staged_sum(data, key_cols)
        _refuse_changed(
            ctx, ref, key, "transform_sum", found, lambda: _staged_sum(data, old=True)[0]
        )
        # One statement and transaction for the page. A transient MySQL failure (its
        # transaction rolled back) loads the whole page again.
        n, rejected = retry.call(
            f"page {ref.label} of run {ref.run_id} (load)",
            lambda: mysql_target.load_page_slices(
                _connection("target", contract, local_infile=True),
                contract.target_database,
                spec.target_table,
                staging.arrow_schema_of(data),
                lambda: staging.iter_arrow(data, SLICE_ROWS),
                key_cols,
                spec.on_conflict,
            ),
        )
        loaded_sum = _rows_written_sum(data, key_cols, rejected.keys, found, in_key_order)
    else:
        table = contract.dynamo_tables[spec.target_table]
        key_names = [k for k in (table.partition_key, table.sort_key) if k]
        found = _staged_lines_sum(data)
        _refuse_changed(
            ctx, ref, key, "transform_sum", found, lambda: _staged_lines_sum(data, old=True)
        )
        meter = _write_meter(ctx, ref.run_id, table)
        writer, n, rejected = _dynamo_writer(contract), 0, staging.NO_REJECTS
        for lines in staging.iter_gunzip_lines(data, SLICE_ROWS):
            written, refused = ddb_target.write_page_items(
                writer, spec.target_table, lines, key_names, meter=meter, page=ref.label
            )
            n, rejected = n + written, rejected + refused
        paced = meter.counts()
        loaded_sum = _lines_written_sum(data, key_names, rejected.keys, found)
    if len(rejected):
        ctx.put(ref.key(staging.LOAD_REJECTED), rejected.to_jsonl(), "application/x-ndjson")
    ctx.manifest.advance(
        ref,
        "loaded",
        {"loaded": n, "load_rejected": len(rejected), "loaded_sum": loaded_sum, **paced},
    )
    return {
        "page": ref.label,
        "rows": n,
        "rejected": len(rejected),
        "seconds": time.time() - started,
        **paced,
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


def _failed_pages(tables: dict) -> int:
    """Pages out of retries (not those redriven, which wait for their retry)."""
    return sum(1 for t in tables.values() for p in t.failed_pages if p["status"] == "failed")


def _in_tail(tables: dict, poll: float) -> bool:
    """Whether the run is down to its last pages, none of them failed: at most
    config.TAIL_PAGES, or, while no page is retrying or redriven, no more than the run loads
    in a poll's time at its pace, so they are likely done before the next poll."""
    left = sum(t.pages - t.pages_loaded for t in tables.values())
    if not left or _failed_pages(tables):
        return False
    if left <= config.TAIL_PAGES:
        return True
    if any(t.failed_pages for t in tables.values()):  # retrying or redriven: no pace to go by
        return False
    return left <= poll * _pages_per_second(tables)


def _pages_per_second(tables: dict) -> float:
    """Pages loaded a second since the run's first page started, up to now: a run that stops
    loading slows down, and leaves the tail. 0 before a page is loaded; on the import way,
    pages wait for their import and give no pace."""
    started = [t.first_started for t in tables.values() if t.first_started is not None]
    loaded = sum(t.status_counts.get("loaded", 0) for t in tables.values())
    span = time.time() - min(started) if started else 0.0
    return loaded / span if loaded and span > 0 else 0.0


def tail_wait_until(event: dict, remaining_ms: int) -> float:
    """Until when (time.monotonic) a progress check may wait for a run's last pages: a poll
    (the event's `poll_seconds`), and never closer than 5 s to the function's timeout."""
    poll = float(event.get("poll_seconds") or 0)
    return time.monotonic() + max(0.0, min(poll, remaining_ms / 1000 - 5))


def progress(ctx: Context, event: dict, *, wait_until: float | None = None) -> dict:
    """Where the run stands: `done` when every page is loaded, `failed` when a page cannot be.

    With `bulk_failed` ({table, error, cause}: a bulk table's Glue job run failed), that
    table's unfinished pages are marked failed first, so the run ends instead of waiting.
    With `wait_until` (time.monotonic), a check that finds the run in its last pages waits
    for them until then (_in_tail)."""
    run_id = event["run_id"]
    if failure := event.get("bulk_failed"):
        bulk.fail_unfinished(
            ctx.manifest, run_id, failure["table"], bulk.job_failure_reason(failure)
        )
    read_at = time.monotonic()
    tables = ctx.manifest.progress(run_id)
    read = time.monotonic() - read_at
    poll = float(event.get("poll_seconds") or 0)
    # Another check only if it would end before wait_until: a read may take as long as the
    # last one did (a large run's manifest takes seconds), and the function must return
    # before its timeout.
    while (
        wait_until is not None
        and _in_tail(tables, poll)
        and time.monotonic() + config.TAIL_CHECK_SECONDS + read < wait_until
    ):
        time.sleep(config.TAIL_CHECK_SECONDS)
        read_at = time.monotonic()
        tables = ctx.manifest.progress(run_id)
        read = time.monotonic() - read_at
    depths = dlq_depths(ctx)
    failed_pages = _failed_pages(tables)
    pages = sum(t.pages for t in tables.values())
    loaded = sum(t.pages_loaded for t in tables.values())
    started = float(event.get("started_at") or time.time())
    timed_out = time.time() - started > ctx.settings.run_timeout_seconds
    done = loaded == pages
    # Dead-letter queues may hold other runs' messages, so only this run's manifest decides.
    stuck = not done and failed_pages > 0
    # Pages waiting with nothing moving: their messages are gone, so the run ends and says so.
    moved = max([started] + [t.last_change for t in tables.values() if t.last_change])
    stalled = not done and not stuck and time.time() - moved > ctx.settings.stall_seconds
    return {
        "run_id": run_id,
        "started_at": started,
        "done": done,
        "failed": stuck or stalled or (timed_out and not done),
        "timed_out": timed_out and not done,
        "stalled": stalled,
        "pages": pages,
        "pages_loaded": loaded,
        "failed_pages": failed_pages,
        "dlq_depths": depths,
        "poll_seconds": event.get("poll_seconds", ctx.settings.poll_seconds),
    }


# ---------------------------------------------------------------- import


def start_imports(ctx: Context, event: dict) -> dict:
    """Start Import from S3 for each target table that an import creates (every page staged).

    A table whose items share a key across pages or source tables is refused before anything
    is created: an import would silently keep one item of each key (the write way reports
    them at verification instead). Safe to run again for the same run, as a retried task or
    a later resume does: an import running or done is kept, one that failed is started again
    under a new client token, from the items already staged (nothing is extracted again).
    Returns the fields the state machine routes on (see `check_imports`).
    """
    run_id = event["run_id"]
    contract = _contract_for(ctx.settings.bucket, run_id)
    ddb = _dynamo_client(contract)
    progress = ctx.manifest.progress(run_id)
    imports = ctx.manifest.imports(run_id)
    for table in contract.import_tables:
        prev = imports.get(table.name) or {}
        if prev.get("status") == ddb_import.IN_PROGRESS or import_succeeded(prev):
            continue
        failure = _start_import(ctx, contract, ddb, table, run_id, progress, prev)
        if failure:
            return _imports_result(ctx, run_id, contract, failure)
    return _imports_result(ctx, run_id, contract)


def _start_import(ctx: Context, contract: Contract, ddb, table, run_id: str, progress, prev):
    """Start one table's import; returns (error, cause) when it cannot start, else None."""
    bucket, prefix = ctx.settings.bucket, staging.import_prefix(run_id, table.name)
    sources = {s.source for s in contract.sources_of(table.name)}
    clashes = shared_keys(
        contract, lambda t: _item_keys_of(ctx, run_id, t) if t in sources else None
    ).get(table.name)
    if clashes:
        shown = "; ".join(
            f"key {show_key(c['key'])}: " + ", ".join(f"{t}({k})" for t, k in c["rows"])
            for c in clashes[:10]
        )
        more = f"; and {len(clashes) - 10} more keys" if len(clashes) > 10 else ""
        cause = (
            f"DynamoDB table {table.name}: {len(clashes)} item keys are each made by more than "
            f"one row, and an import would keep one of each silently, so nothing was imported: "
            f"{shown}{more}. Give each entity a key of its own in its templates"
        )
        ctx.manifest.record_import(run_id, table.name, status="REFUSED", failure=cause)
        return "DuplicateKeys", cause
    expected = sum(p.transformed for p in progress.values() if p.target_table == table.name)
    if expected == 0:
        # No page staged an item (the source tables are empty): import an empty object, so
        # the table is created all the same.
        ctx.put(
            f"{prefix}empty{staging.SUFFIX[staging.IMPORT]}",
            staging.gzip_lines(pa.array([], pa.binary())),
        )
    # An ended import leaves its ARN: the next attempt needs a token of its own. Without one,
    # an earlier start may have happened unrecorded: the same token finds it again.
    attempt = int(prev.get("attempt", 0)) + 1 if prev.get("import_arn") else 1
    token = ddb_import.client_token(run_id, table.name, attempt)
    try:
        state = ddb_import.start(ddb, table, bucket, prefix, token)
    except ddb.exceptions.ResourceInUseException as exc:
        return "ImportNotStarted", (
            f"DynamoDB table {table.name} exists, so the import of s3://{bucket}/{prefix} "
            f"cannot create it ({exc.response['Error'].get('Message', exc)}): delete the table "
            "(an earlier failed import may have left it), then import again"
        )
    except ClientError as exc:
        err = exc.response.get("Error", {})
        return "ImportNotStarted", (
            f"DynamoDB refused to import s3://{bucket}/{prefix} into table {table.name}: "
            f"{err.get('Code')}: {err.get('Message')}"
        )
    ctx.manifest.record_import(
        run_id,
        table.name,
        **state.to_fields(),
        bucket=bucket,
        prefix=prefix,
        client_token=token,
        attempt=attempt,
        expected=expected,
        started_at=time.time(),
    )
    return None


def check_imports(ctx: Context, event: dict) -> dict:
    """Where the run's imports stand: the manifest updated from DescribeImport.

    Returns plain fields for the state machine: `done` (every import brought all its items
    in), `failed` with `error` and `cause` (the import's own failure and its S3 prefix).
    """
    run_id = event["run_id"]
    contract = _contract_for(ctx.settings.bucket, run_id)
    ddb = _dynamo_client(contract)
    imports = ctx.manifest.imports(run_id)
    failure = None
    for table in contract.import_tables:
        rec = imports.get(table.name)
        if not rec or not rec.get("import_arn"):
            failure = failure or (
                "ImportNotStarted",
                f"DynamoDB table {table.name}: no import was started for run {run_id}",
            )
            continue
        if rec["status"] == ddb_import.IN_PROGRESS:
            fields = ddb_import.describe(ddb, rec["import_arn"]).to_fields()
            if fields["status"] in ddb_import.ENDED:
                fields["ended_at"] = time.time()
            ctx.manifest.record_import(run_id, table.name, **fields)
            rec = {**rec, **fields}
        if rec["status"] in ddb_import.ENDED and not import_succeeded(rec):
            failure = failure or ("ImportFailed", _import_failure(table.name, rec))
    started = float(event.get("started_at") or time.time())
    if failure is None and time.time() - started > ctx.settings.run_timeout_seconds:
        failure = (
            "ImportTimedOut",
            f"imports still running after {ctx.settings.run_timeout_seconds} s (the run's limit): "
            + ", ".join(f"{n} {r.get('status')}" for n, r in sorted(imports.items())),
        )
    return _imports_result(ctx, run_id, contract, failure)


def _import_failure(name: str, rec: dict) -> str:
    where = f"s3://{rec.get('bucket')}/{rec.get('prefix')}"
    how = rec.get("failure") or (
        f"{rec.get('errors', 0)} items failed" if rec.get("errors") else "items are missing"
    )
    logs = f"; its log group: {rec['log_group']}" if rec.get("log_group") else ""
    return (
        f"DynamoDB import of table {name} from {where} ended {rec['status']}: {how} "
        f"(processed {rec.get('processed', 0):,}, imported {rec.get('imported', 0):,} of "
        f"{rec.get('expected', 0):,} items, {rec.get('errors', 0):,} errors{logs}). The staged "
        f"items stay under {where}: fix the cause, delete table {name} if the import left it, "
        "and import again for this run (no page is extracted again)"
    )


def _imports_result(ctx: Context, run_id: str, contract: Contract, failure=None) -> dict:
    imports = ctx.manifest.imports(run_id)
    names = [t.name for t in contract.import_tables]
    if failure:
        ctx.manifest.set_run(
            run_id,
            status="failed",
            verdict=f"{failure[0]}: {failure[1]}",
            finished_at=_decimal(time.time()),
        )
    return {
        "run_id": run_id,
        "count": len(names),
        "done": failure is None and all(import_succeeded(imports.get(n)) for n in names),
        "failed": failure is not None,
        "error": failure[0] if failure else None,
        "cause": failure[1] if failure else None,
        "tables": {
            n: {k: imports.get(n, {}).get(k) for k in ("status", "imported", "expected", "errors")}
            for n in names
        },
    }


# ---------------------------------------------------------------- verify


def _item_keys_of(ctx: Context, run_id: str, table: str) -> pa.Table | None:
    """Every item key the transform wrote for a source table (None if it wrote none)."""
    prefix = f"runs/{run_id}/{staging.KEYS}/{table}/"
    pages = []
    for page in ctx.s3.get_paginator("list_objects_v2").paginate(
        Bucket=ctx.settings.bucket, Prefix=prefix
    ):
        pages.extend(o["Key"] for o in page.get("Contents", []))
    return pa.concat_tables([staging.read_arrow(ctx.get(k)) for k in pages]) if pages else None


SAMPLE_PAGES = 3  # first, middle and last page of a table
SAMPLE_ROWS_PER_PAGE = 4


def _page_ranges(ctx: Context, run_id: str) -> dict[str, list[dict]]:
    """Each source table's planned key ranges, in page order."""
    out: dict[str, list[dict]] = {}
    for it in ctx.manifest.items(run_id):
        if it["sk"].startswith("PAGE#"):
            out.setdefault(it["table"], []).append(json.loads(it["range"]))
    return {t: sorted(r, key=lambda x: int(x["page"])) for t, r in out.items()}


def _sample_items(ctx: Context, contract: Contract, run_id: str, spec, ranges: list[dict]):
    """Items made afresh from a few source rows (the first rows of the first, middle and last
    page), by the same code as the transform stage: what the target must hold for them."""
    if not ranges:
        return []
    picks = {int(r["page"]): r for r in (ranges[0], ranges[len(ranges) // 2], ranges[-1])}
    src = _source_table(ctx.settings.bucket, run_id, spec.source)
    raw = _connection("source", contract, raw=True)
    schema = arrow_schema(src.columns)
    parts = []
    for r in list(picks.values())[:SAMPLE_PAGES]:
        # The page's own query (same columns, same typing), cut to its first rows.
        sql, params = page_query(
            contract.source_database,
            src,
            spec.key,
            decode_key(r.get("lo")),
            decode_key(r.get("hi")),
        )
        with raw.cursor() as cur:
            cur.execute(f"{sql} LIMIT {SAMPLE_ROWS_PER_PAGE}", params)
            rows = cur.fetchall()
        if rows:
            parts.append(rows_to_batch(rows, src.columns, schema, src.name))
    if not parts:
        return []
    page = pa.Table.from_batches(parts, schema=schema)
    lines, _, _ = _dynamodb_items(ctx.settings.bucket, run_id, spec, page)
    return lines.to_pylist()


def verify_run(ctx: Context, event: dict) -> dict:
    from .verify import verify

    run_id = event["run_id"]
    contract = _contract_for(ctx.settings.bucket, run_id)
    samples = None
    if contract.import_tables:
        ranges = _page_ranges(ctx, run_id)

        def samples(spec):
            return _sample_items(ctx, contract, run_id, spec, ranges.get(spec.source, []))

    report = verify(
        contract,
        ctx.manifest.progress(run_id),
        source_conn=_connection("source", contract),
        target_conn=_connection("target", contract) if contract.target_kind == "mysql" else None,
        dynamo=_dynamo_client(contract) if contract.target_kind == "dynamodb" else None,
        item_keys=(lambda table: _item_keys_of(ctx, run_id, table))
        if contract.target_kind == "dynamodb"
        else None,
        imports=ctx.manifest.imports(run_id) if contract.import_tables else None,
        samples=samples,
    )
    if event.get("deep"):
        return _verify_deep(ctx, contract, run_id, report, event.get("tables"))
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


def _verify_deep(ctx: Context, contract: Contract, run_id: str, counts: dict, tables) -> dict:
    """`sluice verify --run ID`: every page read back from the target and compared with what
    was loaded (sluice.verify_deep), beside the count checks (`counts`). The report goes to
    runs/<run>/verify-deep.json and its verdict to the run's `deep_verdict`; the run's own
    status stays as the run left it."""
    from . import verify_deep

    def get(key: str) -> bytes | None:
        try:
            return ctx.get(key)
        except ctx.s3.exceptions.NoSuchKey:
            return None

    def source_schema(spec) -> pa.Schema:
        src = _source_table(ctx.settings.bucket, run_id, spec.source)
        return verify_deep.loaded_schema_from_source(src, spec)

    mysql = dynamo = None
    if contract.target_kind == "mysql":
        conn = _connection("target", contract, raw=True)
        mysql = verify_deep.MysqlTarget(conn, contract.target_database, get, source_schema)
    else:
        dynamo = verify_deep.DynamoTarget(_dynamo_client(contract), get)
    imports = ctx.manifest.imports(run_id)
    deep = verify_deep.verify_pages(
        contract,
        run_id,
        ctx.manifest.items(run_id),
        mysql=mysql,
        dynamo=dynamo,
        imports_done=lambda name: import_succeeded(imports.get(name)),
        loaded_counts={n: t.get("loaded", 0) for n, t in counts["dynamodb_tables"].items()},
        tables=tables,
    )
    chosen = list(deep["tables"])
    counts_ok = counts["ok"] if tables is None else all(counts["tables"][t]["ok"] for t in chosen)
    verdict = deep["verdict"]
    if not counts_ok:
        verdict += " | counts: " + counts["verdict"]
    report = {
        "run_id": run_id,
        "deep": True,
        "ok": deep["ok"] and counts_ok,
        "verdict": verdict,
        "tables": deep["tables"],
        "dynamodb_tables": deep["dynamodb_tables"],
        "counts": counts,
    }
    ctx.put(
        f"runs/{run_id}/verify-deep.json",
        json.dumps(report, indent=2, default=str).encode(),
        "application/json",
    )
    ctx.manifest.set_run(
        run_id, deep_verdict=report["verdict"], deep_verified_at=_decimal(time.time())
    )
    return report


def _decimal(x: float):
    from decimal import Decimal

    return Decimal(str(round(x, 3)))
