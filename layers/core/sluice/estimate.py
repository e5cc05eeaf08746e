"""What a migration costs on AWS and how long it takes: each table's path (Lambda or bulk) with
its bill line by line, and the two ways into DynamoDB (BatchWriteItem, "write", or Import from
S3) side by side.

The price table (PRICES) is here and nowhere else: us-east-1 list prices, each with its date and
the AWS page it comes from. The DynamoDB write and import prices are from the text of issue 8
("New DynamoDB tables load through Import from S3"), which quotes the AWS pricing pages as
looked at in 2026; the others are from memory (nothing here reaches the internet), labelled so.
Check the pages for your region before trusting a close call. Free tiers are left out.

How each way into DynamoDB is priced and timed:
- write: one write request unit per started KB of item, per item, plus as many again per
  global secondary index (each index write is billed too); duration = units / write rate.
  The default rate is what a new on-demand table accepts at once (4,000 write units a
  second); a table's peak rises as it is used, so long runs can go faster.
- import: the items' bytes in GB (10^9 bytes, as the issue computes; binary GB would make
  the import about 7% cheaper), times the price. DynamoDB bills the uncompressed size of
  the staged DynamoDB JSON, which is larger than the items (type tags, quotes, names): the
  estimate counts item bytes, as the issue asks, so the import's true bill runs higher by
  that overhead. Duration: AWS publishes no import throughput; IMPORT_GB_PER_HOUR and
  IMPORT_SETUP_SECONDS are assumptions, not measurements, to be replaced by a measured figure.

Both ways extract and transform alike, so only the loading differs: these figures compare
that part, not a whole run. Beside them, the Lambda compute of each way's pages (extract,
transform, and for writes the writer's own CPU) is priced from a CPU assumption, the rows one
CPU-second moves through each stage (ROWS_PER_CPU_SECOND), which `make bench` measures and
prints beside it (bench/RESULTS.md, "The estimate's CPU assumption").

How a table's path is priced and timed (`lambda_path`, `bulk_path`; the plan picks the path as
stages.plan_run does: the contract's "path", else bulk above bulk_threshold_rows):
- Lambda: per page and stage, the CPU-seconds at ROWS_PER_CPU_SECOND run at the function's
  share of a vCPU (its memory / 1,769 MB, at most one), plus PAGE_REQUEST_SECONDS of S3 and
  manifest requests; a load also waits for its worker's share of the target's rate (the
  DynamoDB write rate, or MYSQL_TARGET_ROWS_PER_SECOND), and Lambda bills the wait. Pages flow
  at the slowest of extract (ExtractConcurrency pages at once) and load (LoadConcurrency);
  transform has no cap (its queue scales it), so it bounds nothing. Requests: one Lambda
  invocation per SQS batch, SQS sends, receives and deletes per page and stage, S3 PUTs and
  GETs of the staged objects, Step Functions transitions of the page fan-out and the wait loop.
- bulk: the Glue job's workers (one runs the Spark driver, the others a Spark task per vCPU)
  at BULK_ROWS_PER_TASK_SECOND each, measured on one machine by `python -m bench.bulk`, or the
  write rate if that is slower; billed per DPU-second with a minute's minimum.
The settings come from template.yaml (STACK, checked against it by a unit test); the CLI can
override the concurrency.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from .config import TAIL_CHECK_SECONDS
from .contract import DEFAULT_BULK_THRESHOLD, DEFAULT_PAGE_SIZE, Contract, TableSpec
from .sql import q, qualified
from .transform import selected_columns


@dataclass(frozen=True, slots=True)
class Price:
    """One list price: `usd` for every `units` of what `per` names."""

    usd: float
    units: float
    per: str
    as_of: str
    source: str

    def cost(self, quantity: float) -> float:
        return quantity / self.units * self.usd

    def text(self) -> str:
        return f"{_usd(self.usd)} {self.per}"

    def to_dict(self) -> dict:
        return {"usd": self.usd, "units": self.units, "per": self.per} | {
            "region": PRICES_REGION,
            "as_of": self.as_of,
            "source": self.source,
        }


def _usd(x: float) -> str:
    """A price as its digits show it: $0.625, $0.0000166667, $0.20."""
    digits = f"{x:.10f}".rstrip("0")
    return "$" + (f"{x:.2f}" if len(digits.split(".")[1]) < 2 else digits)


PRICES_REGION = "us-east-1"
PRICES_AS_OF = "2026 (issue 8's text; not re-read from the AWS pricing pages)"
FROM_MEMORY = "2025, from memory: not read from the AWS pricing pages (no internet here)"
PRICES_SOURCE = "https://aws.amazon.com/dynamodb/pricing/on-demand/"
_DYNAMODB = PRICES_SOURCE
_LAMBDA = "https://aws.amazon.com/lambda/pricing/"
_S3 = "https://aws.amazon.com/s3/pricing/"
PRICES: dict[str, Price] = {
    "dynamodb_write": Price(
        0.625, 1e6, "per million write request units (on-demand)", PRICES_AS_OF, _DYNAMODB
    ),
    "dynamodb_import": Price(
        0.15, 1.0, "per GB (10^9 bytes) of source data (Import from S3)", PRICES_AS_OF, _DYNAMODB
    ),
    "dynamodb_read": Price(
        0.125, 1e6, "per million read request units (on-demand)", FROM_MEMORY, _DYNAMODB
    ),
    "lambda_gb_second": Price(0.0000166667, 1.0, "per GB-second (x86)", FROM_MEMORY, _LAMBDA),
    "lambda_request": Price(0.20, 1e6, "per million requests", FROM_MEMORY, _LAMBDA),
    "sqs_request": Price(
        0.40,
        1e6,
        "per million standard-queue requests (each 64 KB of a request counts as one)",
        FROM_MEMORY,
        "https://aws.amazon.com/sqs/pricing/",
    ),
    "s3_put": Price(0.005, 1e3, "per 1,000 PUT, COPY, POST or LIST requests", FROM_MEMORY, _S3),
    "s3_get": Price(0.0004, 1e3, "per 1,000 GET requests", FROM_MEMORY, _S3),
    "s3_storage": Price(0.023, 1.0, "per GB-month (S3 Standard)", FROM_MEMORY, _S3),
    "sfn_transition": Price(
        0.025,
        1e3,
        "per 1,000 state transitions (standard workflow)",
        FROM_MEMORY,
        "https://aws.amazon.com/step-functions/pricing/",
    ),
    "glue_dpu_hour": Price(
        0.44,
        1.0,
        "per DPU-hour (Spark job; per second, 1-minute minimum on Glue 2.0 and later)",
        FROM_MEMORY,
        "https://aws.amazon.com/glue/pricing/",
    ),
}
WRITE_PRICE_PER_MILLION_UNITS = PRICES["dynamodb_write"].usd  # USD, on-demand write request units
IMPORT_PRICE_PER_GB = PRICES["dynamodb_import"].usd  # USD per GB of source data imported
GB = 10**9
WRITE_UNIT_BYTES = 1024

DEFAULT_WRITE_RATE = 4_000  # write units a second: what a new on-demand table accepts at once
IMPORT_GB_PER_HOUR = 50.0  # assumption: AWS publishes no figure
IMPORT_SETUP_SECONDS = 300  # assumption: table creation and start-up of even a small import
VIEW_SAMPLE_ROWS = 1000

# The CPU assumption: rows (items) one CPU-second moves through each stage of a page on the
# Lambda path, rounded down from `make bench`'s per-stage rows per CPU-second on a 2-core AMD
# EPYC (the 1,000,000-row orders table, pages of 50,000) in its two fastest runs, of the code
# as of those runs (2026-11-26 04:46 and 06:07 UTC, "Python reference loop" 0.20-0.21 CPU s;
# extract and load_mysql have taken less CPU since, so these err on the safe side). Runs
# on the same machine at other hours measured 0.6-0.7 of these figures (reference loop
# 0.28-0.40 CPU s): the machine's speed moves, so read the ratios of one run together. The
# bench prints its own measurement beside each on every run.
ROWS_PER_CPU_SECOND = {
    "extract": 750_000,  # source.read_page (one server-built line a row) + write_arrow: 885-897k
    "transform_dynamodb": 1_100_000,  # to_dynamodb_items: 1.26M
    "gzip": 800_000,  # staging.gzip_lines, the items staged for either way: 814-815k
    "load_dynamodb": 125_000,  # BatchWriteItem over HTTP, client CPU (write way only): 129-139k
    "transform_mysql": 1_800_000,  # read + to_mysql_rows + checksums + write: 1.82-1.84M
    "load_mysql": 1_000_000,  # targets.mysql.load_rows, client CPU: 1.00-1.01M
}
WAY_STAGES = {
    "write": ("extract", "transform_dynamodb", "gzip", "load_dynamodb"),
    "import": ("extract", "transform_dynamodb", "gzip"),
}
# Lambda bills memory x duration; a function gets one vCPU per 1,769 MB, so below that a
# CPU-bound second costs 1769/1024 GB-seconds whatever the memory.
LAMBDA_PRICE_PER_GB_SECOND = PRICES["lambda_gb_second"].usd
LAMBDA_MB_PER_VCPU = 1769

# ---- the paths' assumptions (not measured unless said)
# A page's S3 GET/PUT and manifest update, per stage, in the region: tens of milliseconds each.
PAGE_REQUEST_SECONDS = 0.1
# All MySQL load workers together: the bench's one loader into a 2-core local MariaDB moved
# 124,418 rows/s (bench/RESULTS.md, "load MySQL", wall); a larger server takes more.
MYSQL_TARGET_ROWS_PER_SECOND = 120_000
# One Spark task (one vCPU of a Glue worker) of the bulk job, rows a second: `python -m
# bench.bulk` (2026-11-25 16:37 UTC, bench/RESULTS.md "Bulk path") moved 21,884 rows/s into
# DynamoDB and 77,966 into MySQL with two task slots on 2 cores, which the database server
# shared; halved and rounded down. Glue's own workers may go faster; a busy source, slower.
BULK_ROWS_PER_TASK_SECOND = {"dynamodb": 10_000, "mysql": 35_000}
GLUE_WORKER_TYPES = {"G.1X": (1, 4), "G.2X": (2, 8), "G.4X": (4, 16), "G.8X": (8, 32)}  # DPU, vCPU
GLUE_START_SECONDS = 60  # workers, Spark, --additional-python-modules: counted and billed
GLUE_MIN_BILLED_SECONDS = 60
SQS_SEND_BATCH = 10  # the plan's page messages go out by sendMessageBatch
PLAN_OBJECTS = 4  # contract, target columns, page batches, write rates: once per run
MANIFEST_ITEM_BYTES = 700  # a page's manifest item (range, counts, checksums): one write unit
RUN_TRANSITIONS = 10  # start, plan, routing, verify, end: once per run
S3_LIST_KEYS = 1000  # objects one LIST returns


@dataclass(frozen=True, slots=True)
class Stack:
    """The settings of a deployed stack that a path's cost and duration depend on.

    The defaults are template.yaml's (tests/unit/test_estimate_paths.py reads the template
    and compares them): the estimate also runs where no template is at hand, from an installed
    CLI, so it keeps this copy. `sluice plan --estimate --extract-concurrency N
    --load-concurrency N` overrides the two parameters a deployment most often changes.
    """

    # MemorySize (Globals; no stage function sets its own) and SQS BatchSize per stage function
    memory_mb: dict[str, int] = field(
        default_factory=lambda: {"extract": 1024, "transform": 1024, "load": 1024}
    )
    batch_size: dict[str, int] = field(
        default_factory=lambda: {"extract": 1, "transform": 5, "load": 5}
    )
    extract_concurrency: int = 10  # ExtractConcurrency
    load_concurrency: int = 10  # LoadConcurrency
    poll_seconds: int = 15  # PollSeconds: the state machine's wait between progress checks
    page_size: int = DEFAULT_PAGE_SIZE  # PageSize
    bulk_threshold_rows: int = DEFAULT_BULK_THRESHOLD  # BulkThresholdRows
    glue_worker_type: str = "G.1X"  # BulkWorkerType
    glue_workers: int = 10  # BulkNumberOfWorkers
    bulk_write_units: float = 0  # BulkWriteUnitsPerSecond: the job's own cap, 0 for none

    def to_dict(self) -> dict:
        return asdict(self)


STACK = Stack()
# The template's function behind each Lambda stage.
STAGE_FUNCTIONS = {
    "extract": "ExtractFunction",
    "transform": "TransformFunction",
    "load": "LoadFunction",
}


@dataclass(frozen=True, slots=True)
class Way:
    """One way's cost (USD) and duration (seconds) for some items."""

    cost: float
    seconds: float


