"""What each way into DynamoDB costs and takes: BatchWriteItem ("write") or Import from S3.

The price table is here and nowhere else. Prices are us-east-1 list prices, from the text of
issue 8 ("New DynamoDB tables load through Import from S3"), which quotes the AWS pricing
pages as looked at in 2026: on-demand writes about $0.625 per million write request units,
Import from S3 about $0.15 per GB of (uncompressed) source data. They could not be read
from the AWS pages from here: check https://aws.amazon.com/dynamodb/pricing/on-demand/ for
your region before trusting a close call.

How each way is priced and timed:
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
that part, not a whole run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .contract import Contract, TableSpec
from .sql import q, qualified
from .transform import selected_columns

PRICES_REGION = "us-east-1"
PRICES_AS_OF = "2026 (issue 8's text; not re-read from the AWS pricing pages)"
PRICES_SOURCE = "https://aws.amazon.com/dynamodb/pricing/on-demand/"
WRITE_PRICE_PER_MILLION_UNITS = 0.625  # USD, on-demand write request units
IMPORT_PRICE_PER_GB = 0.15  # USD per GB of source data imported
GB = 10**9
WRITE_UNIT_BYTES = 1024

DEFAULT_WRITE_RATE = 4_000  # write units a second: what a new on-demand table accepts at once
IMPORT_GB_PER_HOUR = 50.0  # assumption: AWS publishes no figure
IMPORT_SETUP_SECONDS = 300  # assumption: table creation and start-up of even a small import
VIEW_SAMPLE_ROWS = 1000


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
        }


def write_units(item_bytes: int, gsis: int = 0) -> int:
    """Write request units one item costs: a unit per started KB, again for each index."""
    return max(1, math.ceil(item_bytes / WRITE_UNIT_BYTES)) * (1 + gsis)


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


def for_contract(
    conn, contract: Contract, *, write_rate: float = DEFAULT_WRITE_RATE
) -> list[Estimate]:
    """Per source table, both ways into its DynamoDB target table, each table priced and
    timed as if imported alone (`per_target` sums them with one import start-up a table)."""
    columns = _columns(conn, contract.source_database)
    sizes = source_sizes(conn, contract, columns)
    out = []
    for spec in contract.tables:
        rows, row_bytes = sizes[spec.source]
        table = contract.dynamo_tables.get(spec.target_table)
        moved = selected_columns(spec, columns.get(spec.source, []))
        out.append(
            estimate(
                rows,
                item_bytes(spec, contract, row_bytes, moved),
                name=spec.source,
                target_table=spec.target_table,
                gsis=len(table.gsis) if table else 0,
                write_rate=write_rate,
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


def assumptions(write_rate: float = DEFAULT_WRITE_RATE) -> list[str]:
    return [
        f"Prices: {PRICES_REGION}, as of {PRICES_AS_OF}: on-demand writes "
        f"${WRITE_PRICE_PER_MILLION_UNITS:g} per million write request units, Import from S3 "
        f"${IMPORT_PRICE_PER_GB:g} per GB (10^9 bytes) of source data; check {PRICES_SOURCE}.",
        f"Durations of the loading only (both ways extract and transform alike): writes at "
        f"{write_rate:,.0f} write units a second; an import at {IMPORT_GB_PER_HOUR:g} GB an hour "
        f"after {IMPORT_SETUP_SECONDS // 60} min of start-up (an assumption: AWS publishes no "
        "import throughput).",
    ]


def render(
    rows: list[Estimate],
    totals: list[Estimate] | None = None,
    write_rate: float = DEFAULT_WRITE_RATE,
) -> str:
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
    lines.append("")
    lines += [f"  {a}" for a in assumptions(write_rate)]
    return "\n".join(lines) + "\n"
