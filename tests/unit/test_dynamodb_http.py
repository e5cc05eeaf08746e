"""HttpBatchWriter: SigV4 signed by hand (checked against botocore's signer), items written
exactly over HTTP, throttling retried, a refused item isolated."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from sluice.targets.dynamodb import Backoff, BatchNotWritten, write_page_items
from sluice.targets.dynamodb_http import HttpBatchWriter, request_body

CREDS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token")


def test_signature_equals_botocores_for_the_same_request():
    writer = HttpBatchWriter("eu-west-1", "https://dynamodb.eu-west-1.amazonaws.com", CREDS)
    body = request_body("shop", [b'{"Item":{"PK":{"S":"A"}}}'])
    ours = writer._headers(body)

    request = AWSRequest(
        method="POST",
        url="https://dynamodb.eu-west-1.amazonaws.com/",
        data=body,
        headers={k: v for k, v in ours.items() if k != "authorization"},
    )
    request.context["timestamp"] = ours["x-amz-date"]
    auth = SigV4Auth(CREDS, "dynamodb", "eu-west-1")
    canonical = auth.canonical_request(request)
    expected = auth.signature(auth.string_to_sign(request, canonical), request)
    assert ours["authorization"].endswith(f"Signature={expected}")
    assert "x-amz-security-token" in ours["authorization"]


@pytest.fixture
def moto_server():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def test_items_arrive_exactly_over_http(moto_server):
    client = boto3.client(
        "dynamodb",
        endpoint_url=moto_server,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    client.create_table(
        TableName="items",
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    lines = [
        json.dumps(
            {
                "Item": {
                    "PK": {"S": f"K#{i}"},
                    "n": {"N": "12345678901234567890.5"},
                    "b": {"B": "AAEC/w=="},
                    "s": {"S": '😀 \u0001 "q"'},
                }
            },
            ensure_ascii=False,
        ).encode()
        for i in range(60)
    ]
    writer = HttpBatchWriter("us-east-1", moto_server, Credentials("x", "x"))
    written, rejected = write_page_items(writer, "items", lines, ["PK"], threads=3)
    assert (written, len(rejected)) == (60, 0)
    item = client.get_item(TableName="items", Key={"PK": {"S": "K#7"}})["Item"]
    assert item == {
        "PK": {"S": "K#7"},
        "n": {"N": "12345678901234567890.5"},
        "b": {"B": b"\x00\x01\x02\xff"},
        "s": {"S": '😀 \u0001 "q"'},
    }
    assert client.scan(TableName="items", Select="COUNT")["Count"] == 60


class _Scripted(BaseHTTPRequestHandler):
    """Answers from a script: each request takes the next (status, body) pair."""

    script: list = []
    bodies: list = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).bodies.append(json.loads(body))
        status, doc = type(self).script.pop(0)
        out = doc.encode() if isinstance(doc, str) else json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


@pytest.fixture
def scripted():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Scripted.script, _Scripted.bodies = [], []
    yield _Scripted, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_throttling_and_unprocessed_items_are_retried_until_written(scripted):
    handler, url = scripted
    sleeps: list[float] = []
    lines = [json.dumps({"Item": {"PK": {"S": f"K#{i}"}}}).encode() for i in range(3)]
    left = {"UnprocessedItems": {"t1": [{"PutRequest": {"Item": {"PK": {"S": "K#2"}}}}]}}
    handler.script = [
        (
            400,
            {
                "__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException",
                "message": "slow down",
            },
        ),
        (200, left),
        (200, {"UnprocessedItems": {}}),
    ]
    writer = HttpBatchWriter("us-east-1", url, Credentials("x", "x"))
    backoff = Backoff(sleep=sleeps.append, jitter=lambda: 1.0)
    assert write_page_items(writer, "t1", lines, ["PK"], threads=1, backoff=backoff)[0] == 3
    assert sleeps == [0.1, 0.2]
    sent = [
        [r["PutRequest"]["Item"]["PK"]["S"] for r in b["RequestItems"]["t1"]]
        for b in handler.bodies
    ]
    assert sent == [["K#0", "K#1", "K#2"], ["K#0", "K#1", "K#2"], ["K#2"]]


def test_a_refused_item_is_isolated_and_the_rest_written(scripted):
    handler, url = scripted
    invalid = (
        400,
        {"__type": "com.amazon.coral.validate#ValidationException", "message": "bad number"},
    )
    ok = (200, {"UnprocessedItems": {}})
    # 4 items, the third bad: [0..3] refused, [0,1] ok, [2,3] refused, [2] refused, [3] ok.
    handler.script = [invalid, ok, invalid, invalid, ok]
    lines = [json.dumps({"Item": {"PK": {"S": f"K#{i}"}}}).encode() for i in range(4)]
    writer = HttpBatchWriter("us-east-1", url, Credentials("x", "x"))
    written, rejected = write_page_items(writer, "t1", lines, ["PK"], threads=1)
    assert written == 3
    assert rejected.keys == [{"PK": "K#2"}]
    assert rejected.reasons == ["DynamoDB refused the item: bad number"]


def test_throttling_and_server_errors_are_retried_with_growing_waits(scripted):
    handler, url = scripted
    throttled = (
        400,
        {"__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"},
    )
    handler.script = [
        throttled,
        (500, {"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError"}),
        (503, "<html>Service Unavailable</html>"),  # not DynamoDB's JSON: a proxy's page
        throttled,
        (200, {"UnprocessedItems": {}}),
    ]
    sleeps: list[float] = []
    lines = [json.dumps({"Item": {"PK": {"S": f"K#{i}"}}}).encode() for i in range(5)]
    writer = HttpBatchWriter("us-east-1", url, Credentials("x", "x"))
    backoff = Backoff(sleep=sleeps.append, jitter=lambda: 1.0)

    written, rejected = write_page_items(writer, "t1", lines, ["PK"], backoff=backoff)
    assert (written, len(rejected)) == (5, 0)

    assert sleeps == [0.1, 0.2, 0.4, 0.8]
    assert [len(b["RequestItems"]["t1"]) for b in handler.bodies] == [5] * 5


def test_retries_that_run_out_fail_the_page_naming_table_page_and_last_answer(scripted):
    handler, url = scripted
    handler.script = [(400, {"__type": "x#ThrottlingException", "message": "Rate exceeded"})] * 10
    writer = HttpBatchWriter("us-east-1", url, Credentials("x", "x"))
    line = json.dumps({"Item": {"PK": {"S": "K#1"}}}).encode()
    with pytest.raises(BatchNotWritten) as failed:
        write_page_items(
            writer, "t1", [line], ["PK"], backoff=Backoff(sleep=lambda s: None), page="users#2"
        )
    assert str(failed.value).startswith(
        "page users#2: DynamoDB table t1: 1 items not written after 10 attempts"
    )
    assert "ThrottlingException: Rate exceeded" in str(failed.value)
    assert len(handler.bodies) == 10