@dataclass(frozen=True, slots=True)
class Estimate:
    """Both ways for `rows` items of `item_bytes` each (a source table, or a whole target)."""

    name: str
    target_table: str
    rows: int
    item_bytes: int
    gsis: int
    write: Way
    import_: Way
    load: str = "write"  # what the contract chose

    @property
    def cheaper(self) -> str:
        return "import" if self.import_.cost < self.write.cost else "write"

    @property
    def faster(self) -> str:
        return "import" if self.import_.seconds < self.write.seconds else "write"

    def compute(self, way: str) -> Way:
        """The Lambda compute of `way`'s pages: cost, and CPU-seconds (not wall time: pages
        run side by side)."""
        return lambda_compute(self.rows, way)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "target_table": self.target_table,
            "rows": self.rows,
            "item_bytes": self.item_bytes,
            "gsis": self.gsis,
            "load": self.load,
            "write": {"cost_usd": self.write.cost, "seconds": self.write.seconds},
            "import": {"cost_usd": self.import_.cost, "seconds": self.import_.seconds},
            "cheaper": self.cheaper,
            "faster": self.faster,
            "lambda_compute": {
                way: {"cost_usd": c.cost, "cpu_seconds": c.seconds}
                for way in WAY_STAGES
                for c in [self.compute(way)]
            },
        }


