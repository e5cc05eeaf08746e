"""The bulk path, library side: a large table's page ranges for the Glue (Spark) job, the SQL
each range needs, and the work one Spark task does for one range.

A task reads its range with the same reader as the extract stage (sluice.source.read_page,
so the same exact Arrow types), applies the contract as the transform stage does, and writes
with the same writers as the load stage (LOAD DATA upserts; BatchWriteItem under a share of
the write capacity). It records its page in the manifest with the same fields as the Lambda
path, so progress, status and verification treat both paths alike. Nothing here imports
Spark: sluice.bulk_spark holds the driver.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import pyarrow as pa

from . import db, retry, transform, user_transform
from .contract import Contract, TableSpec, from_json
from .errors import PageError, SluiceError
from .keys import PageRange
from .manifest import Manifest
from .ratelimit import Meter, TokenBucket
from .source import SourceTable, decode_key, range_predicate, read_page
from .sql import q, qualified
from .staging import KEYS, LOAD_REJECTED, NO_REJECTS, REJECTED, PageRef, gzip_lines
from .staging import write_arrow as write_arrow_ipc
from .targets import dynamodb as ddb_target
from .targets import mysql as mysql_target
from .types import arrow_schema

STAGE = "bulk"  # the stage name failed pages carry in the manifest
TEXT_KINDS = ("text", "enum", "set", "json")
_INTEGER_KINDS = ("int", "bit", "year")
_NUMBER_KINDS = ("decimal", "float")
_INTEGER = re.compile(r"-?[0-9]+")
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")


def ranges_key(run_id: str, table: str) -> str:
    """Where the plan writes a bulk table's page ranges for its Glue job run."""
    return f"runs/{run_id}/plan/bulk-{table}.json"


def ranges_document(run_id: str, table: str, ranges: Sequence[PageRange]) -> dict:
    return {"run_id": run_id, "table": table, "ranges": [r.to_dict() for r in ranges]}


# ---------------------------------------------------------------- SQL with inlined values


def sql_literal(value, kind: str) -> str:
    """One key value as SQL text, for the one place that cannot bind parameters: the
    predicates of a Spark JDBC read.

    Only values formatted here are inlined: integers and numbers as digits after checking
    them against a strict pattern (the planner reads them as the server's text), binary as
    X'hex', and everything else as a utf8mb4 string in hex (`_utf8mb4 X'...'`), which needs
    no escaping and means the same whatever the session's sql_mode (NO_BACKSLASH_ESCAPES,
    ANSI_QUOTES). Dates, times and ENUM/SET values compare as the strings the planner read.
    """
    if isinstance(value, bool):
        raise SluiceError(f"key value {value!r}: a boolean is not a MySQL key value")
    if isinstance(value, bytes | bytearray):
        return f"X'{bytes(value).hex()}'"
    if kind in _INTEGER_KINDS or kind in _NUMBER_KINDS:
        text = str(value) if isinstance(value, int) else value
        pattern = _INTEGER if kind in _INTEGER_KINDS else _NUMBER
        if not isinstance(text, str) or not pattern.fullmatch(text):
            raise SluiceError(f"key value {value!r} is not a {kind} literal; refusing to inline it")
        return text
    if isinstance(value, int):
        return str(value)
    if not isinstance(value, str):
        raise SluiceError(f"key value {value!r} ({type(value).__name__}) cannot be inlined")
    return f"_utf8mb4 X'{value.encode('utf-8').hex()}'"


def inline_predicate(key: Sequence[str], kinds: Sequence[str], lo, hi) -> str:
    """WHERE text for lo < key <= hi with the values inlined (see sql_literal).

    The shape is source.range_predicate's own (so both paths cut rows the same way): it is
    built with every value already a literal, then each placeholder is replaced in order.
    """

    def lits(values):
        if values is None:
            return None
        return [sql_literal(v, k) for v, k in zip(values, kinds, strict=True)]

    sql, params = range_predicate(key, lits(lo), lits(hi))
    pieces = sql.split("%s")
    if len(pieces) != len(params) + 1:
        raise SluiceError(f"predicate {sql!r}: placeholders do not match its values")
    out = [pieces[0]]
    for lit, rest in zip(params, pieces[1:], strict=True):
        out += [lit, rest]
    return "".join(out)


