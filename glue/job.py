"""The bulk job's entry point: Glue's bootstrap around sluice.bulk_spark.run_job.

On AWS Glue: GlueContext, getResolvedOptions and job commit (the library arrives with
--extra-py-files, the JDBC driver with --extra-jars; template.yaml sets both). Anywhere
else, the same job on any Spark, with the same arguments:

    spark-submit --jars /usr/share/java/mariadb-java-client.jar glue/job.py \
        --run_id RUN --table TABLE --ranges_key runs/RUN/plan/bulk-TABLE.json \
        --bucket BUCKET --manifest_table TABLE [--region R] [--write_units_per_second N]
    python glue/job.py ...     (a local[2] session, SLUICE_SPARK_MASTER to change it)

Database credentials come from --source_secret_arn / --target_secret_arn, else from
SLUICE_SOURCE_URL / SLUICE_TARGET_URL as for the stages.
"""

from __future__ import annotations

import argparse
import json
import sys

try:  # Glue's own modules exist only on Glue
    from awsglue.context import GlueContext
    from awsglue.job import Job
    from awsglue.utils import getResolvedOptions
except ImportError:
    GlueContext = None

from sluice.bulk import BulkJob
from sluice.bulk_spark import local_session, run_job

OPTIONAL = ("write_units_per_second", "source_secret_arn", "target_secret_arn", "region")


def _glue(argv: list[str]) -> dict:
    from pyspark.context import SparkContext

    given = [a for a in OPTIONAL if f"--{a}" in argv]
    args = getResolvedOptions(argv, ["JOB_NAME", *BulkJob.ARGUMENTS, *given])
    glue = GlueContext(SparkContext.getOrCreate())
    job = Job(glue)
    job.init(args["JOB_NAME"], args)
    summary = run_job(glue.spark_session, BulkJob.from_arguments(args))
    job.commit()
    return summary


def _plain(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(description="Sluice bulk job (one table of one run)")
    for a in BulkJob.ARGUMENTS:
        parser.add_argument(f"--{a}", required=True)
    for a in OPTIONAL:
        parser.add_argument(f"--{a}", default="")
    args, _ = parser.parse_known_args(argv[1:])
    return run_job(local_session(), BulkJob.from_arguments(vars(args)))


def main(argv: list[str]) -> int:
    summary = _glue(argv) if GlueContext is not None else _plain(argv)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