def write_units(item_bytes: int, gsis: int = 0) -> int:
    """Write request units one item costs: a unit per started KB, again for each index."""
    return max(1, math.ceil(item_bytes / WRITE_UNIT_BYTES)) * (1 + gsis)


def lambda_compute(rows: int, way: str) -> Way:
    """CPU-seconds of `way`'s stages for `rows` rows at ROWS_PER_CPU_SECOND, and what Lambda
    bills for them when they are CPU-bound (waiting on throttled writes is billed too, and
    not counted here)."""
    cpu = sum(rows / ROWS_PER_CPU_SECOND[stage] for stage in WAY_STAGES[way])
    gb_seconds = cpu * LAMBDA_MB_PER_VCPU / 1024
    return Way(gb_seconds * LAMBDA_PRICE_PER_GB_SECOND, cpu)


def by_writes(
    rows: int, item_bytes: int, *, gsis: int = 0, write_rate: float = DEFAULT_WRITE_RATE
) -> Way:
    units = rows * write_units(item_bytes, gsis)
    return Way(units / 1e6 * WRITE_PRICE_PER_MILLION_UNITS, units / write_rate)


def by_import(rows: int, item_bytes: int, *, setup: bool = True) -> Way:
    """`setup`: count the import's start-up (once per import, i.e. per target table)."""
    size = rows * item_bytes
    hours = size / GB / IMPORT_GB_PER_HOUR
    return Way(
        size / GB * IMPORT_PRICE_PER_GB, hours * 3600 + (IMPORT_SETUP_SECONDS if setup else 0)
    )


def estimate(
    rows: int,
    item_bytes: int,
    *,
    name: str = "",
    target_table: str = "",
    gsis: int = 0,
    write_rate: float = DEFAULT_WRITE_RATE,
    load: str = "write",
    setup: bool = True,
) -> Estimate:
    return Estimate(
        name,
        target_table,
        rows,
        item_bytes,
        gsis,
        by_writes(rows, item_bytes, gsis=gsis, write_rate=write_rate),
        by_import(rows, item_bytes, setup=setup),
        load,
    )


# ---------------------------------------------------------------- paths


@dataclass(frozen=True, slots=True)
class Line:
    """One line of a path's bill: how much of what, and what it costs (USD)."""

    what: str
    quantity: float
    unit: str
    cost: float
    note: str = ""

    def to_dict(self) -> dict:
        return {
            "what": self.what,
            "quantity": self.quantity,
            "unit": self.unit,
            "cost_usd": self.cost,
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class PathEstimate:
    """A table on one path: its bill, and how long it takes at the stack's concurrency."""

    name: str
    path: str  # "lambda" | "bulk"
    target: str  # what receives the rows, and how
    rows: int
    item_bytes: int
    pages: int
    lines: tuple[Line, ...]
    seconds: float
    bound: str  # what sets the pace
    chosen: bool = True  # the path the plan takes
    why: str = ""  # why the plan takes the path it takes

    @property
    def cost(self) -> float:
        return sum(line.cost for line in self.lines)

    def line(self, what: str) -> Line:
        return next(line for line in self.lines if line.what == what)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "path": self.path,
            "chosen": self.chosen,
            "why": self.why,
            "target": self.target,
            "rows": self.rows,
            "item_bytes": self.item_bytes,
            "pages": self.pages,
            "cost_usd": self.cost,
            "seconds": self.seconds,
            "bound": self.bound,
            "lines": [line.to_dict() for line in self.lines],
        }


def _cost(price: str, quantity: float) -> float:
    return PRICES[price].cost(quantity)


def _priced(what: str, quantity: float, unit: str, price: str, note: str = "") -> Line:
    """A bill line priced at PRICES[price] for its quantity."""
    return Line(what, quantity, unit, _cost(price, quantity), note)


def _pages(rows: int, page_size: int) -> int:
    return math.ceil(rows / page_size) if rows > 0 else 0


