"""The bulk job's driver in plain PySpark: runs on Glue, EMR or a local Spark alike.

Two Spark stages over the planner's key ranges of one table:

1. A partitioned JDBC read (`spark.read.jdbc(predicates=...)`, one predicate a range, values
   inlined by sluice.bulk.sql_literal) counts each range's rows and sums a checksum of its
   keys, on the Spark executors, in parallel.
2. One task a range (sluice.bulk.process_range): the task reads its range with Sluice's own
   page reader (exact Arrow types, which a JDBC row read would lose: BIGINT UNSIGNED, DECIMAL
   past 38 digits, zero dates), applies the contract, writes the target, and records the page
   in the manifest. Spark spreads the tasks over the executors; each opens its own
   connections.

Only ranges whose pages are not yet done are processed, so a failed job run is re-run for its
failed ranges alone.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

from .bulk import (
    BulkJob,
    RangeTask,
    Shipped,
    checksum_query,
    conn_info,
    fail_unfinished,
    inline_predicate,
    key_kinds,
    manifest_for,
    page_statuses,
    process_range,
    s3_client,
    unfinished,
)
from .contract import from_json
from .db import ConnInfo
from .errors import SluiceError
from .keys import PageRange
from .ratelimit import rates_key
from .source import SourceTable, decode_key, introspect
from .staging import contract_key, target_columns_key

JDBC_JAR = "/usr/share/java/mariadb-java-client.jar"  # Debian's libmariadb-java
JDBC_DRIVER = "org.mariadb.jdbc.Driver"


class BulkJobFailed(SluiceError):
    """Some ranges could not be processed; their pages are marked failed in the manifest."""


def jdbc_jar() -> str:
    jar = os.environ.get("SLUICE_JDBC_JAR", JDBC_JAR)
    if not Path(jar).exists():
        raise SluiceError(
            f"the MariaDB JDBC driver is not at {jar}: run scripts/ensure-spark.sh (Debian's "
            "libmariadb-java), or point SLUICE_JDBC_JAR at mariadb-java-client.jar"
        )
    return jar


@lru_cache(maxsize=1)
def local_session(master: str | None = None):
    """One local SparkSession per process (starting one takes seconds): local[2] by default,
    workers on this interpreter, the MariaDB JDBC driver on the class path."""
    from pyspark.sql import SparkSession

    master = master or os.environ.get("SLUICE_SPARK_MASTER", "local[2]")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # local mode: no other host to reach
    spark = (
        SparkSession.builder.master(master)
        .appName("sluice-bulk")
        .config("spark.jars", jdbc_jar())
        .config("spark.pyspark.python", sys.executable)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.python.worker.reuse", "true")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def jdbc_url(info: ConnInfo) -> str:
    # jdbc:mysql (which Connector/J 2.x accepts) so that Spark quotes names with backticks.
    return f"jdbc:mysql://{info.host}:{info.port}/"


def jdbc_tls(info: ConnInfo) -> dict[str, str]:
    """MariaDB Connector/J 2.x's properties for the connection's TLS mode (sluice.db.SSL_MODES).

    serverSslCert takes a CA bundle's path or its PEM text, as ssl_ca does; without one, Java's
    own trust store decides. Connector/J 2.x has no preferred mode: there, the JDBC read goes
    in the clear (the rows themselves are read by pymysql, which encrypts when it can)."""
    if info.ssl_mode == "disabled":
        return {"useSsl": "false"}
    if info.ssl_mode == "preferred":
        return {}
    if info.ssl_mode == "required":
        return {"useSsl": "true", "trustServerCertificate": "true"}
    props = {"useSsl": "true"}
    if info.ssl_ca:
        props["serverSslCert"] = info.ssl_ca
    if info.ssl_mode == "verify-ca":
        props["disableSslHostnameVerification"] = "true"
    return props


def range_counts(
    spark,
    info: ConnInfo,
    database: str,
    src: SourceTable,
    key: tuple[str, ...],
    ranges: list[PageRange],
) -> list[tuple[int, int]]:
    """(rows, key checksum) of each range, from one partitioned JDBC read (a partition a range)."""
    from pyspark.sql import functions as F

    kinds = key_kinds(src, key)
    predicates = [inline_predicate(key, kinds, decode_key(r.lo), decode_key(r.hi)) for r in ranges]
    df = spark.read.jdbc(
        jdbc_url(info),
        checksum_query(database, src.name, key, kinds),
        predicates=predicates,
        properties={
            "user": info.user,
            "password": info.password,
            "driver": JDBC_DRIVER,
            # The planner read TIMESTAMP keys in UTC: the predicates must mean the same.
            "sessionInitStatement": "SET time_zone = '+00:00'",
            "fetchsize": "10000",
            **jdbc_tls(info),
        },
    )
    sums = (
        df.groupBy(F.spark_partition_id().alias("part"))
        .agg(F.count(F.lit(1)).alias("n"), F.sum("sluice_crc").alias("crc"))
        .collect()
    )
    found = {r["part"]: (int(r["n"]), int(r["crc"] or 0)) for r in sums}
    return [found.get(i, (0, 0)) for i in range(len(ranges))]


def _get_json(job: BulkJob, key: str):
    return json.loads(s3_client(job).get_object(Bucket=job.bucket, Key=key)["Body"].read())


def job_write_rate(job: BulkJob, contract, target_table: str) -> float:
    """Units a second this job may write (0: no cap): the stack's BulkWriteUnitsPerSecond, and
    the job's share of the contract's write_rate for its table (the plan split it), the
    smaller of the two when both are set."""
    caps = [job.write_units_per_second] if job.write_units_per_second > 0 else []
    table = contract.dynamo_tables.get(target_table) if contract.target_kind == "dynamodb" else None
    if table is not None and table.write_rate is not None:
        rates = _get_json(job, rates_key(job.run_id))
        caps.append(float(rates[target_table]["bulk"][job.table]))
    return min(caps) if caps else 0.0


def run_job(spark, job: BulkJob) -> dict:
    """Process the unfinished ranges of one table; returns a summary, raises BulkJobFailed
    when a range failed. Whatever stops the job early marks its unfinished pages failed."""
    manifest = manifest_for(job)
    try:
        return _run(spark, job, manifest)
    except BulkJobFailed:
        raise
    except Exception as exc:  # the job cannot go on: its pages say why, then Glue does
        fail_unfinished(manifest, job.run_id, job.table, f"{type(exc).__name__}: {exc}")
        raise


def _run(spark, job: BulkJob, manifest) -> dict:
    started = time.time()
    contract_text = json.dumps(_get_json(job, contract_key(job.run_id)))
    contract = from_json(contract_text)
    spec = contract.table(job.table)
    doc = _get_json(job, job.ranges_key)
    if doc.get("run_id") != job.run_id or doc.get("table") != job.table:
        raise SluiceError(
            f"{job.ranges_key} holds ranges of {doc.get('table')} in run {doc.get('run_id')}, "
            f"not of {job.table} in run {job.run_id}"
        )
    ranges = [PageRange.from_dict(r) for r in doc["ranges"]]
    imports = (
        contract.target_kind == "dynamodb" and contract.dynamo_tables[spec.target_table].imports
    )
    todo = unfinished(
        ranges,
        page_statuses(manifest, job.run_id, job.table),
        "transformed" if imports else "loaded",
    )
    summary = {"run_id": job.run_id, "table": job.table, "ranges": len(ranges)}
    if not todo:
        return {**summary, "processed": 0, "seconds": round(time.time() - started, 3)}

    from . import db

    # Without secrets (a local run) the driver resolves the connections for its workers.
    if not job.source_secret_arn and job.source is None:
        job = replace(job, source=conn_info(job, "source", contract))
    if contract.target_kind == "mysql" and not job.target_secret_arn and job.target is None:
        job = replace(job, target=conn_info(job, "target", contract))
    source = conn_info(job, "source", contract)
    conn = db.connect(source)
    try:
        found = introspect(conn, contract.source_database, only=[job.table])
    finally:
        conn.close()
    if job.table not in found:
        raise SluiceError(f"source table {contract.source_database}.{job.table} no longer exists")
    src = found[job.table]
    target_columns = None
    if contract.target_kind == "mysql":
        cols = _get_json(job, target_columns_key(job.run_id)).get(spec.target_table)
        target_columns = tuple(cols) if cols is not None else None

    counts = range_counts(spark, source, contract.source_database, src, spec.key, todo)
    tasks = [
        RangeTask(r.page, r.lo, r.hi, rows, crc)
        for r, (rows, crc) in zip(todo, counts, strict=True)
    ]
    sc = spark.sparkContext
    at_once = max(1, min(len(tasks), sc.defaultParallelism))
    rate = job_write_rate(job, contract, spec.target_table)
    shipped = Shipped(
        # Tasks resolve secrets themselves; connections given to a local run travel as they are.
        job=job,
        contract_json=contract_text,
        source=src,
        target_columns=target_columns,
        write_units_share=rate / at_once,
    )
    results = sc.parallelize(tasks, len(tasks)).map(lambda t: process_range(shipped, t)).collect()
    failed = [r for r in results if not r.ok]
    rows = sum(r.counts.get("extracted", 0) for r in results if r.ok)
    summary.update(
        processed=len(tasks),
        failed=len(failed),
        rows=rows,
        seconds=round(time.time() - started, 3),
    )
    if failed:
        first = failed[0]
        raise BulkJobFailed(
            f"{job.table}: {len(failed)} of {len(tasks)} ranges failed (their pages are marked "
            f"failed in the manifest; re-run the job for run {job.run_id} to retry only them). "
            f"First, page {first.page}: {first.error}"
        )
    return summary
