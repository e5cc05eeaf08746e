"""AWS clients, created once per process with explicit retry settings."""

from __future__ import annotations

import os
import threading
from functools import lru_cache

import boto3
from botocore.config import Config

_CONFIG = Config(retries={"max_attempts": 8, "mode": "adaptive"}, max_pool_connections=32)


def region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


_session: boto3.session.Session | None = None
_session_lock = threading.Lock()  # a session is not safe to make clients from in parallel


@lru_cache(maxsize=32)
def client(service: str, endpoint_url: str | None = None):
    """A cached client; `endpoint_url` points one service elsewhere (DynamoDB Local, say).

    One session makes them all: its loader parses botocore's endpoint and service-model files
    once per process, where a session per client parsed them again for each (a cold start's
    CPU, and the local runtime's)."""
    global _session
    with _session_lock:
        if _session is None:
            _session = boto3.session.Session()
        return _session.client(
            service, region_name=region(), endpoint_url=endpoint_url, config=_CONFIG
        )


def reset_clients() -> None:
    """Forget cached clients and their session (tests and the local runtime start new
    emulators, with credentials of their own)."""
    global _session
    client.cache_clear()
    with _session_lock:
        _session = None
