"""BatchWriteItem straight over HTTP: SigV4 signed by hand, one keep-alive connection a thread.

The SDK spends far more CPU on a BatchWriteItem than the sending costs (its serialiser,
validation, event hooks and response parser run for every request, and request signing
rebuilds the signing key each time). The items are already wire JSON, so this writer joins
them into the body, signs it with a signing key derived once a day, and posts it: about five
times less CPU per item than the SDK path (bench/RESULTS.md). It needs an endpoint reachable
over HTTP: AWS, DynamoDB Local, or an emulator server; the local runtime's in-process emulator
is reached through the SDK writer instead.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import http.client
import json
import threading
from collections.abc import Sequence
from urllib.parse import urlsplit

import botocore.session
from botocore.exceptions import ClientError

from ..errors import SluiceError
from .dynamodb import RETRYABLE, Throttled

TARGET = "DynamoDB_20120810.BatchWriteItem"


def request_body(table: str, lines: Sequence[bytes]) -> bytes:
    name = json.dumps(table).encode()
    items = b",".join(b'{"PutRequest":' + ln.rstrip(b"\n") + b"}" for ln in lines)
    return b'{"RequestItems":{' + name + b":[" + items + b"]}}"


class HttpBatchWriter:
    """Sends BatchWriteItem requests of prebuilt item lines; safe to share between threads."""

    def __init__(self, region: str, endpoint_url: str | None = None, credentials=None):
        self.region = region
        url = urlsplit(endpoint_url or f"https://dynamodb.{region}.amazonaws.com")
        self.https = url.scheme == "https"
        self.host = url.netloc
        self.credentials = credentials or botocore.session.get_session().get_credentials()
        if self.credentials is None:
            raise SluiceError("no AWS credentials for DynamoDB (environment, profile or role)")
        self._local = threading.local()
        self._keys: dict[tuple[str, str], bytes] = {}

    # ---------------------------------------------------------------- signing
    def _signing_key(self, secret: str, day: str) -> bytes:
        key = self._keys.get((secret, day))
        if key is None:
            key = hmac.new(("AWS4" + secret).encode(), day.encode(), hashlib.sha256).digest()
            for part in (self.region, "dynamodb", "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            self._keys = {(secret, day): key}  # one day's key is all that is ever needed
        return key

    def _headers(self, body: bytes) -> dict[str, str]:
        creds = self.credentials.get_frozen_credentials()
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
        day = stamp[:8]
        signed = {
            "content-type": "application/x-amz-json-1.0",
            "host": self.host,
            "x-amz-date": stamp,
            "x-amz-target": TARGET,
        }
        if creds.token:
            signed["x-amz-security-token"] = creds.token
        names = ";".join(sorted(signed))
        canonical = "\n".join(
            [
                "POST",
                "/",
                "",
                *(f"{k}:{signed[k]}" for k in sorted(signed)),
                "",
                names,
                hashlib.sha256(body).hexdigest(),
            ]
        )
        scope = f"{day}/{self.region}/dynamodb/aws4_request"
        to_sign = (
            f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        )
        signature = hmac.new(
            self._signing_key(creds.secret_key, day), to_sign.encode(), hashlib.sha256
        ).hexdigest()
        headers = {k: v for k, v in signed.items() if k != "host"}
        headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={creds.access_key}/{scope}, "
            f"SignedHeaders={names}, Signature={signature}"
        )
        return headers

    # ---------------------------------------------------------------- sending
    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            conn = self._local.conn = cls(self.host, timeout=30)
        return conn

    def _post(self, body: bytes) -> tuple[int, dict]:
        for attempt in range(2):  # a keep-alive connection the server closed: reconnect once
            conn = self._connection()
            try:
                conn.request("POST", "/", body=body, headers=self._headers(body))
                resp = conn.getresponse()
                raw = resp.read()
            except (http.client.HTTPException, OSError):
                conn.close()
                self._local.conn = None
                if attempt:
                    raise
                continue
            try:
                doc = json.loads(raw or b"{}")
            except ValueError:
                doc = None
            if not isinstance(doc, dict):  # a proxy's or load balancer's page, not DynamoDB's
                doc = {"message": raw[:200].decode("utf-8", "replace")}
            return resp.status, doc
        raise AssertionError("unreachable")

    def send_once(self, table: str, lines: list[bytes]) -> list[bytes]:
        """One BatchWriteItem of up to 25 lines; returns the lines left unprocessed. Throttling,
        5xx and connection errors raise Throttled (send_batch in targets/dynamodb retries
        them); an invalid item raises ClientError (ValidationException), as the SDK would, so
        the caller can isolate it."""
        try:
            status, doc = self._post(request_body(table, lines))
        except (http.client.HTTPException, OSError) as exc:
            raise Throttled("ConnectionError", str(exc)) from exc
        if status == 200:
            # The response is wire JSON too: unprocessed items go back out as they came.
            return [
                json.dumps({"Item": r["PutRequest"]["Item"]}, ensure_ascii=False).encode()
                for r in doc.get("UnprocessedItems", {}).get(table, [])
            ]
        code = str(doc.get("__type", "")).rsplit("#", 1)[-1]
        message = doc.get("message") or doc.get("Message") or ""
        if code in RETRYABLE or status >= 500:
            raise Throttled(code or f"HTTP {status}", message)
        raise ClientError({"Error": {"Code": code, "Message": message}}, "BatchWriteItem")
