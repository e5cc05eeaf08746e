"""AWS clients, created once per process with explicit retry settings."""

from __future__ import annotations

import os
from functools import lru_cache

import boto3
from botocore.config import Config

_CONFIG = Config(retries={"max_attempts": 8, "mode": "adaptive"}, max_pool_connections=32)


def region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


@lru_cache(maxsize=32)
def client(service: str, endpoint_url: str | None = None):
    """A cached client; `endpoint_url` points one service elsewhere (DynamoDB Local, say)."""
    return boto3.session.Session().client(
        service, region_name=region(), endpoint_url=endpoint_url, config=_CONFIG
    )


def reset_clients() -> None:
    """Forget cached clients (tests and the local runtime start new emulators)."""
    client.cache_clear()
