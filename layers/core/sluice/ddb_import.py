"""DynamoDB Import from S3: one ImportTable per new target table, started idempotently.

Why an import: it creates the table from the staged items without consuming write capacity,
at a price per GB of source data instead of per write request unit (see `estimate`).

What the transform stages for it is exactly the import's input: gzip'd DynamoDB JSON, one
`{"Item": {...}}` a line, under one prefix per target table (`staging.import_prefix`).

Idempotence: the ClientToken is derived from the run id, the table and the attempt number
(how many imports of this table this run has seen fail). A retried Lambda that started an
import but died before recording it sends the same token, and DynamoDB answers with the
same import instead of starting a second one (tokens hold for 8 hours). After an import
FAILED, the next attempt gets a new token, since the old one would only return the failure.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .contract import DynamoTable

IN_PROGRESS, COMPLETED, FAILED, CANCELLED = "IN_PROGRESS", "COMPLETED", "FAILED", "CANCELLED"
ENDED = {COMPLETED, FAILED, CANCELLED}
MAX_OBJECTS = 50_000  # S3 objects one import may read (DynamoDB's quota per import job)


def client_token(run_id: str, table: str, attempt: int) -> str:
    """The import's ClientToken: the same run, table and attempt always give the same one."""
    return hashlib.sha256(f"sluice/{run_id}/{table}/{attempt}".encode()).hexdigest()[:32]


def table_creation_parameters(table: DynamoTable) -> dict:
    """TableCreationParameters from the contract: string keys, GSIs projecting everything."""
    key_attrs = [table.partition_key, table.sort_key]
    key_attrs += [a for g in table.gsis for a in (g.partition_key, g.sort_key)]
    attrs = list(dict.fromkeys(a for a in key_attrs if a))
    params: dict = {
        "TableName": table.name,
        "AttributeDefinitions": [{"AttributeName": a, "AttributeType": "S"} for a in attrs],
        "KeySchema": _key_schema(table.partition_key, table.sort_key),
        "BillingMode": table.billing_mode,
    }
    throughput = (
        {"ReadCapacityUnits": table.capacity[0], "WriteCapacityUnits": table.capacity[1]}
        if table.capacity
        else None
    )
    if throughput:
        params["ProvisionedThroughput"] = throughput
    if table.gsis:
        params["GlobalSecondaryIndexes"] = [
            {
                "IndexName": g.name,
                "KeySchema": _key_schema(g.partition_key, g.sort_key),
                "Projection": {"ProjectionType": "ALL"},
                **({"ProvisionedThroughput": throughput} if throughput else {}),
            }
            for g in table.gsis
        ]
    return params


def _key_schema(partition_key: str, sort_key: str | None) -> list[dict]:
    schema = [{"AttributeName": partition_key, "KeyType": "HASH"}]
    if sort_key:
        schema.append({"AttributeName": sort_key, "KeyType": "RANGE"})
    return schema


@dataclass(frozen=True, slots=True)
class ImportState:
    """What DescribeImport says, in the fields the manifest keeps."""

    arn: str
    status: str
    processed: int
    imported: int
    errors: int
    failure: str | None  # "FailureCode: FailureMessage"
    log_group: str | None

    @classmethod
    def from_description(cls, d: dict) -> ImportState:
        code, message = d.get("FailureCode"), d.get("FailureMessage")
        failure = ": ".join(x for x in (code, message) if x) or None
        return cls(
            arn=d["ImportArn"],
            status=d["ImportStatus"],
            processed=int(d.get("ProcessedItemCount") or 0),
            imported=int(d.get("ImportedItemCount") or 0),
            errors=int(d.get("ErrorCount") or 0),
            failure=failure,
            log_group=d.get("CloudWatchLogGroupArn"),
        )

    def to_fields(self) -> dict:
        return {
            "import_arn": self.arn,
            "status": self.status,
            "processed": self.processed,
            "imported": self.imported,
            "errors": self.errors,
            "failure": self.failure,
            "log_group": self.log_group,
        }


def start(client, table: DynamoTable, bucket: str, prefix: str, token: str) -> ImportState:
    """Start (or, with a token already used, find again) the import of `prefix` into `table`."""
    desc = client.import_table(
        ClientToken=token,
        S3BucketSource={"S3Bucket": bucket, "S3KeyPrefix": prefix},
        InputFormat="DYNAMODB_JSON",
        InputCompressionType="GZIP",
        TableCreationParameters=table_creation_parameters(table),
    )["ImportTableDescription"]
    return ImportState.from_description(desc)


def describe(client, arn: str) -> ImportState:
    return ImportState.from_description(
        client.describe_import(ImportArn=arn)["ImportTableDescription"]
    )
