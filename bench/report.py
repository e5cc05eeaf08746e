"""The benchmark's figures as Markdown (bench/RESULTS.md) and as a chart (bench/results.png)."""

from __future__ import annotations

import re
from pathlib import Path

BEGIN = "<!-- bench:begin: written by `make bench`; edit outside these markers -->"
END = "<!-- bench:end -->"

# The speed issue's targets (per core, or relative in the same run).
TARGETS = {
    "extract": ("≥ 300k rows/s per core", 300_000),
    "t_mysql": ("≥ 1M rows/s per core", 1_000_000),
    "t_ddb": ("≥ 300k rows/s per core", 300_000),
    "writer": ("≥ 80k items/s, ≥ 6x batch_writer", 80_000),
}
STAGE_ORDER = [
    ("extract", "fetch", "fetch_pymysql", "read_page", "write_arrow"),
    ("t_mysql",),
    ("t_ddb", "gzip"),
    ("load", "encode"),
]
# sluice.estimate's CPU assumption per stage, the figure of this benchmark that measures it,
# and what that figure's name must say for it to be the code a Lambda runs (the bench falls
# back to the SDK writer when the HTTP one cannot be imported; Lambda's load uses HTTP).
ESTIMATE_STAGES = {
    "extract": ("extract", ""),
    "transform_dynamodb": ("t_ddb", ""),
    "gzip": ("gzip", ""),
    "load_dynamodb": ("writer", "HttpBatchWriter"),
    "transform_mysql": ("t_mysql", ""),
    "load_mysql": ("load", ""),
}


def estimate_cpu(stages: dict) -> list[dict]:
    """The estimate's assumed rows per CPU-second beside this run's, stage by stage (recorded
    with the run, so a report rendered again shows the assumption of its day). A stage whose
    figure measured other code than Lambda runs gets no ratio."""
    from sluice.estimate import ROWS_PER_CPU_SECOND

    out = []
    for stage, (key, must_say) in ESTIMATE_STAGES.items():
        assumed, f = ROWS_PER_CPU_SECOND[stage], stages[key]
        same = must_say in f["name"]
        out.append(
            {"stage": stage, "figure": f["name"], "assumed": assumed}
            | {"measured": f["per_cpu_second"], "ratio": f["per_cpu_second"] / assumed}
            | ({} if same else {"ratio": None, "note": f"not the load stage's {must_say}"})
        )
    return out


def _n(x: float) -> str:
    return f"{x:,.0f}"


def _s(x: float) -> str:
    return f"{x:.2f}"


def _md(text: str) -> str:
    """Text for a Markdown table cell."""
    return text.replace("|", "\\|")


def _bound(r: dict, base: dict, e2e: list[dict]) -> list[str]:
    """No schedule ends a run sooner than what any run of the tool costs, one step after
    another, plus the rest of its CPU (client and server) spread perfectly over the cores.
    For sluice, what any run costs is its run over a few rows (`bound` in the results:
    start-up, the emulated stack, plan, a page, verify), measured with the consumers where
    `sluice run --local` puts them; for the others, and the other way, it is left at 0."""
    cores = int(r["machine"].get("cores (nproc)") or 1)
    fixed = r.get("bound")
    rows, mine = [], None
    for e in e2e:
        if not (e is base or e["name"].startswith("sluice local: MySQL -> MySQL")):
            continue
        cpu = e["client_cpu"] + e["server_cpu"]
        own = fixed if fixed and e["name"] == "sluice local: MySQL -> MySQL" else None
        serial = own["seconds"] if own else 0.0
        rest = max(0.0, cpu - (own["client_cpu"] + own["server_cpu"] if own else 0.0)) / cores
        mine = serial + rest if own else mine
        rows.append(
            f"| {_md(e['name'])} | {_s(serial) if own else '-'} | {_s(rest)} | "
            f"**{_s(serial + rest)}** | {_s(e['seconds'])} |"
        )
    out = [
        "",
        f"The bound on {cores} cores, from this run's figures: what any run costs, one step "
        "after another (for sluice, the same run over "
        + (f"{fixed['rows']:,} rows" if fixed else "a few rows, not measured here")
        + ": start-up, the emulated stack, plan, a page, verify, its wall time), plus the "
        "rest of the run's CPU (client and server) spread perfectly over the cores. While a "
        "run starts, plans, moves its pages and verifies in that order, no schedule finishes "
        "sooner, however well the pages' stages overlap.",
        "",
        "| tool | what any run costs s | the rest of the CPU-seconds / cores | bound s | "
        "measured seconds |",
        "| --- | ---: | ---: | ---: | ---: |",
        *rows,
    ]
    load = next((e for e in e2e if e["name"] == "LOAD DATA LOCAL INFILE"), None)
    if mine:
        verdict = (
            "better overlap cannot reach 1x; only less CPU, or a smaller cost of any run, can"
            if mine > base["seconds"]
            else "1x is within what overlap can reach"
        )
        out += [
            "",
            f"sluice's bound is {mine / base['seconds']:.2f} times mydumper + myloader's "
            f"measured run ({base['seconds'] / mine:.2f}x): {verdict}."
            + (
                f" LOAD DATA of the whole table alone takes {_s(load['server_cpu'])} server "
                "CPU s (above)."
                if load
                else ""
            ),
        ]
    return out


