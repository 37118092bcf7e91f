"""Turns the figures bench/run collected into docs/benchmarks.md (printed on stdout).

Usage: python3 bench/report.py RESULTS.tsv NOTES.txt

RESULTS.tsv has one figure a line, tab-separated:
  meta    DB|-  -     NAME   VALUE
  metric  DB    SIZE  NAME   VALUE
  load    DB    SIZE  ROUTE  RUN  REQ/S  P50_MS  P99_MS  REQUESTS  FAILED_STATUS  FAILED_SOCKET  CONNECTIONS
  outbox  DB    -     json   JSON
"""

import json
import os
import statistics
import sys
from collections import defaultdict

ROUTES = [
    ("home_admin", "SecondLook `GET /` (caseload), admin"),
    ("home_advocate", "SecondLook `GET /` (caseload), advocate"),
    ("admin", "SecondLook `GET /admin`"),
    ("api_cases", "SecondLook `GET /api/v1/cases?limit=50`"),
    ("search_reference", "SecondLook `GET /?q=` a case reference, admin"),
    ("search_email", "SecondLook `GET /api/v1/cases?q=` a patient email"),
    ("search_name", "SecondLook `GET /?q=` a patient's name, advocate"),
    ("healthz", "SecondLook `GET /healthz`"),
    ("create_case", "SecondLook `POST /api/v1/cases`"),
    ("baseline_home", "baseline `GET /`"),
    ("baseline_api_cases", "baseline `GET /api/cases?limit=50`"),
    ("baseline_select1", "baseline `GET /select1`"),
]
LABEL = dict(ROUTES)
# SecondLook route, baseline route it is compared with.
PAIRS = [
    ("home_admin", "baseline_home"),
    ("home_advocate", "baseline_home"),
    ("api_cases", "baseline_api_cases"),
    ("healthz", "baseline_select1"),
]
DB_NAME = {"sqlite": "SQLite", "postgres": "PostgreSQL"}