def _lambda_stages(target_kind: str, load: str) -> dict[str, tuple[str, ...]]:
    """The Lambda stages a page goes through, each with its parts in ROWS_PER_CPU_SECOND."""
    if target_kind == "mysql":
        return {"extract": ("extract",), "transform": ("transform_mysql",), "load": ("load_mysql",)}
    stages = {"extract": ("extract",), "transform": ("transform_dynamodb", "gzip")}
    if load != "import":  # an import replaces the load stage
        stages["load"] = ("load_dynamodb",)
    return stages


def _target_text(target_kind: str, target_table: str, load: str) -> str:
    name = f" {target_table}" if target_table else ""
    if target_kind == "mysql":
        return f"MySQL{name}"
    return f"DynamoDB{name} by {'Import from S3' if load == 'import' else 'writes'}"


def _target_lines(
    target_kind: str, load: str, rows: int, item_bytes: int, gsis: int
) -> tuple[list[Line], float]:
    """What the target bills for the rows, and the import's seconds (0 without one)."""
    if target_kind == "mysql":
        return [
            Line("MySQL target", 0, "", 0.0, "no AWS charge for the writes: the server's own")
        ], 0.0
    if load == "import":
        imp = by_import(rows, item_bytes)
        gb = rows * item_bytes / GB
        note = f"then {duration(imp.seconds)} of import"
        return [Line("DynamoDB import", gb, "GB", imp.cost, note)], imp.seconds
    units = rows * write_units(item_bytes, gsis)
    note = f"{write_units(item_bytes, gsis)} per item of {item_bytes:,} B" + (
        f" and {gsis} index(es)" if gsis else ""
    )
    return [
        Line(
            "DynamoDB writes",
            units,
            "write units",
            by_writes(rows, item_bytes, gsis=gsis).cost,
            note,
        )
    ], 0.0


def _import_polls(import_seconds: float, stack: Stack) -> int:
    """The progress checks while an import runs (none without one)."""
    return math.ceil(import_seconds / stack.poll_seconds) + 1 if import_seconds else 0


def _run_requests(polls: int, import_polls: int) -> int:
    """The run's own Lambda requests: plan, verify, and each progress and import check."""
    return 2 + polls + import_polls


def _transitions(fan_outs: int, checks: int) -> int:
    """Step Functions transitions: the run's own, and 3 for each step that fans pages out and
    for each progress or import check."""
    return RUN_TRANSITIONS + 3 * fan_outs + 3 * checks


def _key_lists(pages: int, dynamo: int, imports: int) -> int:
    """S3 LISTs of a DynamoDB target's item keys: at verify, and again before an import."""
    return math.ceil(pages / S3_LIST_KEYS) * (1 + imports) if dynamo and pages else 0


def _manifest_line(
    pages: int, writes_a_page: int, reads: float, polls: int, tail_seconds: float
) -> Line:
    """The run's manifest table: a write per page and stage; reads by the stages that check a
    page's checksum, and by every progress poll, which reads every page's item, as does each
    check of the polls that wait for the run's last pages (stages._in_tail), for
    `tail_seconds`."""
    per_poll = math.ceil(pages * MANIFEST_ITEM_BYTES / 4096) * 0.5  # eventually consistent
    tail = math.ceil(tail_seconds / TAIL_CHECK_SECONDS) if pages else 0
    reads += (polls + tail) * per_poll
    writes = pages * writes_a_page
    cost = _cost("dynamodb_write", writes) + _cost("dynamodb_read", reads)
    checks = f", {_n(tail, 'check')} of the last pages" if tail else ""
    return Line(
        "DynamoDB manifest",
        writes + reads,
        "request units",
        cost,
        f"{writes:,} writes, {reads:,.0f} reads ({_n(polls, 'progress poll')}{checks})",
    )


def _storage_line(rows: int, item_bytes: int) -> Line:
    gb = rows * item_bytes / GB
    return Line(
        "S3 storage, a day",
        gb,
        "GB",
        _cost("s3_storage", gb) / 30,
        "negligible for a day; kept RunDataRetentionDays (30) unless deleted",
    )


