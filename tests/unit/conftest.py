"""Unit-test fixtures: typed source columns and an in-process AWS (moto), no servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sluice import aws
from sluice.types import Column


@pytest.fixture
def column() -> Callable[..., Column]:
    """column(name, data_type, column_type, ...) -> a Column as introspection would make it."""

    def _column(
        name: str,
        data_type: str,
        column_type: str | None = None,
        *,
        nullable: bool = True,
        precision: int | None = None,
        scale: int | None = None,
        charset: str | None = "utf8mb4",
        is_json: bool = False,
    ) -> Column:
        return Column.from_information_schema(
            name=name,
            data_type=data_type,
            column_type=column_type or data_type,
            nullable=nullable,
            precision=precision,
            scale=scale,
            datetime_precision=None,
            charset=charset,
            is_json=is_json,
        )

    return _column


@pytest.fixture
def aws_mock(monkeypatch) -> Iterator[None]:
    """Fake credentials and region, and moto's in-process AWS for the test's duration."""
    from moto import mock_aws

    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    aws.reset_clients()
    with mock_aws():
        yield
    aws.reset_clients()


@pytest.fixture
def manifest_table(aws_mock):
    """The manifest table in moto, built from template.yaml's own key schema."""
    import boto3
    from sluice.local.template import load_yaml

    template = Path(__file__).resolve().parents[2] / "template.yaml"
    props = load_yaml(template)["Resources"]["ManifestTable"]["Properties"]
    return boto3.resource("dynamodb", region_name="us-east-1").create_table(
        TableName="manifest",
        AttributeDefinitions=props["AttributeDefinitions"],
        KeySchema=props["KeySchema"],
        BillingMode="PAY_PER_REQUEST",
    )
