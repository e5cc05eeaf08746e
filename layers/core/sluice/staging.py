"""Staging in S3: page identity, object keys, and the Arrow IPC (zstd) page format."""

from __future__ import annotations

import base64
import gzip
import io
import json
import re
import struct
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import unquote_plus

import pyarrow as pa
import pyarrow.ipc as ipc

EXTRACTED, TRANSFORMED, REJECTED = "extracted", "transformed", "rejected"
LOAD_REJECTED = "load-rejected"  # rows the target refused; stored under rejected/ too
KEYS = "keys"  # each DynamoDB item's key beside its source row's, for duplicate detection
IMPORT = "import"  # items for Import from S3, one prefix per target table
# Suffixes, not prefixes, tell the stages apart in S3 notifications: keys are
# runs/<run>/<stage>/..., and a prefix filter cannot skip the run id.
SUFFIX = {
    EXTRACTED: ".extracted.arrow",
    TRANSFORMED: ".transformed.arrow",
    "transformed-ddb": ".transformed.ddb.json.gz",
    REJECTED: ".rejected.jsonl",
    LOAD_REJECTED: ".load.rejected.jsonl",
    KEYS: ".keys.arrow",
    # Matches no notification suffix above: nothing loads these pages; ImportTable reads them.
    IMPORT: ".import.json.gz",
}
_KEY = re.compile(
    r"^runs/(?P<run>[A-Za-z0-9_.-]+)/(?P<stage>extracted|transformed|rejected|keys)/"
    r"(?P<table>[A-Za-z0-9_$]+)/p(?P<page>\d{6,})\.(?P<rest>.+)$"
)
_WRITE_OPTIONS = ipc.IpcWriteOptions(compression="zstd")


@dataclass(frozen=True, slots=True)
class PageRef:
    """Which page: run, source table and page number. Passed along, never re-derived ad hoc."""

    run_id: str
    table: str
    page: int

    def key(self, stage: str, target_kind: str = "mysql") -> str:
        suffix = (
            SUFFIX["transformed-ddb"]
            if stage == TRANSFORMED and target_kind == "dynamodb"
            else SUFFIX[stage]
        )
        folder = REJECTED if stage == LOAD_REJECTED else stage
        return f"runs/{self.run_id}/{folder}/{self.table}/p{self.page:06d}{suffix}"

    def import_key(self, target_table: str) -> str:
        """Where this page's items wait for Import from S3: under its target table's prefix
        (one import reads every source table of that table), named by source table and page."""
        return f"{import_prefix(self.run_id, target_table)}{self.table}-p{self.page:06d}{SUFFIX[IMPORT]}"

    @property
    def label(self) -> str:
        return f"{self.table}#{self.page}"

    @classmethod
    def from_key(cls, key: str) -> tuple[PageRef, str]:
        """Parse an object key (URL-encoded as in S3 events, or plain): (page, stage)."""
        m = _KEY.match(unquote_plus(key))
        if not m:
            raise ValueError(f"not a Sluice page object key: {key!r}")
        return cls(m["run"], m["table"], int(m["page"])), m["stage"]

    def to_dict(self) -> dict:
        return {"run_id": self.run_id, "table": self.table, "page": self.page}

    @classmethod
    def from_dict(cls, d: dict) -> PageRef:
        return cls(d["run_id"], d["table"], int(d["page"]))


def run_prefix(run_id: str) -> str:
    return f"runs/{run_id}/"


def import_prefix(run_id: str, target_table: str) -> str:
    """The S3 prefix one ImportTable reads: every staged item of `target_table` in this run.

    The trailing slash keeps table `shop` from also reading `shop2`'s objects."""
    return f"runs/{run_id}/{IMPORT}/{target_table}/"


def contract_key(run_id: str) -> str:
    return f"runs/{run_id}/contract.json"


def target_columns_key(run_id: str) -> str:
    return f"runs/{run_id}/plan/target-columns.json"


def plan_batches_key(run_id: str) -> str:
    return f"runs/{run_id}/plan/page-batches.json"


# ---------------------------------------------------------------- Arrow IPC pages