def lambda_path(
    rows: int,
    item_bytes: int,
    *,
    target_kind: str = "dynamodb",
    target_table: str = "",
    load: str = "write",
    gsis: int = 0,
    page_size: int | None = None,
    write_rate: float = DEFAULT_WRITE_RATE,
    stack: Stack = STACK,
    name: str = "",
    chosen: bool = True,
    why: str = "",
) -> PathEstimate:
    """A table on the Lambda path: pages through extract, transform and load (or an import)."""
    pages = _pages(rows, page_size or stack.page_size)
    per_page = rows / pages if pages else 0.0
    units = write_units(item_bytes, gsis)
    stages = _lambda_stages(target_kind, load)
    lines: list[Line] = []
    busy: dict[str, float] = {}  # seconds a worker spends on one page, per stage
    waits = False  # the load waits on the target's rate rather than on its CPU
    for stage, parts in stages.items():
        mem = stack.memory_mb[stage]
        cpu = sum(per_page / ROWS_PER_CPU_SECOND[p] for p in parts)
        seconds = cpu / min(1.0, mem / LAMBDA_MB_PER_VCPU) + PAGE_REQUEST_SECONDS
        if stage == "load":
            if target_kind == "mysql":
                share = MYSQL_TARGET_ROWS_PER_SECOND / stack.load_concurrency
                waited = per_page / share
            else:
                share = write_rate / stack.load_concurrency
                waited = per_page * units / share
            if waited > seconds:
                seconds, waits = waited, True
        busy[stage] = seconds
        gb_s = pages * seconds * mem / 1024
        note = f"{_n(pages, 'page')} x {seconds:.2f} s at {mem:,} MB"
        if stage == "load" and waits:
            note += f", waiting for its 1/{stack.load_concurrency} of the target's rate"
        lines.append(_priced(f"Lambda {stage}", gb_s, "GB-s", "lambda_gb_second", note))

    at_once = {"extract": stack.extract_concurrency, "load": stack.load_concurrency}
    pace = {s: at_once[s] / busy[s] for s in busy if s in at_once}  # pages a second
    slowest = min(pace, key=pace.get)
    flow = pages / pace[slowest] + sum(busy.values()) if pages else 0.0
    if slowest == "load" and waits:
        bound = (
            f"the MySQL target ({MYSQL_TARGET_ROWS_PER_SECOND:,} rows/s)"
            if target_kind == "mysql"
            else f"the write rate ({write_rate:,.0f} units/s)"
        )
    else:
        bound = f"{slowest} ({at_once[slowest]} at once, {busy[slowest]:.2f} s a page)"
    target, import_seconds = _target_lines(target_kind, load, rows, item_bytes, gsis)
    polls = math.ceil(flow / stack.poll_seconds) + 1
    import_polls = _import_polls(import_seconds, stack)

    invocations = sum(math.ceil(pages / stack.batch_size[s]) for s in stages)
    orchestration = _run_requests(polls, import_polls)
    requests = invocations + orchestration
    lines.append(
        _priced(
            "Lambda requests",
            requests,
            "requests",
            "lambda_request",
            f"{invocations:,} by the stages' SQS batches, {orchestration:,} plan, polls, verify",
        )
    )
    sends = math.ceil(pages / SQS_SEND_BATCH) + pages * (len(stages) - 1)
    receives = sum(math.ceil(pages / stack.batch_size[s]) for s in stages)
    sqs = sends + 2 * receives  # a delete (batch) per receive
    lines.append(
        _priced(
            "SQS requests",
            sqs,
            "requests",
            "sqs_request",
            f"{sends:,} sends, {receives:,} receives, {receives:,} deletes (full batches)",
        )
    )
    dynamo, imports = int(target_kind == "dynamodb"), int(load == "import")
    # PUT: extracted, transformed (or import object), item keys; LIST: the keys, at verify and
    # before an import
    puts = pages * (2 + dynamo) + PLAN_OBJECTS
    puts += _key_lists(pages, dynamo, imports)
    # GET: transform reads extracted, load reads transformed, verify the keys; an import reads
    # its objects, and its duplicate check the keys again
    gets = pages * (1 + int("load" in stages) + dynamo + 2 * imports)
    written = ["extracted", "import object" if imports else "transformed"] + ["item keys"] * dynamo
    readers = ["transform"] + ["load"] * int("load" in stages) + ["verify (keys)"] * dynamo
    readers += ["the import", "its duplicate check (keys)"] * imports
    lines.append(
        _priced("S3 PUT/LIST", puts, "requests", "s3_put", "a page: " + ", ".join(written))
    )
    lines.append(_priced("S3 GET", gets, "requests", "s3_get", "a page: " + ", ".join(readers)))
    lines.append(_storage_line(rows, item_bytes))
    transitions = _transitions(math.ceil(pages / SQS_SEND_BATCH), polls + import_polls)
    lines.append(
        _priced(
            "Step Functions",
            transitions,
            "transitions",
            "sfn_transition",
            f"3 per {SQS_SEND_BATCH} pages sent, 3 per poll every {stack.poll_seconds} s",
        )
    )
    lines += target
    lines.append(
        _manifest_line(
            pages,
            1 + len(stages),
            pages * (len(stages) - 1) * 0.5,
            polls,
            # The last pages' trip through the slowest stage, at least a poll.
            tail_seconds=max(stack.poll_seconds, max(busy.values(), default=0.0)),
        )
    )
    return PathEstimate(
        name,
        "lambda",
        _target_text(target_kind, target_table, load),
        rows,
        item_bytes,
        pages,
        tuple(lines),
        flow + import_seconds,
        bound,
        chosen,
        why,
    )


def bulk_path(
    rows: int,
    item_bytes: int,
    *,
    target_kind: str = "dynamodb",
    target_table: str = "",
    load: str = "write",
    gsis: int = 0,
    page_size: int | None = None,
    write_rate: float = DEFAULT_WRITE_RATE,
    stack: Stack = STACK,
    name: str = "",
    chosen: bool = True,
    why: str = "",
) -> PathEstimate:
    """A table on the bulk path: one Glue job run over its page ranges (then an import)."""
    pages = _pages(rows, page_size or stack.page_size)
    dpu, vcpus = GLUE_WORKER_TYPES[stack.glue_worker_type]
    tasks = max(1, stack.glue_workers - 1) * vcpus  # one worker runs the driver
    per_task = BULK_ROWS_PER_TASK_SECOND[target_kind]
    work = rows / (tasks * per_task)
    bound = f"{tasks} Spark tasks at {per_task:,} rows/s each"
    if target_kind == "dynamodb" and load != "import":
        rate = min(write_rate, stack.bulk_write_units) if stack.bulk_write_units > 0 else write_rate
        waited = rows * write_units(item_bytes, gsis) / rate
        if waited > work:
            work, bound = waited, f"the write rate ({rate:,.0f} units/s)"
    job = GLUE_START_SECONDS + work if pages else 0.0
    billed = max(job, GLUE_MIN_BILLED_SECONDS) if pages else 0.0
    dpu_hours = stack.glue_workers * dpu * billed / 3600
    lines = [
        _priced(
            "Glue",
            dpu_hours,
            "DPU-hours",
            "glue_dpu_hour",
            f"{stack.glue_workers} {stack.glue_worker_type} workers ({stack.glue_workers * dpu} "
            f"DPU) x {duration(billed)}, start-up {GLUE_START_SECONDS} s included",
        )
    ]
    target, import_seconds = _target_lines(target_kind, load, rows, item_bytes, gsis)
    import_polls = _import_polls(import_seconds, stack)
    polls = 1 if pages else 0  # the job's map waits on the job (.sync); one check after it
    requests = _run_requests(polls, import_polls)
    lines.append(
        _priced(
            "Lambda requests",
            requests,
            "requests",
            "lambda_request",
            "plan, progress and import checks, verify",
        )
    )
    lines.append(Line("SQS requests", 0, "requests", 0.0, "none: the job reads its ranges from S3"))
    dynamo, imports = int(target_kind == "dynamodb"), int(load == "import")
    puts = pages * (dynamo + imports) + PLAN_OBJECTS + 1  # item keys, import objects; ranges
    puts += _key_lists(pages, dynamo, imports)
    gets = pages * (dynamo + 2 * imports)
    written = ["item keys"] * dynamo + ["import object"] * imports
    readers = ["verify (keys)"] * dynamo + ["the import", "its duplicate check (keys)"] * imports
    lines.append(
        _priced(
            "S3 PUT/LIST",
            puts,
            "requests",
            "s3_put",
            "a page: " + ", ".join(written + ["the ranges and plan objects"])
            if written
            else "the ranges and plan objects",
        )
    )
    got = "a page: " + ", ".join(readers) if readers else ""
    lines.append(_priced("S3 GET", gets, "requests", "s3_get", got))
    transitions = _transitions(1 if pages else 0, polls + import_polls)  # the job's map
    lines.append(
        _priced(
            "Step Functions",
            transitions,
            "transitions",
            "sfn_transition",
            "the job's map state waits on the job without transitions",
        )
    )
    lines += target
    # Its one progress check comes after the job: every page is loaded (or failed) by then.
    lines.append(_manifest_line(pages, 2, 0.0, polls, tail_seconds=0))
    return PathEstimate(
        name,
        "bulk",
        _target_text(target_kind, target_table, load),
        rows,
        item_bytes,
        pages,
        tuple(lines),
        job + import_seconds,
        bound,
        chosen,
        why,
    )