def checksum_expr(columns: Sequence[str], kinds: Sequence[str]) -> str:
    """Per row, a CRC32 of the columns' values as the server prints them (text as utf8mb4, so
    a latin1 source and a utf8mb4 target agree); summed over a range it is an order-free
    checksum of the range's keys, computed alike on the source and on a MySQL target."""
    parts = []
    for c, kind in zip(columns, kinds, strict=True):
        if kind in TEXT_KINDS:
            parts.append(f"HEX(CONVERT({q(c)} USING utf8mb4))")
        else:
            parts.append(f"HEX(CAST({q(c)} AS BINARY))")
    return f"CRC32(CONCAT_WS(',', {', '.join(parts)}))"


def key_kinds(src: SourceTable, key: Sequence[str]) -> list[str]:
    return [src.column(k).kind for k in key]


def checksum_query(database: str, table: str, key: Sequence[str], kinds: Sequence[str]) -> str:
    """The derived table a Spark JDBC read counts and checksums per range: the key columns
    (which the range predicates name) and each row's checksum."""
    cols = ", ".join(q(k) for k in key)
    return (
        f"(SELECT {cols}, {checksum_expr(key, kinds)} AS sluice_crc "  # noqa: S608 - identifiers checked and quoted
        f"FROM {qualified(database, table)}) AS sluice_keys"
    )


def range_checksum(conn, database: str, table: str, key, kinds, lo, hi) -> tuple[int, int]:
    """(rows, checksum) of lo < key <= hi, values bound: the MySQL target's side."""
    where, params = range_predicate(key, lo, hi)
    sql = (
        f"SELECT COUNT(*), COALESCE(SUM({checksum_expr(key, kinds)}), 0) "  # noqa: S608
        f"FROM {qualified(database, table)} WHERE {where}"
    )
    with conn.cursor() as cur:
        cur.execute(sql, params)
        rows, total = cur.fetchone()
    return int(rows), int(total)


# ---------------------------------------------------------------- the job's arguments


@dataclass(frozen=True, slots=True)
class BulkJob:
    """One Glue job run: which run and table, where the ranges are, and how to reach things.

    On Glue the databases come from Secrets Manager (the secrets' ARNs); a local run passes
    resolved connections instead, and the endpoint of the moto server its Spark workers (other
    processes) reach the in-process emulator through.
    """

    run_id: str
    table: str
    ranges_key: str
    bucket: str
    manifest_table: str
    region: str = "us-east-1"
    write_units_per_second: float = 0.0  # the whole job's share of the DynamoDB table; 0: no cap
    source_secret_arn: str = ""
    target_secret_arn: str = ""
    source: db.ConnInfo | None = None
    target: db.ConnInfo | None = None
    aws_endpoint_url: str | None = None
    python_paths: tuple[str, ...] = ()
    max_attempts: int = 3

    ARGUMENTS = ("run_id", "table", "ranges_key", "bucket", "manifest_table")
    OPTIONAL = ("region", "write_units_per_second", "source_secret_arn", "target_secret_arn")

    @classmethod
    def from_arguments(cls, args: dict[str, str], **overrides) -> BulkJob:
        """From Glue job arguments (with or without their leading --)."""
        plain = {k.lstrip("-"): v for k, v in args.items()}
        missing = [a for a in cls.ARGUMENTS if not plain.get(a)]
        if missing:
            raise SluiceError(
                "bulk job: missing argument(s) " + ", ".join(f"--{m}" for m in missing)
            )
        values = {a: plain[a] for a in cls.ARGUMENTS}
        for a in cls.OPTIONAL:
            if plain.get(a):
                values[a] = plain[a]
        values["write_units_per_second"] = float(values.get("write_units_per_second") or 0)
        values.setdefault("region", os.environ.get("AWS_REGION", "us-east-1"))
        return cls(**{**values, **overrides})


