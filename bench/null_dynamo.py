"""A null DynamoDB endpoint: accepts every write at once and keeps only counts.

It answers what a Sluice run asks of a DynamoDB target (DescribeTable, CreateTable,
BatchWriteItem, Scan with Select=COUNT) so the client's own cost can be measured without an
emulator's. BatchWriteItem bodies are not parsed: the table name is read from the head of
the body and the items are counted by their "PutRequest" markers, which assumes one table a
request (what Sluice and boto3's batch_writer send).

    python -m bench.null_dynamo [--port N]   # prints the port, then serves until killed
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_TABLE = re.compile(rb'\s*\{\s*"RequestItems"\s*:\s*\{\s*"((?:[^"\\]|\\.)*)"\s*:')
_PREFIX = "com.amazonaws.dynamodb.v20120810#"


class State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tables: dict[str, dict] = {}
        self.items: dict[str, int] = {}
        self.requests = 0

    def describe(self, name: str) -> dict:
        t = self.tables[name]
        return {
            "TableName": name,
            "TableStatus": "ACTIVE",
            "KeySchema": t.get("KeySchema", []),
            "AttributeDefinitions": t.get("AttributeDefinitions", []),
            "ItemCount": self.items.get(name, 0),
            "TableSizeBytes": 0,
            "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"},
            "TableArn": f"arn:aws:dynamodb:us-east-1:123456789012:table/{name}",
        }


STATE = State()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the client's connection pool is reused
    # Headers and body leave in one segment (flushed after each request) with Nagle off:
    # written apart, delayed ACKs stall every response by 40 ms.
    wbufsize = 1 << 16
    disable_nagle_algorithm = True

    def log_message(self, *_args) -> None:  # one line per request would cost more than it
        pass

    def _send(self, status: int, doc: dict) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _missing(self, name: str) -> None:
        self._send(
            400,
            {"__type": _PREFIX + "ResourceNotFoundException", "message": f"{name} not found"},
        )

    def do_GET(self) -> None:  # /stats: what was accepted, and the server's own CPU
        r = resource.getrusage(resource.RUSAGE_SELF)
        with STATE.lock:
            doc = {"items": dict(STATE.items), "requests": STATE.requests}
        doc["cpu_seconds"] = r.ru_utime + r.ru_stime
        self._send(200, doc)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        op = (self.headers.get("X-Amz-Target") or "").rpartition(".")[2]
        st = STATE
        if op == "BatchWriteItem":
            m = _TABLE.match(body)
            name = json.loads(b'"' + m.group(1) + b'"') if m else "?"
            n = body.count(b'"PutRequest"')
            with st.lock:
                st.requests += 1
                st.items[name] = st.items.get(name, 0) + n
            self._send(200, {"UnprocessedItems": {}})
            return
        doc = json.loads(body or b"{}")
        name = doc.get("TableName", "")
        with st.lock:
            st.requests += 1
            if op == "CreateTable":
                st.tables[name] = doc
                self._send(200, {"TableDescription": st.describe(name)})
            elif op == "DeleteTable":
                if name not in st.tables:
                    return self._missing(name)
                desc = st.describe(name)
                del st.tables[name]
                self._send(200, {"TableDescription": desc})
            elif name not in st.tables and op in ("DescribeTable", "Scan"):
                self._missing(name)
            elif op == "DescribeTable":
                self._send(200, {"Table": st.describe(name)})
            elif op == "Scan":  # Select=COUNT is what a run's verify asks
                n = st.items.get(name, 0)
                self._send(200, {"Count": n, "ScannedCount": n})
            elif op == "PutItem":
                st.items[name] = st.items.get(name, 0) + 1
                self._send(200, {})
            elif op == "GetItem":
                self._send(200, {})
            elif op == "ListTables":
                self._send(200, {"TableNames": sorted(st.tables)})
            else:
                self._send(
                    400, {"__type": _PREFIX + "ValidationException", "message": f"{op}: not here"}
                )


def serve(port: int = 0) -> ThreadingHTTPServer:
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 128
    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0)
    srv = serve(p.parse_args().port)
    print(srv.server_address[1], flush=True)
    sys.stdout.close()
    srv.serve_forever()


if __name__ == "__main__":
    main()