def path_estimate(path: str, rows: int, item_bytes: int, **kwargs) -> PathEstimate:
    """`lambda_path` or `bulk_path`, by name."""
    return (bulk_path if path == "bulk" else lambda_path)(rows, item_bytes, **kwargs)


# ---------------------------------------------------------------- from the source


def _columns(conn, database: str) -> dict[str, list[str]]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME, ORDINAL_POSITION",
            (database,),
        )
        out: dict[str, list[str]] = {}
        for table, column in cur.fetchall():
            out.setdefault(table, []).append(column)
    return out


def source_sizes(
    conn, contract: Contract, columns: dict[str, list[str]]
) -> dict[str, tuple[int, int]]:
    """(rows, average row bytes) of each source table of the contract.

    Tables: TABLE_ROWS and AVG_ROW_LENGTH from information_schema (InnoDB's own estimates:
    the row count is approximate, and the length counts storage overhead, which overstates
    the rows of a table that fills a page or two). Views have neither: their rows are
    counted, and their length is the average of the moved columns' bytes over a sample.
    """
    with conn.cursor() as cur:
        cur.execute(
            "SELECT TABLE_NAME, TABLE_TYPE, TABLE_ROWS, AVG_ROW_LENGTH "
            "FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
            (contract.source_database,),
        )
        info = {r[0]: r[1:] for r in cur.fetchall()}
    out = {}
    for spec in contract.tables:
        kind, rows, avg = info.get(spec.source, ("VIEW", None, None))
        if kind == "BASE TABLE" and rows is not None:
            out[spec.source] = (int(rows), int(avg or 0))
            continue
        cols = selected_columns(spec, columns.get(spec.source, []))
        out[spec.source] = _view_size(conn, contract.source_database, spec.source, cols)
    return out


def _view_size(conn, database: str, view: str, cols: list[str]) -> tuple[int, int]:
    length = " + ".join(f"COALESCE(LENGTH({q(c)}), 0)" for c in cols) or "0"
    picked = ", ".join(q(c) for c in cols) or "1"
    with conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {qualified(database, view)}")  # noqa: S608
        rows = int(cur.fetchone()[0])
        cur.execute(
            f"SELECT AVG({length}) FROM (SELECT {picked} FROM {qualified(database, view)} "  # noqa: S608
            f"LIMIT {VIEW_SAMPLE_ROWS}) AS s"
        )
        avg = cur.fetchone()[0]
    return rows, int(avg or 0)


def item_bytes(
    spec: TableSpec, contract: Contract, row_bytes: int, columns: list[str] | None = None
) -> int:
    """An item's size from its row's: the values, plus every attribute's name, plus the key
    attributes the templates add (their text holds a copy of the values they name)."""
    names = sum(len(spec.rename.get(c, c).encode()) for c in columns or ())
    table = contract.dynamo_tables.get(spec.target_table)
    templates = [(table.partition_key if table else "PK", spec.partition_key)]
    if table and table.sort_key:
        templates.append((table.sort_key, spec.sort_key))
    templates += list(spec.attributes.items())
    keys = sum(len(a.encode()) + (len(t.text.encode()) if t else 0) for a, t in templates)
    return row_bytes + names + keys


def table_sizes(conn, contract: Contract) -> dict[str, tuple[int, int]]:
    """(rows, bytes of one target record) of each source table of the contract: a DynamoDB
    item's bytes (`item_bytes`), or a MySQL target's row (the source's average row length)."""
    columns = _columns(conn, contract.source_database)
    sizes = source_sizes(conn, contract, columns)
    if contract.target_kind != "dynamodb":
        return sizes
    out = {}
    for spec in contract.tables:
        rows, row_bytes = sizes[spec.source]
        moved = selected_columns(spec, columns.get(spec.source, []))
        out[spec.source] = (rows, item_bytes(spec, contract, row_bytes, moved))
    return out


def table_write_rate(contract: Contract, spec: TableSpec, default: float) -> float:
    """The write units a second a table's writes reach: its contract cap in units when it has
    one, else `default` (a cap given as a share of provisioned capacity needs the table's
    capacity, which the estimate does not read: give --write-rate)."""
    table = contract.dynamo_tables.get(spec.target_table)
    rate = table.write_rate if table else None
    return rate.units_per_second if rate and rate.units_per_second else default