@dataclass(frozen=True, slots=True)
class RangeTask:
    """One range for one Spark task, with what the JDBC read counted there."""

    page: int
    lo: list | None
    hi: list | None
    source_rows: int
    source_checksum: int


@dataclass(frozen=True, slots=True)
class Shipped:
    """What the driver sends every task: the job, the contract, the source table, the MySQL
    target's columns, and this task's share of the write capacity (units a second)."""

    job: BulkJob
    contract_json: str
    source: SourceTable
    target_columns: tuple[str, ...] | None
    write_units_share: float


@dataclass(frozen=True, slots=True)
class RangeResult:
    page: int
    ok: bool
    counts: dict = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0


# ---------------------------------------------------------------- per worker process


@lru_cache(maxsize=8)
def _contract(text: str) -> Contract:
    return from_json(text)


@lru_cache(maxsize=8)
def aws_session(region: str, endpoint_url: str | None):
    """AWS clients of one worker process (boto3 sessions are not shared across threads)."""
    import boto3

    from .aws import _CONFIG

    kwargs: dict = {"region_name": region, "config": _CONFIG}
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url
        # A local run's emulator accepts any key; a Spark worker may have none in its env.
        if not os.environ.get("AWS_ACCESS_KEY_ID"):
            kwargs.update(aws_access_key_id="local", aws_secret_access_key="local")
    session = boto3.session.Session()
    s3 = session.client("s3", **kwargs)
    table = session.resource("dynamodb", **kwargs).Table
    return s3, table


def manifest_for(job: BulkJob) -> Manifest:
    _, table = aws_session(job.region, job.aws_endpoint_url)
    return Manifest(table(job.manifest_table))


def s3_client(job: BulkJob):
    return aws_session(job.region, job.aws_endpoint_url)[0]


def conn_info(job: BulkJob, role: str, contract: Contract) -> db.ConnInfo:
    """A database's connection: given (local runs), else from its secret, as the stages do."""
    given = job.source if role == "source" else job.target
    if given is not None:
        return given
    arn = job.source_secret_arn if role == "source" else job.target_secret_arn
    if arn:
        os.environ.setdefault("AWS_REGION", job.region)
        os.environ[f"SLUICE_{role.upper()}_SECRET_ARN"] = arn
    url = contract.source_url if role == "source" else contract.target_url
    return db.resolve(role, url)


def _connection(
    info: db.ConnInfo,
    *,
    raw: bool = False,
    local_infile: bool = False,
    statement_timeout: float | None = None,
):
    """One connection per database and mode per worker process (the pool the stages use)."""
    return db.pooled(info, raw=raw, local_infile=local_infile, statement_timeout=statement_timeout)