def size_name(size):
    n = int(size)
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def number(value, digits=1):
    if value is None:
        return "—"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def main():
    results, notes_path = sys.argv[1], sys.argv[2]
    meta = {}
    metrics = {}
    runs = defaultdict(list)
    outbox = {}
    databases, sizes = [], []
    with open(results, encoding="utf-8") as f:
        for line in f:
            cols = line.rstrip("\n").split("\t")
            kind, db, size = cols[0], cols[1], cols[2]
            if kind == "meta":
                meta[(db, cols[3])] = cols[4]
                continue
            if db not in databases:
                databases.append(db)
            if kind == "outbox":
                outbox[db] = json.loads(cols[4])
                continue
            if size not in sizes:
                sizes.append(size)
            if kind == "metric":
                metrics[(db, size, cols[3])] = cols[4]
            elif kind == "load":
                rps, p50, p99, requests, bad, socket, connections = cols[5:12]
                runs[(db, size, cols[3])].append(
                    {
                        "rps": float(rps),
                        "p50": float(p50),
                        "p99": float(p99),
                        "status": int(bad),
                        "socket": int(socket),
                        "requests": int(requests),
                        "connections": int(connections),
                    }
                )
    sizes.sort(key=int)
    with open(notes_path, encoding="utf-8") as f:
        notes = [line.rstrip("\n") for line in f if line.strip()]

    def median(db, size, route, key):
        """Over the runs in which at least one request was answered."""
        found = [r for r in runs.get((db, size, route), []) if r["requests"] > 0]
        if not found:
            return None
        return statistics.median(r[key] for r in found)

    seconds = int(meta.get(("-", "seconds"), "0"))
    quick = not sizes or int(sizes[-1]) < 1_000_000 or seconds < 15
    out = []
    w = out.append
    w("# Benchmarks")
    w("")
    if quick:
        w(
            "> **Quick run.** Smaller caseloads and/or shorter load runs than the full kit "
            "(`bench/run` with no settings: 10k, 100k and 1M cases, 15 s per run). "
            "Figures show the shape, not the capacity."
        )
        w("")
    w(f"- Date: {meta.get(('-', 'started'), '?')} (finished {meta.get(('-', 'finished'), '?')})")
    w(
        f"- Machine: {meta.get(('-', 'nproc'), '?')} CPUs ({meta.get(('-', 'cpu'), '?') or 'model not reported'}), "
        f"{meta.get(('-', 'memory'), '?')} memory, {meta.get(('-', 'kernel'), '?')}"
    )
    w(f"- Commit: `{meta.get(('-', 'commit'), '?')}`")
    w(f"- Command: `{meta.get(('-', 'command'), 'bench/run')}`")
    pg = meta.get(("postgres", "version"))
    w(
        f"- Load generator: wrk {meta.get(('-', 'wrk'), '?')}, 2 threads, on the same machine as the servers; "
        f"PostgreSQL {pg or 'not run'}"
        + (f" (`{meta.get(('postgres', 'settings'))}`, otherwise defaults)" if pg else "")
    )
    w(
        f"- Load average (1, 5, 15 min) at the start: {meta.get(('-', 'loadavg'), '?')}. Other work on the machine "
        "shares its CPUs with the servers and wrk; the load average before each size's reads is under *Memory and "
        "start-up*."
    )
    w(f"- Release build took {meta.get(('-', 'build_seconds'), '?')} s (incremental).")
    w("")
    w(
        f"Each read route ran for {seconds} s at 64 connections in each of {meta.get(('-', 'runs'), '?')} rounds, "
        "the routes interleaved (route A, B, C, …, then the next round); each figure is the median over the rounds "
        "(req/s, p50 and p99 taken separately). `POST /api/v1/cases` ran after all reads, at 16 connections. Latencies are in "
        "milliseconds. *Answered* is the number of answers over all rounds; a route with none within a run shows "
        "—. *Failed* counts answers other than 2xx/3xx, and socket errors and timeouts (20 s), over all rounds. The database was seeded with `secondlook demo-data --cases N` (about a third of the cases "
        "belong to the advocate who signs in; the admin sees all). Reminders were switched off in the server under "
        "load. Every SecondLook read of a case list also writes an audit entry (`case.list`) and touches the "
        "session; the baseline (`bench/baseline`: axum, sqlx and askama, the same versions, on the same database) "
        "does neither, has no sign-in and checks no access: it shows what the stack alone costs."
    )
    w("")

    w(
        f"Each load run is `wrk -t 2 -c 64 -d {seconds}s --timeout 20s -s report.lua [-H HEADER] URL` (16 connections "
        "for the create; `report.lua`, written by `bench/run`, sets the method and JSON body and prints the "
        "percentiles). HEADER is `Cookie: secondlook_session=…` for the pages, from signing in by posting the "
        "`/login` form with curl, and `Authorization: Bearer …` for the API, from "
        "`secondlook token create --email admin@secondlook.local`."
    )
    w("")
    w("## Routes")
    w("")
    for db in databases:
        w(f"### {DB_NAME.get(db, db)}")
        w("")
        w("| route | cases | req/s | p50 ms | p99 ms | answered | failed: status / socket |")
        w("|---|---:|---:|---:|---:|---:|---:|")
        for route, label in ROUTES:
            for size in sizes:
                found = runs.get((db, size, route))
                if not found:
                    continue
                answered = sum(r["requests"] for r in found)
                status = sum(r["status"] for r in found)
                socket = sum(r["socket"] for r in found)
                w(
                    f"| {label} | {size_name(size)} | {number(median(db, size, route, 'rps'))} | "
                    f"{number(median(db, size, route, 'p50'), 2)} | {number(median(db, size, route, 'p99'), 2)} | "
                    f"{answered:,} | {status} / {socket} |"
                )
        w("")

    w("## Against the baseline")
    w("")
    w(
        "Measured in the same run on the same database. *Throughput share* is SecondLook's req/s as a share of the "
        "baseline's; *p50 ×* is SecondLook's median latency divided by the baseline's."
    )
    w("")
    for db in databases:
        w(f"### {DB_NAME.get(db, db)}")
        w("")
        w("| SecondLook | baseline | cases | SecondLook req/s | baseline req/s | throughput share | p50 × |")
        w("|---|---|---:|---:|---:|---:|---:|")
        for ours, theirs in PAIRS:
            for size in sizes:
                a_rps, b_rps = median(db, size, ours, "rps"), median(db, size, theirs, "rps")
                if a_rps is None or b_rps is None:
                    continue
                share = ratio(a_rps, b_rps)
                p50x = ratio(median(db, size, ours, "p50"), median(db, size, theirs, "p50"))
                w(
                    f"| {LABEL[ours]} | {LABEL[theirs]} | {size_name(size)} | {number(a_rps)} | {number(b_rps)} | "
                    f"{share * 100:.1f}% | {number(p50x, 2)} |"
                )
        w("")

    if len(sizes) > 1:
        w("## Scaling")
        w("")
        steps = list(zip(sizes, sizes[1:]))
        w(
            "Median latency (p50, ms) at each caseload size, and how many times it grew from one size to the next "
            "(1.00 = unchanged; 10× the cases at 10.00 = linear)."
        )
        w("")
        for db in databases:
            w(f"### {DB_NAME.get(db, db)}")
            w("")
            head = ["route"] + [f"p50 {size_name(s)}" for s in sizes]
            head += [f"{size_name(b)} ÷ {size_name(a)}" for a, b in steps]
            w("| " + " | ".join(head) + " |")
            w("|---|" + "---:|" * (len(head) - 1))
            for route, label in ROUTES:
                p50s = [median(db, s, route, "p50") for s in sizes]
                if all(p is None for p in p50s):
                    continue
                cells = [label] + [number(p, 2) for p in p50s]
                cells += [number(ratio(p50s[i + 1], p50s[i]), 2) for i in range(len(steps))]
                w("| " + " | ".join(cells) + " |")
            w("")

    w("## Memory and start-up")
    w("")
    w(
        "Resident memory of the `secondlook serve` process: idle (after start and two sign-ins), right after "
        "the 64-connection reads (VmRSS), and its peak (VmHWM) by then, which includes the working memory of "
        "each sign-in's password hash (19 MiB while it runs). Start-up: from starting the process on the seeded database "
        "(already migrated) to the first `GET /healthz` answering 200."
    )
    w("")
    w("| database | cases | RSS idle MiB | RSS after the reads MiB | RSS peak MiB | start-up ms | load average before the reads |")
    w("|---|---:|---:|---:|---:|---:|---:|")
    for db in databases:
        for size in sizes:
            idle = metrics.get((db, size, "rss_idle_kib"))
            peak = metrics.get((db, size, "rss_peak_kib"))
            after = metrics.get((db, size, "rss_after_kib"))
            start = metrics.get((db, size, "start_ms"))
            if idle is None and peak is None and start is None:
                continue
            mib = lambda v: number(int(v) / 1024) if v else "—"  # noqa: E731
            busy = metrics.get((db, size, "loadavg"), "—")
            w(
                f"| {DB_NAME.get(db, db)} | {size_name(size)} | {mib(idle)} | {mib(after)} | {mib(peak)} "
                f"| {start or '—'} | {busy} |"
            )
    w("")

    w("## Seeding the demo data")
    w("")
    w("`secondlook demo-data --cases N` on an empty database (including its migrations).")
    w("")
    w("| database | cases | seconds | cases/s |")
    w("|---|---:|---:|---:|")
    for db in databases:
        for size in sizes:
            took = metrics.get((db, size, "seed_seconds"))
            if took is None:
                continue
            rate = int(size) / float(took) if float(took) > 0 else None
            w(f"| {DB_NAME.get(db, db)} | {size_name(size)} | {took} | {number(rate)} |")
    w("")

    w("## Outbox")
    w("")
    if outbox:
        w("`cargo run --release -p secondlook-bench-outbox -- --database URL` on an empty database of its own.")
        w("")
        w("| database | SecondLook emails/s | lettre alone emails/s | ratio |")
        w("|---|---:|---:|---:|")
        for db in databases:
            if db in outbox:
                o = outbox[db]
                w(
                    f"| {DB_NAME.get(db, db)} | {o.get('secondlook_per_s', '—')} | {o.get('lettre_per_s', '—')} | "
                    f"{o.get('ratio', '—')} |"
                )
    else:
        w("Not measured: the `secondlook-bench-outbox` crate is not in this workspace yet.")
    w("")

    w("## Reminder planner")
    w("")
    w(
        "`SECONDLOOK__REMINDERS__BATCH_SIZE=1000000 secondlook reminders run-once --plan-only` on the freshly "
        "seeded database, whole process included: the scan looks at every case whose reminder time has come "
        "(on a fresh demo database, every open case), plans and queues what is due, and sends nothing."
    )
    w("")
    w(
        "Then the steady state: that first scan set every open case's next look ahead, so the kit makes "
        "`BENCH_PLANNER_DUE` open cases (10,000 unless set; all of them when there are fewer) due again "
        "(`remind_at` set back to when each was opened) and times a second "
        "`run-once --plan-only`. Most of those cases' reminders were queued by the first scan, so the outbox's "
        "keys leave little new to queue; the scan still reads, plans and checks every due case."
    )
    w("")
    w(
        "| database | cases | first scan: seconds | planned and queued | second scan: cases due | seconds "
        "| planned and queued |"
    )
    w("|---|---:|---:|---:|---:|---:|---:|")
    for db in databases:
        for size in sizes:
            took = metrics.get((db, size, "planner_seconds"))
            if took is None:
                continue
            w(
                f"| {DB_NAME.get(db, db)} | {size_name(size)} | {took} | "
                f"{metrics.get((db, size, 'planner_drafts')) or '—'} | "
                f"{metrics.get((db, size, 'planner_due_cases')) or '—'} | "
                f"{metrics.get((db, size, 'planner_steady_seconds')) or '—'} | "
                f"{metrics.get((db, size, 'planner_steady_drafts')) or '—'} |"
            )
    w("")

    other = [n for n in notes if not n.startswith("outbox-absent")]
    if other:
        w("## Notes from this run")
        w("")
        for n in other:
            w(f"- {n}")
        w("")
    # The large-document run (`bench/documents`) is its own, kept beside the
    # kit and carried over between markers that it rewrites.
    documents = os.path.join(os.path.dirname(os.path.abspath(__file__)), "documents.md")
    if os.path.exists(documents):
        with open(documents, encoding="utf-8") as f:
            w("<!-- documents -->")
            w(f.read().rstrip("\n"))
            w("<!-- /documents -->")
        w("")
    # What the figures mean is written by hand and kept next to the kit, so a
    # new run does not lose it; it says which run it was written against.
    reading = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reading.md")
    if os.path.exists(reading):
        with open(reading, encoding="utf-8") as f:
            w(f.read().rstrip("\n"))
        w("")
    print("\n".join(out))


if __name__ == "__main__":
    main()