def for_contract(
    conn,
    contract: Contract,
    *,
    write_rate: float = DEFAULT_WRITE_RATE,
    sizes: dict[str, tuple[int, int]] | None = None,
) -> list[Estimate]:
    """Per source table, both ways into its DynamoDB target table, each table priced and
    timed as if imported alone (`per_target` sums them with one import start-up a table).
    `sizes`: `table_sizes` already read, else read here."""
    sizes = sizes if sizes is not None else table_sizes(conn, contract)
    out = []
    for spec in contract.tables:
        rows, item = sizes[spec.source]
        table = contract.dynamo_tables.get(spec.target_table)
        out.append(
            estimate(
                rows,
                item,
                name=spec.source,
                target_table=spec.target_table,
                gsis=len(table.gsis) if table else 0,
                write_rate=table_write_rate(contract, spec, write_rate),
                load=table.load if table else "write",
            )
        )
    return out


def per_target(
    estimates: list[Estimate], *, write_rate: float = DEFAULT_WRITE_RATE
) -> list[Estimate]:
    """The source tables' estimates summed per target table, with one import start-up each."""
    out = []
    for target in dict.fromkeys(e.target_table for e in estimates):
        part = [e for e in estimates if e.target_table == target]
        rows = sum(e.rows for e in part)
        size = sum(e.rows * e.item_bytes for e in part)
        write = Way(sum(e.write.cost for e in part), sum(e.write.seconds for e in part))
        imp = by_import(1, size) if size else by_import(0, 0)
        out.append(
            Estimate(
                f"{target} (all)",
                target,
                rows,
                round(size / rows) if rows else 0,
                part[0].gsis,
                write,
                imp,
                part[0].load,
            )
        )
    return out


def paths_for_contract(
    contract: Contract,
    sizes: dict[str, tuple[int, int]],
    *,
    write_rate: float = DEFAULT_WRITE_RATE,
    stack: Stack = STACK,
) -> list[PathEstimate]:
    """Per source table, the path the plan would take (as stages.plan_run chooses it: the
    table's "path", else bulk above the contract's bulk_threshold_rows), priced and timed as
    if the table ran alone. `sizes`: from `table_sizes`."""
    out = []
    for spec in contract.tables:
        rows, record = sizes[spec.source]
        if spec.path:
            path, why = spec.path, f'the contract says "path": "{spec.path}"'
        else:
            above = rows > contract.bulk_threshold_rows
            path = "bulk" if above else "lambda"
            why = (
                f"{rows:,} rows {'>' if above else '<='} bulk_threshold_rows "
                f"{contract.bulk_threshold_rows:,}"
            )
        table = contract.dynamo_tables.get(spec.target_table)
        out.append(
            path_estimate(
                path,
                rows,
                record,
                name=spec.source,
                target_kind=contract.target_kind,
                target_table=spec.target_table,
                load=table.load
                if table
                else ("write" if contract.target_kind == "dynamodb" else ""),
                gsis=len(table.gsis) if table else 0,
                page_size=spec.page_size,
                write_rate=table_write_rate(contract, spec, write_rate),
                stack=stack,
                chosen=True,
                why=why,
            )
        )
    return out


def both_paths(
    rows: int,
    item_bytes: int,
    *,
    write_rate: float = DEFAULT_WRITE_RATE,
    stack: Stack = STACK,
    name: str = "(--rows)",
) -> list[PathEstimate]:
    """`rows` items of `item_bytes` into DynamoDB by writes, on both paths: the one the plan
    would take by the stack's bulk threshold first."""
    above = rows > stack.bulk_threshold_rows
    why = (
        f"{rows:,} rows {'>' if above else '<='} bulk_threshold_rows {stack.bulk_threshold_rows:,}"
    )
    chosen = "bulk" if above else "lambda"
    return [
        path_estimate(
            path,
            rows,
            item_bytes,
            name=name,
            write_rate=write_rate,
            stack=stack,
            chosen=path == chosen,
            why=why,
        )
        for path in (chosen, "lambda" if above else "bulk")
    ]


# ---------------------------------------------------------------- text


def money(usd: float) -> str:
    return f"${usd:,.2f}" if usd >= 0.01 or usd == 0 else f"${usd:.6f}"


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.1f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _n(count: int, thing: str) -> str:
    return f"{count:,} {thing}{'s' * (count != 1)}"


def _qty(x: float) -> str:
    if x == int(x):
        return f"{int(x):,}"
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.2f}" if x >= 1 else f"{x:.3g}"


def price_table() -> list[str]:
    out = [f"Price table ({PRICES_REGION} list prices; free tiers left out):"]
    for as_of in dict.fromkeys(p.as_of for p in PRICES.values()):
        out.append(f"  as of {as_of}:")
        out += [
            f"    {name:<17} {p.text()}; {p.source}"
            for name, p in PRICES.items()
            if p.as_of == as_of
        ]
    return out


def path_assumptions(stack: Stack = STACK) -> list[str]:
    dpu, vcpus = GLUE_WORKER_TYPES[stack.glue_worker_type]
    mem, batch = stack.memory_mb, stack.batch_size
    return [
        f"Stack (template.yaml's defaults, or the flags): functions of "
        f"{'/'.join(str(mem[s]) for s in STAGE_FUNCTIONS)} MB and SQS batches of "
        f"{'/'.join(str(batch[s]) for s in STAGE_FUNCTIONS)} for extract/transform/load, "
        f"ExtractConcurrency {stack.extract_concurrency}, LoadConcurrency "
        f"{stack.load_concurrency}, PollSeconds {stack.poll_seconds}, pages of "
        f"{stack.page_size:,} rows and bulk_threshold_rows {stack.bulk_threshold_rows:,} where "
        f"a contract sets none; the bulk job on {stack.glue_workers} {stack.glue_worker_type} "
        f"workers ({dpu} DPU, {vcpus} vCPU each).",
        "Lambda path: a page's seconds in a stage are its rows over the stage's rows per "
        "CPU-second above, at the function's share of a vCPU (memory / "
        f"{LAMBDA_MB_PER_VCPU:,} MB, at most 1), plus {PAGE_REQUEST_SECONDS:g} s of S3 and "
        "manifest requests (an assumption); a load also waits for its share of the target's "
        "rate, and Lambda bills the wait: DynamoDB, the write rate / LoadConcurrency; MySQL, "
        f"{MYSQL_TARGET_ROWS_PER_SECOND:,} rows/s for all loads together (what the bench's one "
        "loader reached into a 2-core local MariaDB: a larger server takes more). Pages flow at "
        "the pace of the slower of extract and load; transform has no cap. Not modelled: the "
        "source server's own limit, cold starts, retries.",
        "Bulk path: "
        + ", ".join(f"{n:,} rows/s into {k}" for k, n in BULK_ROWS_PER_TASK_SECOND.items())
        + " per Spark task, one task per vCPU of every worker but the driver's (`python -m "
        "bench.bulk`, on 2 cores it shared with the database, halved: an assumption for "
        f"Glue), after {GLUE_START_SECONDS} s of start-up, billed per second with a "
        f"{GLUE_MIN_BILLED_SECONDS} s minimum; or the write rate when that is slower.",
        "Not counted: S3 storage past a day (staged pages are kept RunDataRetentionDays, 30 by "
        "default); the SQS long polls of idle queues (cents a day while deployed); the "
        "orchestration functions' GB-seconds; CloudWatch logs and metrics; data transfer and "
        'networking (README, "What it costs").',
    ]