def markdown(r: dict) -> str:
    rows = r["table"]["rows"]
    out = [BEGIN, "", "## Latest run", ""]
    out += [
        f"- date: {r['date']}; the whole benchmark took {r['seconds']:.0f} s",
        f"- command: `{r['command']}`",
        f"- load average (1 min) at start {r['load_average'][0]:.2f}, at the end "
        f"{r['load_average'][1]:.2f}: on {r['machine']['cores (nproc)']} cores, anything else "
        "running skews the figures",
        f"- table: {rows:,} rows (BIGINT key, INT, ENUM, DECIMAL(12,2), CHAR(3), nullable "
        f"VARCHAR, DATETIME(3), nullable JSON), InnoDB average row length "
        f"{r['table']['avg_row_length']} bytes, generated in {r['table']['seconds']:.1f} s",
        f"- sluice page size {r['args']['page_size']:,} rows",
    ]
    out += [f"- note: {n}" for n in r["notes"]]
    out += ["", "### Machine", "", "| | |", "| --- | --- |"]
    out += [f"| {k} | {v} |" for k, v in r["machine"].items()]

    e2e = r["end_to_end"]
    base = next((e for e in e2e if e.get("baseline")), None)
    out += [
        "",
        "### End to end, same table, same run",
        "",
        "Client CPU: the tools' own processes (for sluice: the local runtime, which emulates "
        "AWS, and its stage worker processes); server CPU: mariadbd over the step.",
        "",
        "| tool | seconds | rows/s | vs mydumper+myloader | client CPU s | server CPU s | note |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for e in e2e:
        ratio = f"{e['rows_per_second'] / base['rows_per_second']:.2f}x" if base else "-"
        out.append(
            f"| {_md(e['name'])} | {_s(e['seconds'])} | {_n(e['rows_per_second'])} | {ratio} | "
            f"{_s(e['client_cpu'])} | {_s(e['server_cpu'])} | {e['note']} |"
        )
    st = r.get("stages", {})
    out += [
        "",
        f"### Per stage, in-process ({st['extract']['rows']:,} rows: pages of "
        f"{r['args']['page_size']:,}, one stage at a time)",
        "",
        "CPU is `time.process_time()` of the measuring process (all its threads); rows per "
        "CPU-second is the per-core rate, which is what Lambda bills. Indented rows are parts of "
        "the stage above, measured separately. Load's CPU is the client's only: the server's "
        "work shows in its wall time.",
        "",
        "| stage | rows | wall s | rows/s (wall) | CPU s | rows per CPU-second | target |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for group in STAGE_ORDER:
        for i, key in enumerate(group):
            f = st[key]
            name = f["name"] if i == 0 else f"&nbsp;&nbsp;↳ {f['name']}"
            target = TARGETS.get(key, ("", 0))[0]
            if target and key != "writer":
                ok = f["per_cpu_second"] >= TARGETS[key][1]
                target += " ✅" if ok else " ❌"
            out.append(
                f"| {name} | {f['rows']:,} | {_s(f['wall'])} | {_n(f['per_second'])} | "
                f"{_s(f['cpu'])} | {_n(f['per_cpu_second'])} | {target} |"
            )
    w, bw = st["writer"], st["batch_writer"]
    ratio = w["per_second"] / bw["per_second"]
    cpu_ratio = w["per_cpu_second"] / bw["per_cpu_second"]
    ok = w["per_second"] >= 80_000 and ratio >= 6
    out += [
        "",
        "### DynamoDB writer alone, into the bench's null endpoint",
        "",
        "The endpoint (`bench/null_dynamo.py`) runs in its own process and accepts every "
        "BatchWriteItem at once; the client's CPU below is the client's alone.",
        "",
        "| client | items | wall s | items/s | CPU s | items per CPU-second |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for f in [w, *([st["writer_sdk"]] if "writer_sdk" in st else []), bw]:
        out.append(
            f"| {f['name']} | {f['rows']:,} | {_s(f['wall'])} | {_n(f['per_second'])} | "
            f"{_s(f['cpu'])} | {_n(f['per_cpu_second'])} |"
        )
    out += [
        "",
        f"sluice's load-stage writer / batch_writer: **{ratio:.1f}x** items/s, "
        f"{cpu_ratio:.1f}x items per CPU-second (target ≥ 80k items/s and ≥ 6x: "
        f"{'✅' if ok else '❌'})",
    ]
    if "writer_sdk" in st:
        sdk = st["writer_sdk"]
        out.append(
            f"(the SDK path, make_client + write_items: {sdk['per_second'] / bw['per_second']:.1f}x "
            "batch_writer)"
        )
    mm = next((e for e in e2e if e["name"].startswith("sluice local: MySQL -> MySQL")), None)
    if mm and base:
        ratio = mm["rows_per_second"] / base["rows_per_second"]
        out += [
            "",
            f"sluice local MySQL -> MySQL / mydumper+myloader: **{ratio:.2f}x** "
            f"(target ≥ 1x: {'✅' if ratio >= 1 else '❌'}), with the stage consumers where "
            "`sluice run --local` puts them on this machine (`--workers auto`); the other way "
            "is timed beside it. Extract, transform and load overlap either way.",
        ]
        out += _bound(r, base, e2e)
    if r.get("estimate_cpu"):
        out += [
            "",
            "### The estimate's CPU assumption beside this run",
            "",
            "`sluice plan --estimate` prices the Lambda compute of each path and way from "
            "`sluice.estimate.ROWS_PER_CPU_SECOND`; measured is this run's rows per CPU-second "
            "of the figure named. A ratio far from 1 means the assumption wants updating.",
            "",
            "| estimate stage | measured by | assumed rows per CPU-second | measured | "
            "measured / assumed |",
            "| --- | --- | ---: | ---: | ---: |",
        ]
        out += [
            f"| {e['stage']} | {_md(e['figure'])} | {_n(e['assumed'])} | {_n(e['measured'])} | "
            + (f"{e['ratio']:.2f} |" if e["ratio"] is not None else f"- ({e['note']}) |")
            for e in r["estimate_cpu"]
        ]
    if r.get("planner"):
        from .planner import markdown as planner_markdown

        out += [
            "",
            "### The planner: cut_pages on a sparse-key table",
            "",
            "`bench/planner.py`: keys from -2^63 to 2^63-1 with a gap of about 6e18, and a "
            "composite (VARCHAR, BIGINT) key; every page's rows counted with its own range.",
            "",
            *planner_markdown(r["planner"]),
        ]
    out += [
        "",
        "### A worker's peak RSS",
        "",
        f"Each stage on one page of {r['args']['worker_page_size']:,} rows (200,000 is the "
        "largest page a contract allows) in a fresh process, as a Lambda worker runs it "
        "(`bench/worker.py`); peak RSS is the process's VmHWM. Target < 256 MB.",
        "",
        "| stage | rows | seconds | RSS after imports MB | peak RSS MB |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for k in r.get("workers", []):
        flag = " ✅" if k["peak_rss_mb"] < 256 else " ❌"
        out.append(
            f"| {k['stage']} | {k['rows']:,} | {_s(k['seconds'])} | "
            f"{k['rss_after_imports_mb']:.0f} | {k['peak_rss_mb']:.0f}{flag} |"
        )
    out += ["", "### Staging bytes per row", "", "| object | bytes a row |", "| --- | ---: |"]
    out += [f"| {k} | {v:.1f} |" for k, v in r.get("bytes_per_row", {}).items()]
    out += ["", "![benchmark chart](results.png)", "", END]
    return "\n".join(out) + "\n"


HEADER = """# Benchmark results

`make bench` rewrites the block between the markers below with the figures of its run
(`bench/README.md` says what each figure means). Absolute figures move between machines
and runs; compare ratios from one run. Everything outside the markers is kept.

"""


def write_results(path: Path, block: str) -> None:
    """Replace the generated block of RESULTS.md, keeping the hand-written sections."""
    text = path.read_text() if path.exists() else HEADER + BEGIN + "\n" + END + "\n"
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n?", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text)


def chart(r: dict, path: Path) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(12, 11), gridspec_kw={"height_ratios": [6, 6, 3]})
    e2e = r["end_to_end"]
    names = [
        e["name"].replace(" (unique_checks, foreign_key_checks off)", " (fast session)")
        for e in e2e
    ]
    vals = [e["rows_per_second"] for e in e2e]
    colors = ["tab:orange" if e.get("sluice") else "tab:gray" for e in e2e]
    ax = axes[0]
    ax.barh(names[::-1], vals[::-1], color=colors[::-1])
    ax.set_title(f"End to end, {r['table']['rows']:,} rows (rows/s, wall)")
    for i, v in enumerate(vals[::-1]):
        ax.text(v, i, f" {v:,.0f}", va="center", fontsize=8)

    st = r["stages"]
    keys = [
        "extract",
        "fetch",
        "fetch_pymysql",
        "read_page",
        "write_arrow",
        "t_mysql",
        "t_ddb",
        "gzip",
        "load",
        "encode",
    ]
    ax = axes[1]
    labels = [st[k]["name"] for k in keys]
    vals = [st[k]["per_cpu_second"] for k in keys]
    ax.barh(labels[::-1], vals[::-1], color="tab:blue")
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_title("Per stage: rows per CPU-second (log scale); red: targets")
    for i, k in enumerate(keys[::-1]):
        if k in TARGETS:
            ax.plot([TARGETS[k][1]] * 2, [i - 0.4, i + 0.4], color="red", linewidth=2)
        ax.text(vals[::-1][i], i, f" {vals[::-1][i]:,.0f}", va="center", fontsize=8)

    ax = axes[2]
    w = [st[k] for k in ("writer", "writer_sdk", "batch_writer") if k in st]
    colors = ["tab:orange"] * (len(w) - 1) + ["tab:gray"]
    names = [x["name"].split(" (")[0].replace("sluice write_items with ", "sluice ") for x in w]
    ax.barh(names[::-1], [x["per_second"] for x in w][::-1], color=colors[::-1])
    ax.axvline(80_000, color="red", linewidth=1)
    ax.set_title("DynamoDB writer, null endpoint (items/s, wall); red: 80k target")
    for i, x in enumerate(w[::-1]):
        ax.text(x["per_second"], i, f" {x['per_second']:,.0f}", va="center", fontsize=8)
    fig.suptitle(f"Sluice benchmark, {r['date']}, {r['machine']['cores (nproc)']} cores")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    """Render RESULTS.md's block and the chart again from a run's RESULTS.json."""
    import argparse
    import json

    here = Path(__file__).resolve().parent
    p = argparse.ArgumentParser(prog="python -m bench.report", description=main.__doc__)
    p.add_argument("json", nargs="?", default=str(here / "RESULTS.json"))
    args = p.parse_args(argv)
    r = json.loads(Path(args.json).read_text())
    write_results(here / "RESULTS.md", markdown(r))
    chart(r, here / "results.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
