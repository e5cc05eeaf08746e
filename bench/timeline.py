"""Where a local run's seconds go: one `sluice run --local` of the bench table into MySQL,
then its state machine's steps and each page's stages on one clock.

    python -m bench.timeline [--rows N] [--page-size N] [--workers threads|processes] [--keep]

Times are seconds since `run_local` was called: the state machine's entered/exited events from
the execution history, and each page's started, extracted, transformed and loaded times from
the manifest. A page that starts only when the one before it is extracted shows a stage with
one consumer at work; loads that finish further and further behind their transforms show the
load side falling behind.

Then (with --workers threads), per consumer thread, the wall and CPU seconds (time.thread_time) spent in the parts of
each stage named in PARTS, and how many calls: wall well above CPU is waiting, on the
database server, on S3, SQS and DynamoDB calls, or for the interpreter lock.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time
from pathlib import Path

from . import data, stages
from .common import server, sql

SOURCE, TARGET = "bench_timeline_src", "bench_timeline_dst"
# (module, attribute path, label): the parts of the stages timed per thread.
PARTS = [
    ("sluice.stages", "extract_page", "extract, all of it"),
    ("sluice.source", "fetch_lines", "  the lines off the socket"),
    ("sluice.source", "_split", "  lines cut into columns"),
    ("sluice.stages", "transform_page", "transform, all of it"),
    ("sluice.stages", "load_page", "load, all of it"),
    ("sluice.targets.mysql", "load_slices", "  LOAD DATA (encode and send)"),
    ("sluice.checksum", "PageSum.update", "page checksums"),
    ("sluice.stages", "Context.put", "S3 PutObject"),
    ("sluice.stages", "Context.get", "S3 GetObject"),
    ("sluice.manifest", "Manifest.advance", "manifest: advance"),
    ("sluice.manifest", "Manifest.page", "manifest: page read"),
    ("sluice.stages", "plan_run", "plan, all of it"),
    ("sluice.stages", "introspect", "  introspect"),
    ("sluice.stages", "cut_pages", "  cut pages"),
    ("sluice.stages", "_prepare_targets", "  prepare targets"),
    ("sluice.stages", "_connection", "  connect"),
    ("sluice.manifest", "Manifest.record_plan", "  record plan"),
    ("sluice.stages", "verify_run", "verify, all of it"),
    ("sluice.verify", "_row_counts", "  row counts"),
    ("sluice.stages", "progress", "progress check, all of it"),
    ("sluice.manifest", "Manifest.progress", "  manifest: the run's items read"),
]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--page-size", type=int, default=50_000)
    p.add_argument("--workers", choices=("threads", "processes"), default="threads")
    p.add_argument("--keep", action="store_true", help="reuse the source table if it has --rows")
    args = p.parse_args(argv)
    info = server()
    url = f"mysql://{info.user}@{info.host}:{info.port}"
    for k, v in {
        "SLUICE_SOURCE_URL": url,
        "SLUICE_TARGET_URL": url,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ.setdefault(k, v)
    if not (args.keep and data.rows_in(info, SOURCE) == args.rows):
        data.create(info, SOURCE, args.rows)
    sql(info, f"DROP DATABASE IF EXISTS `{TARGET}`", f"CREATE DATABASE `{TARGET}`")
    sql(info, data.DDL, database=TARGET)

    from sluice import aws
    from sluice.local import run as local_run

    seen: dict = {}
    summary_of = local_run._summary

    def summary(stack, manifest, run_id, arn, desc, seconds):
        seen["wait_returned"] = time.time()
        seen["history"] = stack.history(arn)
        seen["pages"] = [it for it in manifest.items(run_id) if it["sk"].startswith("PAGE#")]
        return summary_of(stack, manifest, run_id, arn, desc, seconds)

    local_run._summary = summary
    spent = _time_parts()
    doc = stages.contract_doc("mysql", SOURCE, dst=TARGET, page_size=args.page_size)
    with tempfile.TemporaryDirectory() as tmp:
        contract = Path(tmp) / "contract.json"
        contract.write_text(json.dumps(doc))
        started = time.time()
        result = local_run.run_local(
            contract,
            as_json=True,
            state_dir=Path(tmp) / "state",
            out=io.StringIO(),
            workers=args.workers,
        )
        ended = time.time()
    aws.reset_clients()
    if not result["ok"]:
        raise SystemExit(f"bench.timeline: the run failed: {result['verdict']}")
    print(f"run_local: {ended - started:.2f} s, {args.rows:,} rows, {args.workers}")
    for e in seen["history"]:
        details = e.get("stateEnteredEventDetails") or e.get("stateExitedEventDetails")
        if e["type"].startswith("Execution") or (details and "Wait" not in e["type"]):
            name = details["name"] if details else ""
            print(f"  {e['timestamp'].timestamp() - started:7.2f}  {e['type']} {name}")
    print(f"  {seen['wait_returned'] - started:7.2f}  the runtime saw the execution end")
    print("  page      started  extracted  transformed  loaded")
    for it in sorted(seen["pages"], key=lambda it: float(it["started_at"])):
        at = [float(it[k]) - started for k in ("started_at", "extracted_at", "transformed_at")]
        at.append(float(it["loaded_at"]) - started)
        print(f"  {int(it['page']):>4}  " + "  ".join(f"{t:9.2f}" for t in at))
    if args.workers == "processes":
        print("  (the stages ran in worker processes: their parts are not timed here)")
        return 0
    print("  thread                     part                            calls    wall s    CPU s")
    order = {label: i for i, (_, _, label) in enumerate(PARTS)}
    names: dict[str, str] = {}  # "name@ident" -> "name #n"
    for key in sorted({thread for thread, _ in spent}):
        name = key.rsplit("@", 1)[0]
        names[key] = f"{name} #{sum(n.startswith(name + ' #') for n in names.values()) + 1}"
    for (thread, label), (calls, wall, cpu) in sorted(
        spent.items(), key=lambda kv: (names[kv[0][0]], order[kv[0][1]])
    ):
        print(f"  {names[thread]:26} {label:30} {calls:6}  {wall:8.2f} {cpu:8.2f}")
    return 0


def _time_parts() -> dict[tuple[str, str], list]:
    """Wrap each of PARTS to add its calls' wall and thread CPU seconds, per thread, into
    the dict returned (wrapped where the stages look them up: module attributes and methods)."""
    import functools
    import importlib
    import threading

    spent: dict[tuple[str, str], list] = {}
    lock = threading.Lock()

    def timed(fn, label):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                # two consumers of one function share a name: told apart by their ident
                key = (f"{threading.current_thread().name}@{threading.get_ident()}", label)
                with lock:
                    row = spent.setdefault(key, [0, 0.0, 0.0])
                    row[0] += 1
                    row[1] += time.perf_counter() - wall
                    row[2] += time.thread_time() - cpu

        return wrapper

    for module, path, label in PARTS:
        owner = importlib.import_module(module)
        *parents, name = path.split(".")
        for parent in parents:
            owner = getattr(owner, parent)
        setattr(owner, name, timed(getattr(owner, name), label))
    return spent


if __name__ == "__main__":
    raise SystemExit(main())