def assumptions(write_rate: float = DEFAULT_WRITE_RATE, stack: Stack | None = None) -> list[str]:
    """The assumptions of the two ways into DynamoDB; with `stack`, those of the paths too and
    the price table."""
    ways = [
        f"Prices: {PRICES_REGION}, as of {PRICES_AS_OF}: on-demand writes "
        f"${WRITE_PRICE_PER_MILLION_UNITS:g} per million write request units, Import from S3 "
        f"${IMPORT_PRICE_PER_GB:g} per GB (10^9 bytes) of source data; check {PRICES_SOURCE}.",
        f"Durations of the loading only (both ways extract and transform alike): writes at "
        f"{write_rate:,.0f} write units a second; an import at {IMPORT_GB_PER_HOUR:g} GB an hour "
        f"after {IMPORT_SETUP_SECONDS // 60} min of start-up (an assumption: AWS publishes no "
        "import throughput).",
        "Lambda compute (extract, transform, and the writes' client CPU; the same for both "
        "ways but the writer): rows per CPU-second "
        + ", ".join(f"{stage} {n:,}" for stage, n in ROWS_PER_CPU_SECOND.items())
        + f" (measured by `make bench`), billed at ${LAMBDA_PRICE_PER_GB_SECOND:.10f} per "
        f"GB-second with a vCPU per {LAMBDA_MB_PER_VCPU:,} MB.",
    ]
    return ways if stack is None else ways + path_assumptions(stack) + price_table()


def render_paths(paths: list[PathEstimate]) -> list[str]:
    out = []
    for p in paths:
        mark = "the plan's path" if p.chosen else "not the plan's path"
        out.append(
            f"  {p.name}: {p.path} path ({mark}: {p.why}) into {p.target}, {p.rows:,} rows "
            f"of {p.item_bytes:,} B in {_n(p.pages, 'page')}"
        )
        for line in p.lines:
            amount = f"{_qty(line.quantity)} {line.unit}" if line.unit else ""
            row = f"    {line.what:<18} {amount:>26} {money(line.cost):>10}  {line.note}"
            out.append(row.rstrip())
        out.append(
            f"    {'total':<18} {'':>26} {money(p.cost):>10}  in {duration(p.seconds)}, "
            f"paced by {p.bound}"
        )
        out.append("")
    chosen = [p for p in paths if p.chosen]
    if len(chosen) > 1:
        longest = max(p.seconds for p in chosen)
        out.append(
            f"  all tables: {money(sum(p.cost for p in chosen))}; they share the workers, so "
            f"between {duration(longest)} and {duration(sum(p.seconds for p in chosen))}"
        )
        out.append("")
    return out


def render(
    rows: list[Estimate],
    totals: list[Estimate] | None = None,
    write_rate: float = DEFAULT_WRITE_RATE,
    paths: list[PathEstimate] | None = None,
    stack: Stack = STACK,
) -> str:
    """The ways into DynamoDB (`rows`, `totals`: none for a MySQL target), each table's path
    (`paths`), then the assumptions."""
    lines = []
    if rows:
        lines += _render_ways(rows, totals)
    if paths:
        lines += render_paths(paths)
    lines += [f"  {a}" for a in assumptions(write_rate, stack if paths else None)]
    return "\n".join(lines) + "\n"


def _render_ways(rows: list[Estimate], totals: list[Estimate] | None) -> list[str]:
    head = (
        f"  {'table':<28} {'target':<20} {'rows':>15} {'item B':>7}  "
        f"{'write cost':>12} {'write time':>11}  {'import cost':>12} {'import time':>11}  "
        "cheaper  faster  contract"
    )
    lines = [head, "  " + "-" * (len(head) - 2)]
    for e in [*rows, *(totals or [])]:
        lines.append(
            f"  {e.name:<28.28} {e.target_table:<20.20} {e.rows:>15,} {e.item_bytes:>7,}  "
            f"{money(e.write.cost):>12} {duration(e.write.seconds):>11}  "
            f"{money(e.import_.cost):>12} {duration(e.import_.seconds):>11}  "
            f"{e.cheaper:<7}  {e.faster:<6}  {e.load or '-'}"
        )
    lines.append("")
    for t in totals or rows:
        saved = abs(t.write.cost - t.import_.cost)
        lines.append(
            f"  {t.target_table or t.name}: {t.cheaper} is cheaper by {money(saved)} "
            f"({money(t.write.cost)} by writes, {money(t.import_.cost)} by import); "
            f"{t.faster} is faster ({duration(t.write.seconds)} by writes, "
            f"{duration(t.import_.seconds)} by import)"
            + (f"; the contract says {t.load!r}" if t.target_table and t.load else "")
        )
        w, i = t.compute("write"), t.compute("import")
        lines.append(
            f"    Lambda compute besides: {money(w.cost)} by writes ({duration(w.seconds)} of "
            f"CPU), {money(i.cost)} by import ({duration(i.seconds)} of CPU); CPU time only"
        )
    lines.append("")
    return lines