@lru_cache(maxsize=4)
def _dynamo_client(endpoint_url: str | None, region: str):
    if endpoint_url and not os.environ.get("AWS_ACCESS_KEY_ID"):
        os.environ.update(AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local")
    return ddb_target.make_client(endpoint_url, region, retries=False)


@lru_cache(maxsize=64)
def _item_plan(contract_json: str, table: str, kinds: tuple[tuple[str, str], ...]):
    contract = _contract(contract_json)
    return transform.item_plan(contract, contract.table(table), [c for c, _ in kinds], dict(kinds))


# ---------------------------------------------------------------- one range


def _user_transformed(spec: TableSpec, page: pa.Table, target_columns) -> tuple:
    """The contract's own module:function, as the transform stage applies it."""
    if not spec.transform:
        return page, NO_REJECTS
    templates = [spec.partition_key, spec.sort_key, *spec.attributes.values()]
    named = sorted({c for t in templates if t for c in t.columns})
    columns = list(target_columns) if target_columns is not None else None
    return user_transform.apply(spec.transform, page, spec.key, columns, named)


def _process(shipped: Shipped, task: RangeTask, bucket: TokenBucket) -> dict:
    job = shipped.job
    contract = _contract(shipped.contract_json)
    spec = contract.table(job.table)
    src = shipped.source
    ref = PageRef(job.run_id, job.table, task.page)
    lo, hi = decode_key(task.lo), decode_key(task.hi)
    source = conn_info(job, "source", contract)
    schema = arrow_schema(src.columns)
    timeout = db.source_statement_timeout()
    # A transient MySQL failure reads the whole range again, on a fresh connection.
    page = retry.call(
        f"{ref.label} of run {job.run_id} (bulk read)",
        lambda: pa.Table.from_batches(
            list(
                read_page(
                    _connection(source, raw=True, statement_timeout=timeout),
                    contract.source_database,
                    src,
                    spec.key,
                    lo,
                    hi,
                )
            ),
            schema=schema,
        ),
    )
    extracted = page.num_rows
    if extracted != task.source_rows:
        raise PageError(
            f"{ref.label}: the JDBC read counted {task.source_rows} rows in this range, the page "
            f"reader {extracted}: the source changed during the job; run it again when it is still"
        )
    counts = {
        "extracted": extracted,
        "source_rows": task.source_rows,
        "source_checksum": task.source_checksum,
    }
    s3 = s3_client(job)

    def put(key: str, body: bytes) -> None:
        s3.put_object(Bucket=job.bucket, Key=key, Body=body)

    page, rejected = _user_transformed(spec, page, shipped.target_columns)
    status = "loaded"
    if contract.target_kind == "mysql":
        rows = transform.to_mysql_rows(page, spec)
        counts["transformed"] = rows.num_rows
        info = conn_info(job, "target", contract)
        key_cols = [spec.rename.get(k, k) for k in spec.key]
        # A transient MySQL failure (its transaction rolled back) loads the whole range again.
        loaded, load_rejected = retry.call(
            f"{ref.label} of run {job.run_id} (bulk load)",
            lambda: mysql_target.load_page_rows(
                _connection(info, local_infile=True),
                contract.target_database,
                spec.target_table,
                rows,
                key_cols,
                spec.on_conflict,
            ),
        )
        if not len(rejected) and not len(load_rejected):
            kinds = key_kinds(src, spec.key)
            n, checksum = range_checksum(
                _connection(info), contract.target_database, spec.target_table, key_cols, kinds,
                lo, hi,
            )  # fmt: skip
            counts.update(target_rows=n, target_checksum=checksum)
            if (n, checksum) != (task.source_rows, task.source_checksum):
                raise PageError(
                    f"{ref.label}: target {spec.target_table} holds {n} rows with key checksum "
                    f"{checksum} in this range, the source {task.source_rows} with "
                    f"{task.source_checksum}: the target has rows the source does not"
                )
    else:
        kinds = tuple(transform.page_kinds(page).items())
        plan = _item_plan(shipped.contract_json, job.table, kinds)
        lines, refused, keys = transform.to_dynamodb_items(page, plan, with_keys=True)
        rejected = rejected + refused
        counts["transformed"] = len(lines)
        body_keys, _ = write_arrow_ipc(keys.schema, keys.to_batches())
        put(ref.key(KEYS), body_keys)
        table = contract.dynamo_tables[spec.target_table]
        if table.imports:
            # Items wait under the table's import prefix; the import loads them.
            put(ref.import_key(spec.target_table), gzip_lines(lines))
            status, loaded, load_rejected = "transformed", 0, NO_REJECTS
        else:
            client = _dynamo_client(contract.endpoint_url or job.aws_endpoint_url, job.region)
            key_names = [k for k in (table.partition_key, table.sort_key) if k]
            meter = Meter(bucket)
            loaded, load_rejected = ddb_target.write_page_items(
                client, spec.target_table, lines.to_pylist(), key_names, meter=meter, page=ref.label
            )
            counts.update(meter.counts())
    if len(rejected):
        put(ref.key(REJECTED), rejected.to_jsonl())
    if len(load_rejected):
        put(ref.key(LOAD_REJECTED), load_rejected.to_jsonl())
    counts["rejected"] = len(rejected)
    if status == "loaded":
        counts.update(loaded=loaded, load_rejected=len(load_rejected))
    return {"status": status, "counts": counts}


def process_range(shipped: Shipped, task: RangeTask) -> RangeResult:
    """One Spark task: read, transform and write one range, and record its page.

    A failed attempt is noted on the page and tried again (as SQS redelivers a Lambda page),
    up to job.max_attempts; then the page is marked failed with the error and the task ends
    normally, so the other ranges go on. Re-running the job retries only unfinished pages.
    """
    job = shipped.job
    for p in job.python_paths:  # the driver's import path: the contract's own transforms
        if p not in sys.path:
            sys.path.append(p)
    manifest = manifest_for(job)
    ref = PageRef(job.run_id, job.table, task.page)
    # Empty at first: a range's task starting must not add a burst to its share.
    bucket = TokenBucket(shipped.write_units_share, full=False)
    started = time.time()
    for attempt in range(1, job.max_attempts + 1):
        try:
            done = _process(shipped, task, bucket)
        except Exception as exc:  # recorded on the page; the last attempt fails it
            error = f"{type(exc).__name__}: {exc}"
            final = attempt == job.max_attempts or isinstance(exc, PageError)
            manifest.record_failure(ref, STAGE, error, final=final)
            if final:
                return RangeResult(task.page, False, error=error, seconds=time.time() - started)
            time.sleep(min(10.0, 0.5 * 2**attempt))
            continue
        manifest.advance(ref, done["status"], done["counts"], started_at=started)
        return RangeResult(task.page, True, done["counts"], seconds=time.time() - started)
    raise AssertionError("unreachable")


# ---------------------------------------------------------------- the job's bookkeeping


def page_statuses(manifest: Manifest, run_id: str, table: str) -> dict[int, str]:
    prefix = f"PAGE#{table}#"
    return {
        int(it["page"]): it["status"]
        for it in manifest.items(run_id)
        if it["sk"].startswith(prefix)
    }


def unfinished(ranges: Sequence[PageRange], statuses: dict[int, str], done: str) -> list:
    """The ranges a (re-)run still has to process: every page not at its last stage."""
    finished = {"loaded", done}
    return [r for r in ranges if statuses.get(r.page) not in finished]


def fail_unfinished(manifest: Manifest, run_id: str, table: str, error: str) -> int:
    """Mark every page of `table` that is neither loaded nor failed as failed with `error`
    (its bulk job ended without them), so the run ends instead of waiting; returns how many."""
    n = 0
    for page, status in page_statuses(manifest, run_id, table).items():
        if status not in ("loaded", "failed"):
            manifest.record_failure(PageRef(run_id, table, page), STAGE, error, final=True)
            n += 1
    return n


def job_failure_reason(failure: dict) -> str:
    """A failed Glue task's error in one line: the job run's ErrorMessage when its cause
    (GetJobRun's JSON) has one."""
    cause = failure.get("cause") or ""
    try:
        detail = json.loads(cause)
    except (TypeError, ValueError):
        detail = None
    if isinstance(detail, dict) and (detail.get("ErrorMessage") or detail.get("JobRunState")):
        state = detail.get("JobRunState", "FAILED")
        return f"bulk job {state}: {detail.get('ErrorMessage') or 'no error message'}"
    return f"bulk job failed: {failure.get('error') or 'error'}: {cause}"[:2000]
