"""Where each stage's time goes: py-spy samples of every stage, summarised per function.

    .venv/bin/python -m bench.profile [--rows N] [--page-size N] [--keep DIR]

Builds its own table (as `make bench` does), stages its pages once without the profiler,
then runs each stage over every page in a fresh process under `py-spy record` (import time
left out), and the whole local pipeline (both targets) under `py-spy record --gil`, so the
one core the local runtime's threads share is what is split up. Writes bench/PROFILE.md:
per profile, the share of samples by package and the top functions by own time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from .common import PY, ROOT, ensure_server, log, server, sql

PYSPY = str(Path(PY).parent / "py-spy")
RATE = 250
STAGES = ("extract", "transform-mysql", "transform-dynamodb", "load-mysql", "load-dynamodb")


# ---------------------------------------------------------------- the profiled processes


def _stage(stage: str, args: list[str]) -> None:
    """Run one stage over every page (in a process py-spy records)."""
    from sluice import db, source
    from sluice.contract import load_document, parse
    from sluice.keys import cut_pages

    from . import calls
    from .data import TABLE

    info = db.parse_url(os.environ["SLUICE_MYSQL_URL"])
    work = Path(args[0])
    if stage == "prep":  # not profiled: every page extracted and transformed, as files
        database, page_size = args[1], int(args[2])
        contracts = [parse(load_document(work / f"contract-{k}.json")) for k in ("mysql", "ddb")]
        raw = db.connect(info.with_database(database), raw=True)
        table = source.introspect(raw, database, only=[TABLE])[TABLE]
        for r in cut_pages(raw, database, TABLE, ["id"], page_size):
            lo, hi = source.decode_key(r.lo), source.decode_key(r.hi)
            body, _ = calls.extract(raw, database, table, ["id"], lo, hi)
            (work / f"p{r.page:04d}.extracted").write_bytes(body)
            out, _ = calls.transform_mysql(body, contracts[0].table(TABLE))
            (work / f"p{r.page:04d}.mysql").write_bytes(out)
            out, _ = calls.transform_dynamodb(body, contracts[1], contracts[1].table(TABLE))
            (work / f"p{r.page:04d}.ddb").write_bytes(out)
        return
    if stage == "extract":
        database, page_size = args[1], int(args[2])
        raw = db.connect(info.with_database(database), raw=True)
        table = source.introspect(raw, database, only=[TABLE])[TABLE]
        for r in cut_pages(raw, database, TABLE, ["id"], page_size):
            lo, hi = source.decode_key(r.lo), source.decode_key(r.hi)
            calls.extract(raw, database, table, ["id"], lo, hi)
        return
    suffix = {"transform-mysql": "extracted", "transform-dynamodb": "extracted"}.get(
        stage, "mysql" if stage == "load-mysql" else "ddb"
    )
    pages = [p.read_bytes() for p in sorted(work.glob(f"p*.{suffix}"))]
    if stage == "transform-mysql":
        spec = parse(load_document(work / "contract-mysql.json")).table(TABLE)
        for body in pages:
            calls.transform_mysql(body, spec)
    elif stage == "transform-dynamodb":
        contract = parse(load_document(work / "contract-ddb.json"))
        for body in pages:
            calls.transform_dynamodb(body, contract, contract.table(TABLE))
    elif stage == "load-mysql":
        database = args[1]
        conn = db.connect(info.with_database(database), local_infile=True)
        for body in pages:
            calls.load_mysql(conn, database, TABLE, body)
    elif stage == "load-dynamodb":
        writer = calls.stage_writer(args[1])
        for body in pages:
            calls.load_dynamodb(writer, "bench", body)


# ---------------------------------------------------------------- reading the samples

_FRAME = re.compile(r"^(?P<fn>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
_PACKAGES = (
    ("sluice/", "sluice"),
    ("bench/", "bench"),
    ("pymysql/", "pymysql"),
    ("pyarrow/", "pyarrow (Python side; C++ under its calls)"),
    ("botocore/", "botocore"),
    ("boto3/", "boto3"),
    ("urllib3/", "urllib3"),
    ("moto/", "moto (the emulator)"),
    ("werkzeug/", "werkzeug (moto)"),
    ("responses/", "responses (moto)"),
    ("aws_lambda_powertools/", "powertools"),
    ("http/client.py", "http.client"),
    ("json/", "json"),
    ("gzip.py", "gzip/zlib"),
    ("threading.py", "threading (waits)"),
    ("socket.py", "socket"),
    ("ssl.py", "ssl"),
)


def _package(file: str) -> str:
    for needle, name in _PACKAGES:
        if needle in file:
            return name
    return "Python stdlib / other" if "/lib/python" in file or file.startswith("<") else file


def _short(file: str) -> str:
    for marker in ("site-packages/", "layers/core/", "/lib/python3.11/", str(ROOT) + "/"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file


def read_raw(path: Path) -> list[tuple[list[str], int]]:
    """py-spy's raw (collapsed) output, without import-time stacks and without samples that
    caught no Python frame (interpreter start-up and exit, or no thread holding the GIL)."""
    out = []
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = stack.split(";")
        if not stack.strip() or any("_find_and_load" in f for f in frames):
            continue
        out.append((frames, int(n)))
    return out


def _where(frame: str) -> tuple[str, str, str]:
    m = _FRAME.match(frame)
    if not m:
        return frame, "", ""
    return m["fn"], m["file"], m["line"] or ""


def _pipeline_part(frames: list[str]) -> str:
    """Which part of the local runtime a stack belongs to."""
    text = ";".join(frames)
    for needle, part in (
        ("extract_page (", "extract stage"),
        ("transform_page (", "transform stage"),
        ("send_batch (", "load stage: DynamoDB writer threads"),
        ("load_page (", "load stage"),
        ("plan_run (", "plan"),
        ("verify_run (", "verify"),
        ("progress (", "progress"),
        ("moto/", "moto: S3, SQS, Step Functions, manifest table"),
        ("_consume (", "local runtime: SQS polling"),
    ):
        if needle in text:
            return part
    return "other"


def summarise(name: str, stacks: list[tuple[list[str], int]], *, pipeline: bool) -> str:
    total = sum(n for _, n in stacks) or 1
    by_pkg, by_fn, by_line, by_part = Counter(), Counter(), Counter(), Counter()
    for frames, n in stacks:
        fn, file, line = _where(frames[-1])
        by_pkg[_package(file)] += n
        by_fn[f"{fn} ({_short(file)})"] += n
        by_line[f"{fn} ({_short(file)}:{line})"] += n
        if pipeline:
            by_part[_pipeline_part(frames)] += n
    out = [f"### {name}", "", f"{total:,} samples at {RATE} Hz ({total / RATE:.1f} s)", ""]

    def table(title: str, counter: Counter, top: int) -> None:
        out.extend([f"| {title} | share |", "| --- | ---: |"])
        for k, n in counter.most_common(top):
            out.append(f"| `{k}` | {100 * n / total:.1f}% |")
        out.append("")

    if pipeline:
        table("part of the run (holding the GIL)", by_part, 12)
    table("package (own time of the innermost Python frame)", by_pkg, 10)
    table("function (own time)", by_fn, 15)
    table("line (own time)", by_line, 12)
    return "\n".join(out)


# ---------------------------------------------------------------- driver


def _record(out: Path, cmd: list[str], *, gil: bool = False) -> None:
    spy = [PYSPY, "record", "--rate", str(RATE), "--format", "raw", "-o", str(out)]
    spy += ["--gil"] if gil else []
    subprocess.run([*spy, "--", *cmd], cwd=ROOT, check=True, capture_output=True)


def main(argv=None) -> int:
    from . import data, stages
    from .endpoint import NullDynamo

    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=400_000)
    p.add_argument("--page-size", type=int, default=50_000)
    p.add_argument("--only", choices=[*STAGES, "pipeline-mysql", "pipeline-dynamodb"])
    p.add_argument("--keep", help="keep py-spy's raw stacks in this folder")
    p.add_argument("--output", default=str(ROOT / "bench" / "PROFILE.md"))
    args = p.parse_args(argv)
    for k, v in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}.items():
        os.environ.setdefault(k, v)
    info = server()
    os.environ.setdefault("SLUICE_MYSQL_URL", f"mysql://{info.user}@{info.host}:{info.port}")
    ensure_server(info)
    prefix = f"sluice_bench_prof_{os.getpid()}_"
    src, dst = prefix + "src", prefix + "dst"
    sections = []
    try:
        log(f"profile: generating {args.rows:,} rows ...")
        data.create(info, src, args.rows)
        sql(info, f"CREATE DATABASE `{dst}`")
        sql(info, data.DDL, database=dst)
        with tempfile.TemporaryDirectory(prefix="sluice-profile-") as tmp, NullDynamo() as nd:
            work = Path(tmp)
            keep = Path(args.keep) if args.keep else work
            keep.mkdir(parents=True, exist_ok=True)
            ps = args.page_size
            (work / "contract-mysql.json").write_text(
                json.dumps(stages.contract_doc("mysql", src, dst=dst, page_size=ps))
            )
            (work / "contract-ddb.json").write_text(
                json.dumps(stages.contract_doc("dynamodb", src, endpoint=nd.url, page_size=ps))
            )
            me = [PY, "-m", "bench.profile", "--stage"]
            subprocess.run([*me, "prep", tmp, src, str(ps)], cwd=ROOT, check=True)
            runs = {
                "extract": [*me, "extract", tmp, src, str(ps)],
                "transform-mysql": [*me, "transform-mysql", tmp],
                "transform-dynamodb": [*me, "transform-dynamodb", tmp],
                "load-mysql": [*me, "load-mysql", tmp, dst],
                "load-dynamodb": [*me, "load-dynamodb", tmp, nd.url],
            }
            for name, cmd in runs.items():
                if args.only and args.only != name:
                    continue
                log(f"profile: {name} ...")
                raw = keep / f"{name}.txt"
                # The writer's threads mostly wait on sockets: count the GIL holder only.
                gil = name == "load-dynamodb"
                _record(raw, cmd, gil=gil)
                sections.append(
                    summarise(
                        f"{name} ({args.rows:,} rows, pages of {ps:,})"
                        + (", thread holding the GIL" if gil else ""),
                        read_raw(raw),
                        pipeline=False,
                    )
                )
            for kind in ("mysql", "dynamodb"):
                name = f"pipeline-{kind}"
                if args.only and args.only != name:
                    continue
                log(f"profile: {name} (sluice run --local) ...")
                sql(info, f"DROP DATABASE IF EXISTS `{dst}`")
                doc = stages.contract_doc(kind, src, dst=dst, endpoint=nd.url, page_size=ps)
                contract = work / f"run-{kind}.json"
                contract.write_text(json.dumps(doc))
                raw = keep / f"{name}.txt"
                _record(
                    raw,
                    [PY, "-m", "bench.pipeline", str(contract), str(work / f"state-{kind}")],
                    gil=True,
                )
                sections.append(
                    summarise(
                        f"{name}: sluice run --local ({args.rows:,} rows), thread holding the GIL",
                        read_raw(raw),
                        pipeline=True,
                    )
                )
    finally:
        for db_name in (src, dst):
            sql(info, f"DROP DATABASE IF EXISTS `{db_name}`")
    text = (
        "# Profiles\n\nWritten by `.venv/bin/python -m bench.profile`: py-spy samples of each "
        "stage run over every page of the table in a fresh process (import time left out), "
        "and of whole local runs (the thread holding the GIL). Own time is the innermost "
        "Python frame: time inside a C extension (pyarrow's C++, zlib, the socket) counts "
        "for the Python line that called it. Analysis: the Profile section of RESULTS.md.\n\n"
        + "\n".join(sections)
    )
    Path(args.output).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--stage":
        _stage(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(main())