def write_arrow(schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> tuple[bytes, int]:
    """Arrow IPC file (zstd) of the batches; returns (bytes, rows)."""
    sink = io.BytesIO()
    rows = 0
    with ipc.new_file(sink, schema, options=_WRITE_OPTIONS) as writer:
        for b in batches:
            writer.write_batch(b)
            rows += b.num_rows
    return sink.getvalue(), rows


def read_arrow(data: bytes) -> pa.Table:
    """The whole page; `iter_arrow` to hold one slice of it at a time instead."""
    return ipc.open_file(pa.BufferReader(data)).read_all()


def arrow_schema_of(data: bytes) -> pa.Schema:
    """The schema of a staged Arrow IPC page, read from its footer (no batch decoded)."""
    return ipc.open_file(pa.BufferReader(data)).schema


def iter_arrow(data: bytes, rows: int) -> Iterator[pa.Table]:
    """A staged page as tables of at most `rows` rows, in order, decoding one stored batch
    at a time: a stage holds one batch of the page, not the page."""
    reader = ipc.open_file(pa.BufferReader(data))
    for i in range(reader.num_record_batches):
        batch = reader.get_batch(i)
        for start in range(0, batch.num_rows, rows):
            yield pa.Table.from_batches([batch.slice(start, rows)])


GZIP_LEVEL = 1


def gzip_lines(lines: pa.Array) -> bytes:
    """Newline-terminated binary lines, gzip compressed (DynamoDB JSON for Import from S3)."""
    return gzip.compress(lines_buffer(lines), compresslevel=GZIP_LEVEL)


class GzipWriter:
    """gzip_lines fed slice by slice: the bytes gzip.compress makes of all the slices at once
    (same header, deflate stream and trailer), without holding them uncompressed."""

    def __init__(self, mtime: float | None = None):
        # gzip.compress's header: no name, the level's XFL byte, OS unknown.
        xfl = 4 if GZIP_LEVEL == 1 else 2 if GZIP_LEVEL == 9 else 0
        stamp = int(time.time() if mtime is None else mtime)
        self._out = io.BytesIO()  # getvalue() hands over its buffer, no copy
        self._out.write(struct.pack("<BBBBLBB", 0x1F, 0x8B, 8, 0, stamp, xfl, 255))
        self._deflate = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
        self._crc = 0
        self._size = 0

    def write(self, data: bytes | memoryview | pa.Buffer) -> None:
        self._crc = zlib.crc32(data, self._crc)
        self._size += memoryview(data).nbytes
        self._out.write(self._deflate.compress(data))

    def getvalue(self) -> bytes:
        """The gzip object; call once, after the last write."""
        self._out.write(self._deflate.flush())
        self._out.write(struct.pack("<LL", self._crc, self._size & 0xFFFFFFFF))
        return self._out.getvalue()


def iter_gunzip(data: bytes, chunk: int = 4 << 20) -> Iterator[bytes]:
    """A gzip object's bytes, decompressed `chunk` bytes at a time."""
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as f:
        while piece := f.read(chunk):
            yield piece


def iter_gunzip_lines(data: bytes, lines: int, chunk: int = 4 << 20) -> Iterator[list[bytes]]:
    """gunzip_lines a few at a time: lists of a multiple of `lines` lines (the last may hold
    fewer), so batches of a size dividing `lines` cut from each list are those cut from all."""
    held: list[bytes] = []
    rest = b""
    for piece in iter_gunzip(data, chunk):
        piece = rest + piece
        end = piece.rfind(b"\n") + 1
        rest = piece[end:]
        held += piece[:end].splitlines()
        if len(held) >= lines:
            cut = len(held) - len(held) % lines
            yield held[:cut]
            held = held[cut:]
    held += rest.splitlines()
    if held:
        yield held


def lines_buffer(lines: pa.Array) -> bytes:
    """The values of a binary array back to back, copied once (no per-value Python)."""
    return lines_view(lines).to_pybytes()


def lines_view(lines: pa.Array) -> pa.Buffer:
    """lines_buffer without the copy: a view of the bytes of the values, back to back, valid
    as long as `lines` is."""
    if isinstance(lines, pa.ChunkedArray):
        lines = lines.combine_chunks()
    if len(lines) == 0:
        return pa.py_buffer(b"")
    if lines.null_count:
        raise ValueError("lines_buffer: null values have no bytes")
    _, offsets, data = lines.buffers()
    width = 8 if pa.types.is_large_binary(lines.type) or pa.types.is_large_string(lines.type) else 4
    view = memoryview(offsets).cast("q" if width == 8 else "i")
    start, end = view[lines.offset], view[lines.offset + len(lines)]
    return data.slice(start, end - start)


def gunzip_lines(data: bytes) -> list[bytes]:
    return gzip.decompress(data).splitlines()


# ---------------------------------------------------------------- rejected rows


@dataclass(frozen=True, slots=True)
class Rejected:
    """Rows refused by a transform: their source keys and one reason each."""

    keys: list[dict]
    reasons: list[str]

    def __len__(self) -> int:
        return len(self.reasons)

    def __add__(self, other: Rejected) -> Rejected:
        return Rejected(self.keys + other.keys, self.reasons + other.reasons)

    def to_jsonl(self) -> bytes:
        return b"".join(
            json.dumps({"key": k, "reason": r}, default=_json_default, ensure_ascii=False).encode()
            + b"\n"
            for k, r in zip(self.keys, self.reasons, strict=True)
        )


NO_REJECTS = Rejected([], [])


def _json_default(v):
    """Key values in rejected/: bytes as {"b64": ...} (as page ranges carry them), the rest as text."""
    if isinstance(v, bytes | bytearray):
        return {"b64": base64.b64encode(v).decode()}
    return str(v)
