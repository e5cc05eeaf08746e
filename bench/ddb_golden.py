"""Golden outputs of the DynamoDB transform, to prove a faster one makes the same items.

    .venv/bin/python -m bench.ddb_golden prep   [--dir DIR] [--rows N]   # pages + contracts
    .venv/bin/python -m bench.ddb_golden record [--dir DIR] [--reference FILE]   # outputs
    .venv/bin/python -m bench.ddb_golden check  [--dir DIR]              # same as recorded?

`prep` stages real pages from MariaDB (the bench table, all of Sakila, the type matrix of
tests/integration/test_type_fidelity.py) and synthetic pages of edge cases (JSON numbers,
control characters, duplicate keys, NaN, text typed as numbers, user-transform kinds) as Arrow
files, each with the contracts it runs under. `record` keeps what `to_dynamodb_items` makes of
every (page, contract): item lines, rejected keys and reasons, and the item keys
(`with_keys=True`), with sluice.transform or the module of `--reference` (a copy of
transform.py as it was, e.g. `git show HEAD:layers/core/sluice/transform.py > /tmp/t.py`);
`check` runs sluice.transform again and compares byte for byte.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
from sluice import db, source, staging, transform
from sluice.contract import parse
from sluice.keys import cut_pages
from sluice.types import Column, arrow_schema

from . import calls, data
from .common import ROOT, ensure_server, log, server, sql

DEFAULT_DIR = Path("/tmp/sluice-ddb-golden")


def _ddb(src: str, tables: list[dict], decl: dict, **target) -> dict:
    return {
        "version": 1,
        "source": {"database": src},
        "target": {"kind": "dynamodb", "tables": decl, **target},
        "tables": tables,
    }


def _stage_table(raw, database: str, name: str, key: list[str], page_size: int, out: Path):
    """Every page of one table or view as Arrow files: out/<name>.pNNNN.arrow."""
    table = source.introspect(raw, database, only=[name])[name]
    files = []
    for r in cut_pages(raw, database, name, key, page_size):
        lo, hi = source.decode_key(r.lo), source.decode_key(r.hi)
        body, _ = calls.extract(raw, database, table, key, lo, hi)
        f = out / f"{name}.p{r.page:04d}.arrow"
        f.write_bytes(body)
        files.append(f.name)
    return files


# ---------------------------------------------------------------- prep


def prep_bench(info, prefix: str, out: Path, rows: int) -> list[dict]:
    database = prefix + "bench"
    data.create(info, database, rows)
    raw = db.connect(info.with_database(database), raw=True)
    try:
        files = _stage_table(raw, database, data.TABLE, ["id"], 20_000, out)
    finally:
        raw.close()
    sql(info, f"DROP DATABASE IF EXISTS `{database}`")
    t = data.TABLE
    base = {"source": t, "key": ["id"]}
    two = {"bench": {"partition_key": "PK", "sort_key": "SK"}}
    one = {"bench": {"partition_key": "PK"}}
    contracts = {
        "bench": _ddb(
            database,
            [
                {
                    **base,
                    "target": {
                        "table": "bench",
                        "partition_key": "CUSTOMER#{customer_id}",
                        "sort_key": "ORDER#{id}",
                    },
                }
            ],
            two,
        ),
        "bench-null-millis-filters": _ddb(
            database,
            [
                {
                    **base,
                    "columns": {"rename": {"status": "st", "note": "Note"}},
                    "target": {
                        "table": "bench",
                        "partition_key": "{currency|lower}#{customer_id}",
                        "sort_key": "{placed_at|date:%Y-%m}#{id}",
                        "attributes": {
                            "GSI1PK": "{status|upper}",
                            "GSI1SK": "{note|trim}",
                            "Y": "{placed_at|date:%Y}",
                        },
                        "types": {"amount": "string", "customer_id": "string"},
                    },
                }
            ],
            two,
            null_values="null",
            dates="epoch_millis",
        ),
        "bench-pk-only-dups": _ddb(
            database,
            [
                {
                    **base,
                    "columns": {"exclude": ["currency"]},
                    "target": {
                        "table": "bench",
                        "partition_key": "C#{customer_id}",
                        "types": {"note": "number", "attrs": "string", "status": "string_set"},
                    },
                }
            ],
            one,
            dates="epoch_seconds",
        ),
        "bench-include": _ddb(
            database,
            [
                {
                    **base,
                    "columns": {"include": ["amount", "attrs"]},
                    "target": {"table": "bench", "partition_key": "{id}", "sort_key": "{status}"},
                }
            ],
            two,
        ),
    }
    return [
        {"page": f, "table": t, "contract": name, "doc": doc}
        for f in files
        for name, doc in contracts.items()
    ]


def prep_sakila(info, prefix: str, out: Path) -> list[dict]:
    from tests.e2e.conftest import _SAKILA_EXTRAS, _sakila_script

    database = prefix + "sakila"
    env = dict(os.environ)
    if info.password:
        env["MYSQL_PWD"] = info.password
    subprocess.run(
        [
            "mariadb",
            f"--host={info.host}",
            f"--port={info.port}",
            f"--user={info.user}",
            "--default-character-set=utf8mb4",
            "--batch",
        ],
        input=_sakila_script(ROOT.parent / "shared" / "datasets" / "sakila", database),
        env=env,
        check=True,
        capture_output=True,
    )
    sql(info, *_SAKILA_EXTRAS, database=database)
    from sluice import cli

    url = f"mysql://{info.user}@{info.host}:{info.port}/{database}"
    os.environ.setdefault("SLUICE_SOURCE_URL", url)
    path = out / "sakila-contract.json"
    assert cli.main(["init", "--source", url, "--target", "dynamodb", "-o", str(path)]) == 0
    doc = json.loads(path.read_text())
    variant = json.loads(json.dumps(doc))
    variant["target"]["null_values"] = "null"
    variant["target"]["dates"] = "epoch_millis"
    cases = []
    raw = db.connect(info.with_database(database), raw=True)
    try:
        for spec in doc["tables"]:
            files = _stage_table(raw, database, spec["source"], spec["key"], 5_000, out)
            for f in files:
                for name, d in (("sakila", doc), ("sakila-null-millis", variant)):
                    cases.append({"page": f, "table": spec["source"], "contract": name, "doc": d})
    finally:
        raw.close()
    sql(info, f"DROP DATABASE IF EXISTS `{database}`")
    return cases


def prep_matrix(info, prefix: str, out: Path) -> list[dict]:
    from tests.integration.test_type_fidelity import (
        MATRIX_DYNAMODB_TABLES,
        MATRIX_VIEW_DDL,
        fill_matrix,
    )

    database = prefix + "matrix"
    sql(info, f"DROP DATABASE IF EXISTS `{database}`", f"CREATE DATABASE `{database}`")
    conn = db.connect(info.with_database(database))
    try:
        with conn.cursor() as cur:
            fill_matrix(cur)
            cur.execute(MATRIX_VIEW_DDL)
    finally:
        conn.close()
    raw = db.connect(info.with_database(database), raw=True)
    try:
        files = {
            t: _stage_table(raw, database, t, ["id"], 10, out)
            for t in ("type_matrix", "matrix_view")
        }
    finally:
        raw.close()
    sql(info, f"DROP DATABASE IF EXISTS `{database}`")
    two = {"matrix": {"partition_key": "PK", "sort_key": "SK"}}
    tables = MATRIX_DYNAMODB_TABLES
    overrides = {
        "vc": "number",
        "tx": "number",
        "c": "binary",
        "st": "string",
        "bl": "string",
        "d10": "string",
        "dt": "epoch_seconds",
        "dtm": "epoch_millis",
        "ts": "iso8601",
        "tm": "string",
    }
    odd = [
        {
            "source": "type_matrix",
            "key": ["id"],
            "target": {
                "table": "matrix",
                "partition_key": "{vc|upper}{bn}",
                "sort_key": "{dtm|date:%Y-%m-%dT%H}|{ts|date:%j}|{dt|date:%Y}",
                "attributes": {"A": "{tx|trim|lower}", "B": "{st}#{en}#{js}"},
                "types": overrides,
            },
        }
    ]
    contracts = {
        "matrix": _ddb(database, tables, two),
        "matrix-null-seconds": _ddb(
            database, tables, two, null_values="null", dates="epoch_seconds"
        ),
        "matrix-odd-templates": _ddb(database, odd, two, null_values="null", dates="epoch_millis"),
        "matrix-clash": _ddb(
            database,
            [
                {
                    "source": "type_matrix",
                    "key": ["id"],
                    "columns": {"include": ["en"]},
                    "target": {"table": "clash", "partition_key": "EN#{en}"},
                }
            ],
            {"clash": {"partition_key": "PK"}},
        ),
    }
    cases = []
    for name, doc in contracts.items():
        for t in {x["source"] for x in doc["tables"]}:
            cases += [{"page": f, "table": t, "contract": name, "doc": doc} for f in files[t]]
    return cases


def _col(name, data_type, column_type, *, nullable=True, precision=None, scale=None, **kw):
    return Column.from_information_schema(
        name=name,
        data_type=data_type,
        column_type=column_type,
        nullable=nullable,
        precision=precision,
        scale=scale,
        datetime_precision=kw.get("datetime_precision"),
        charset=kw.get("charset", "utf8mb4"),
        is_json=data_type == "json",
    )


JSON_CASES = [
    '{"a":1,"a":2}',
    '{"b":{"a":[1,{"c":"d"}]},"a":0}',
    '{"x":1,"y":2,"x":{"z":3},"w":[]}',
    "[]",
    "{}",
    '"str"',
    '"  spaced\\tstring\\u0007"',
    "12",
    "-0",
    "0",
    "1.50",
    "1.5e3",
    "1E400",
    "1e-131",
    "1e-130",
    "-1e-130",
    "9.9999999999999999999999999999999999999E+125",
    "1E+126",
    "123456789012345678901234567890123456789",
    "12345678901234567890123456789012345678",
    "1.000000000000000000000000000000000000000",
    "0.00000000000000000000000000000000000001",
    "0.000000000000000000000000000000000000001234",
    "-1.7976931348623157e308",
    "0.1000000000000000055511151231257827",
    "NaN",
    "Infinity",
    "-Infinity",
    "true",
    "false",
    "null",
    "[null,true,false,[],{},[[1]],-2.5e-7]",
    '{"k\\u0000":"\\u0001\\t\\"\\\\/","":""}',
    '{"emoji":"😀","esc":"\\ud83d\\ude00","ü":"日本"}',
    '{"a":[1,2,{"b":[{"c":NaN}]}]}',
    '{"n":1e999}',
    "not json",
    '{"a":1',
    '  {"x" : 1 , "y" : [ 1 , 2 ] }  ',
    '{"a":1} x',
    "",
    '{"deep":' * 30 + "1" + "}" * 30,
    '{"big":123456789012345678901234567890,"dec":0.1000000000000000055511151231257827}',
    '[1, -2.5e-7, "x", true, false, null, 18446744073709551616]',
    '{"line\\nkey":"a\\rb","tab":"\\t","bs":"\\\\","q":"\\"","sl":"\\/","ctl":"\\u001f\\u007f"}',
    '{"u":"\\u2028\\u2029","nbsp":"\\u00a0"}',
]

TEXTS = [
    "plain",
    "",
    'quote " and backslash \\',
    "tab\there\nnewline\rcr",
    "ctrl\x01\x1f\x0b\x0c\x00",
    "del\x7f and \u2028 \u2029",
    "emoji 😀 ünïcödé 日本",
    " lead and trail ",
    None,
]

NUMBER_TEXTS = [
    "1",
    "-1",
    "+1",
    "1.5",
    ".5",
    "5.",
    "-0",
    "1e5",
    "1E+126",
    "1e-131",
    "abc",
    "",
    " 1",
    "1 ",
    "123456789012345678901234567890123456789",
    "0.000000000000000000000000000000000000001234",
    "00012",
    "1.0000000000000000000000000000000000000000",
    None,
]


def prep_synthetic(out: Path) -> list[dict]:
    n = 60
    cols = [
        _col("id", "bigint", "bigint", nullable=False),
        _col("grp", "int", "int"),
        _col("js", "json", "json"),
        _col("s", "varchar", "varchar(100)"),
        _col("num", "varchar", "varchar(100)"),
        _col("d", "decimal", "decimal(65,30)", precision=65, scale=30),
        _col("d38", "decimal", "decimal(38,2)", precision=38, scale=2),
        _col("f", "double", "double"),
        _col("f4", "float", "float"),
        _col("st", "set", "set('a','b','c,')"),
        _col("bin", "varbinary", "varbinary(10)", charset=None),
        _col("dt", "date", "date"),
        _col("dtm", "datetime", "datetime(6)"),
        _col("ts", "timestamp", "timestamp(3)"),
        _col("tm", "time", "time"),
        _col("yr", "year", "year"),
        _col("bt", "bit", "bit(8)"),
        _col("big", "longtext", "longtext"),
    ]
    floats = [float("nan"), float("inf"), float("-inf"), 1e-200, 1e200, -0.0, 5e-324, 0.1, None]
    decimals = [
        Decimal("0"),
        Decimal("-0.000000000000000000000000000001"),
        Decimal("12345678901234567890123456789012345.123456789012345678901234567890"),
        Decimal("1234.5"),
        None,
    ]
    dates = ["2024-02-29", "0000-00-00", "1000-01-01", "9999-12-31", "2024-00-10", None]
    dtms = [
        "2024-02-29 12:34:56.500000",
        "0000-00-00 00:00:00",
        "1969-12-31 23:59:59.999999",
        "9999-12-31 23:59:59.999999",
        "2024-01-01 00:00:00",
        None,
    ]
    rows = []
    for i in range(n):
        rows.append(
            {
                "id": 10**12 + i * 7,
                "grp": i % 11 if i % 13 else None,
                "js": JSON_CASES[i % len(JSON_CASES)] if i % 17 else None,
                "s": TEXTS[i % len(TEXTS)],
                "num": NUMBER_TEXTS[i % len(NUMBER_TEXTS)],
                "d": decimals[i % len(decimals)],
                "d38": None if i % 4 == 0 else Decimal(f"{i}.{i % 100:02d}"),
                "f": floats[i % len(floats)],
                "f4": floats[(i + 3) % len(floats)],
                "st": ["a", "", "a,b", "c,", None][i % 5],
                "bin": [b"\x00\xff", b"", b'\\"', None][i % 4],
                "dt": dates[i % len(dates)],
                "dtm": dtms[i % len(dtms)],
                "ts": [d if d is None else d[:23] for d in dtms][(i + 1) % len(dtms)],
                "tm": ["-838:59:59", "00:00:00", None][i % 3],
                "yr": [2024, 0, None][i % 3],
                "bt": [0, 255, None][i % 3],
                "big": "x" * (MAX + 1) if i in (5, 40) else ("y" * 100 if i % 2 else None),
            }
        )
    page = pa.Table.from_pylist(rows, schema=arrow_schema(cols))
    # As a user transform may leave it: a bool column, large strings, several chunks.
    extra = pa.table(
        {
            "flag": pa.array([None if i % 7 == 0 else i % 2 == 0 for i in range(n)], pa.bool_()),
            "ltext": pa.array([TEXTS[i % len(TEXTS)] for i in range(n)], pa.large_string()),
            "ratio": pa.array([floats[i % len(floats)] for i in range(n)], pa.float64()),
            "count": pa.array([i * 3 if i % 5 else None for i in range(n)], pa.int64()),
            "dec": pa.array([Decimal(i) / 8 for i in range(n)], pa.decimal128(10, 3)),
            "lbin": pa.array([bytes([i]) * 3 for i in range(n)], pa.large_binary()),
            "lnote": pa.array(
                [
                    ['say "hi"', "ctl\x01", None][i % 3] if i % 20 == 3 else f"n{i}"
                    for i in range(n)
                ],
                pa.large_string(),
            ),
        }
    )
    user = pa.concat_tables([page.slice(0, 25), page.slice(25)])  # two chunks
    for name in extra.column_names:
        user = user.append_column(name, extra.column(name))
    # Few rejects: every JSON case, text and SET value arrives (or is refused) on its own.
    m = 3 * len(JSON_CASES)
    clean = pa.Table.from_pylist(
        [
            {
                "id": i,
                "grp": i % 5,
                "js": JSON_CASES[i % len(JSON_CASES)],
                "s": TEXTS[i % len(TEXTS)],
                "st": ["a", "", "a,b", "c,", None][i % 5],
                "bin": [b"\x00\xff", b"", b'\\"', None][i % 4],
                "dtm": dtms[i % len(dtms)],
            }
            for i in range(m)
        ],
        schema=arrow_schema(
            [c for c in cols if c.name in ("id", "grp", "js", "s", "st", "bin", "dtm")]
        ),
    )

    # JSON shapes: one that most rows share, others, and values no shape may take.
    def mixed(i: int) -> str | None:
        k = i % 10
        if i == 0:
            return '{"a":1,"a":2}'
        if k < 6:
            return f'{{"sku": "S-{i}", "qty": {i % 7}, "price": {i / 100}}}'
        if k == 6:
            return f'{{"sku":"S-{i}","qty":"{i}","price":null,"tags":["a",{i}]}}'
        if k == 7:
            return [
                '{"sku": "q\\"uote", "qty": 1, "price": 1}',
                '{"sku": "\\u0041", "qty": 1, "price": 1}',
            ][i % 2]
        if k == 8:
            return [
                '{"sku": "S", "qty": 123456789012345678901234567890123456789, "price": 1}',
                '{"sku": "S", "qty": 1e5, "price": 2}',
                '{"sku": "S", "qty": NaN, "price": 2}',
            ][i % 3]
        return None if i % 20 == 9 else JSON_CASES[i % len(JSON_CASES)]

    jcols = [c for c in cols if c.name in ("id", "js")]
    rare = ["tab\tin", 'a "quote"', "ctl\x01", "back\\slash"]
    shapes = pa.Table.from_pylist(
        [
            {"id": i, "js": mixed(i), "s": rare[i % 4] if i % 50 == 7 else f"s{i % 9}"}
            for i in range(2000)
        ],
        schema=arrow_schema([c for c in cols if c.name in ("id", "js", "s")]),
    )
    varied = pa.Table.from_pylist(
        [{"id": i, "js": f'{{"k{i % 300}": {i}}}' if i % 50 else None} for i in range(1000)],
        schema=arrow_schema(jcols),
    )
    files = []
    for name, tbl in (
        ("synthetic", page),
        ("user", user),
        ("clean", clean),
        ("shapes", shapes),
        ("varied", varied),
    ):
        sink = pa.BufferOutputStream()
        with pa.ipc.new_file(sink, tbl.schema) as w:
            w.write_table(tbl)
        (out / f"{name}.arrow").write_bytes(sink.getvalue().to_pybytes())
        files.append(f"{name}.arrow")

    two = {"synth": {"partition_key": "PK", "sort_key": "SK"}}
    one = {"synth": {"partition_key": "PK"}}

    def doc(target: dict, decl=two, columns=None, **kw):
        t = {"source": "synth", "key": ["id"], "target": {"table": "synth", **target}}
        if columns:
            t["columns"] = columns
        return _ddb("synth", [t], decl, **kw)

    contracts = {
        "synth-default": doc({"partition_key": "ID#{id}", "sort_key": "S"}),
        "synth-null": doc({"partition_key": "{id}", "sort_key": "{dtm}"}, null_values="null"),
        "synth-grp-dups": doc({"partition_key": "G#{grp}"}, one, dates="epoch_seconds"),
        "synth-grp-sk-dups": doc(
            {"partition_key": "G#{grp}", "sort_key": "{s}"}, dates="epoch_millis"
        ),
        "synth-templates": doc(
            {
                "partition_key": "{s|trim|upper}#{bin}",
                "sort_key": "{dtm|date:%Y/%m/%d %H:%M:%S}{dt|date:%Y}",
                "attributes": {"J": "{js}", "N": "{num}", "T": "{ts}", "E": "{tm}"},
                "types": {"num": "number", "s": "number", "js": "string", "bin": "string"},
            }
        ),
        "synth-types": doc(
            {
                "partition_key": "{id}",
                "types": {
                    "num": "number",
                    "st": "string",
                    "d": "string",
                    "f": "string",
                    "dt": "epoch_millis",
                    "dtm": "epoch_seconds",
                    "ts": "epoch_millis",
                    "tm": "string",
                    "s": "binary",
                },
            },
            one,
        ),
        "synth-constant-key": doc({"partition_key": "SAME"}, one),
        "synth-empty-key": doc({"partition_key": "{s}", "sort_key": "{num}"}),
        "synth-quoted-literal": doc(
            {"partition_key": 'Q"{id}', "sort_key": "{s|lower}\t{id}", "attributes": {"X": "{s}"}}
        ),
    }
    user_contracts = {
        "user-default": doc({"partition_key": "U#{id}", "sort_key": "{flag}"}),
        "user-null": doc(
            {"partition_key": "{ltext}{id}", "sort_key": "{lbin}", "types": {"ltext": "number"}},
            null_values="null",
        ),
    }
    cases = [
        {"page": "synthetic.arrow", "table": "synth", "contract": k, "doc": v}
        for k, v in contracts.items()
    ]
    cases += [
        {"page": f"{p}.arrow", "table": "synth", "contract": k, "doc": v}
        for p in ("clean", "shapes", "varied")
        for k, v in contracts.items()
    ]
    cases += [
        {"page": "user.arrow", "table": "synth", "contract": k, "doc": v}
        for k, v in {**contracts, **user_contracts}.items()
    ]
    return cases


MAX = transform.MAX_ITEM_BYTES


def prep(out: Path, rows: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    info = server()
    os.environ.setdefault("SLUICE_MYSQL_URL", f"mysql://{info.user}@{info.host}:{info.port}")
    ensure_server(info)
    prefix = f"sluice_golden_{os.getpid()}_"
    try:
        cases = prep_synthetic(out)
        log("golden: bench table ...")
        cases += prep_bench(info, prefix, out, rows)
        log("golden: type matrix ...")
        cases += prep_matrix(info, prefix, out)
        log("golden: Sakila ...")
        cases += prep_sakila(info, prefix, out)
    finally:
        for what in ("bench", "sakila", "matrix"):
            sql(info, f"DROP DATABASE IF EXISTS `{prefix}{what}`")
    (out / "cases.json").write_text(json.dumps(cases))
    log(f"golden: {len(cases)} cases in {out}")


# ---------------------------------------------------------------- record / check


def load_reference(path: str):
    """A transform module from a file (the code as it was), imported inside the sluice
    package so that its relative imports resolve."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("sluice._transform_reference", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def run_cases(out: Path, transform=transform) -> dict:
    cases = json.loads((out / "cases.json").read_text())
    pages: dict[str, pa.Table] = {}
    contracts: dict[str, object] = {}
    results = {}
    for c in cases:
        if c["page"] not in pages:
            body = (out / c["page"]).read_bytes()
            pages[c["page"]] = (
                staging.read_arrow(body)
                if c["page"].count(".") > 1
                else pa.ipc.open_file(pa.BufferReader(body)).read_all()
            )
        page = pages[c["page"]]
        if c["contract"] not in contracts:
            contracts[c["contract"]] = parse(c["doc"])
        contract = contracts[c["contract"]]
        spec = contract.table(c["table"])
        plan = transform.item_plan(contract, spec, page.column_names, transform.page_kinds(page))
        try:
            lines, rejected, keys = transform.to_dynamodb_items(page, plan, with_keys=True)
            lines2, rejected2 = transform.to_dynamodb_items(page, plan)
            assert lines2.equals(lines) and rejected2.reasons == rejected.reasons
            got = (
                lines.type,
                lines.to_pylist(),
                rejected.keys,
                rejected.reasons,
                keys.schema,
                keys.to_pydict(),
            )
        except Exception as exc:  # the error itself is part of the behaviour
            got = ("error", type(exc).__name__, str(exc))
        results[(c["page"], c["contract"], c["table"])] = got
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ddb_golden")
    p.add_argument("what", choices=("prep", "record", "check"))
    p.add_argument("--dir", default=str(DEFAULT_DIR))
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--reference", help="record with the transform module in this file")
    args = p.parse_args(argv)
    out = Path(args.dir)
    if args.what == "prep":
        prep(out, args.rows)
        return 0
    module = load_reference(args.reference) if args.reference else transform
    results = run_cases(out, module)
    golden = out / "golden.pkl"
    if args.what == "record":
        golden.write_bytes(pickle.dumps(results))
        errors = sum(1 for v in results.values() if v[0] == "error")
        items = sum(len(v[1]) for v in results.values() if v[0] != "error")
        rejects = sum(len(v[3]) for v in results.values() if v[0] != "error")
        log(
            f"golden: recorded {len(results)} cases: {items:,} items, {rejects:,} rejects, "
            f"{errors} errors"
        )
        return 0
    want = pickle.loads(golden.read_bytes())  # noqa: S301 - our own file
    bad = [k for k, w in want.items() if results.get(k) != w]
    for k in bad[:5]:
        print(f"DIFFERENT: {k}")
        _explain(want[k], results.get(k))
    print(f"golden: {len(want) - len(bad)} of {len(want)} cases identical", end="")
    print(f", {len(bad)} DIFFERENT" if bad else "")
    return 1 if bad else 0


def _explain(want, got) -> None:
    """The first difference of one case."""
    if got is None or want[0] == "error" or got[0] == "error":
        print(f"  want {want if want[0] == 'error' else 'no error'}")
        print(f"  got  {got if got is None or got[0] == 'error' else 'no error'}")
        return
    names = ("type", "lines", "rejected keys", "reasons", "keys schema", "item keys")
    for name, a, b in zip(names, want, got, strict=True):
        if a == b:
            continue
        print(f"  {name} differ")
        if isinstance(a, dict):
            a, b = list(zip(*a.values(), strict=True)), list(zip(*b.values(), strict=True))
        if isinstance(a, list):
            j = next((j for j, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), None)
            if j is None:
                print(f"    lengths {len(a)} vs {len(b)}")
            else:
                print(f"    [{j}] want {a[j]!r:.300}\n    [{j}] got  {b[j]!r:.300}")
        else:
            print(f"    want {a}\n    got  {b}")


if __name__ == "__main__":
    raise SystemExit(main())
