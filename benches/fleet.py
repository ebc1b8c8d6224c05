"""The fleet benchmark: `costagg sweep` over many units (org, source, month), in one or more processes.

It generates a fleet once (`costagg generate`, kept in --data-dir as fleet-<units>x<rows>): --units
units of --rows pod usage rows each, spread over --orgs orgs × N sources × the --months months.
Then, on one PostgreSQL (scripts/bench-fleet starts a throwaway cluster), each measurement gets a
database of its own, created fresh:

  P processes       for each P in --processes: P `costagg sweep` processes started at once (each
                    --workers units at a time, --worker-id p<i>, its own --report); wall time from
                    the first start to the last exit, units written per wall minute, each process's
                    peak RSS (wait4, and the report's own figure), rows written. Afterwards every
                    unit of `public.costagg_sweep_units` must have succeeded exactly once, no unit
                    may be written by two processes, and the rows in each org's summary table must
                    be those the claim table says were written.
  up to date        right after the first measurement (P = 1 unless --processes omits it), one more
                    sweep on the same database: every unit must be `up_to_date`; its wall time and
                    its listing time (`listing_ms`, target under 5 s) are kept.
  1 × K workers     with --workers-per-process K: one process summarising K units at once.
  tiny fleet        --tiny-units units of --tiny-rows rows (default 20 × 1,000), one process: the
                    fixed cost of a unit, as wall seconds per unit (start-up and listing included),
                    and as `a` in time = a + b·rows fitted through the median per-unit run time
                    (the report's `ms`) of the tiny fleet's units and of the 1-process fleet's.

Results go to --out/fleet.json (fleet-<units>x<rows>.json when the size is not the default) with
the machine's facts, and a markdown table is printed at the end. The script exits non-zero when a
sweep fails, hangs past --timeout, or the claim table disagrees with what the sweeps reported.

Run it through scripts/bench-fleet, which builds costagg and provides PostgreSQL.
"""

import argparse
import datetime
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONFIG = HERE.parent / "config" / "costagg.yaml"
DEFAULT_UNITS, DEFAULT_ROWS = 200, 50_000
SUMMARY_TABLE = "reporting_ocpusagelineitem_daily_summary"
CLAIMS = "public.costagg_sweep_units"
LISTING_TARGET_MS = 5_000


class BenchError(Exception):
    """A sweep misbehaved: the benchmark stops and says what it saw."""


def layout(units, orgs, months):
    """(orgs, sources per org, months) whose product is `units`: as many of the --orgs orgs and the
    --months months as divide it."""
    m = len(months)
    while m > 1 and units % m:
        m -= 1
    o = max(1, min(orgs, units // m))
    while o > 1 and units % (o * m):
        o -= 1
    return o, units // (o * m), months[:m]


def org_name(i):
    return f"org{7000001 + i}"


def source_uuid(org, source):
    return f"6f5f1c0e-{org + 1:04x}-4000-8000-{source + 1:012x}"


def generate(costagg, data_dir, units, rows, orgs, months):
    """The fleet's folder, generated unless it already is (generation is deterministic)."""
    n_orgs, n_sources, months = layout(units, orgs, months)
    root = data_dir / f"fleet-{units}x{rows}"
    marker = root / "fleet.json"
    shape = {"units": units, "rows": rows, "orgs": [org_name(o) for o in range(n_orgs)],
             "sources_per_org": n_sources, "months": months}
    if marker.exists() and json.loads(marker.read_text()) == shape:
        return root, shape
    print(f"generating {units} units ({n_orgs} orgs × {n_sources} sources × {len(months)} months) "
          f"of {rows:,} rows under {root}", flush=True)
    subprocess.run(["rm", "-rf", str(root)], check=True)
    for o in range(n_orgs):
        cmd = [costagg, "generate", "--rows", str(rows), "--org", org_name(o), "--out", str(root),
               # a seed per org, so the orgs' clusters differ too (the n-th unit of a call takes seed + n)
               "--seed", str(1 + 10_000 * o), "--log-level", "warn"]
        for s in range(n_sources):
            cmd += ["--source", source_uuid(o, s)]
        for m in months:
            cmd += ["--month", m]
        subprocess.run(cmd, check=True)
    marker.write_text(json.dumps(shape) + "\n")
    return root, shape


def psql(url, sql):
    """Runs sql; returns its rows, tab-separated fields."""
    out = subprocess.run(["psql", url, "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", sql],
                         capture_output=True, text=True,
                         env=dict(os.environ, PGOPTIONS="-c client_min_messages=warning"))
    if out.returncode != 0:
        raise BenchError(f"psql failed: {sql}\n{out.stderr}")
    return [line.split("\t") for line in out.stdout.splitlines() if line]


def fresh_database(admin_url, name):
    psql(admin_url, f"DROP DATABASE IF EXISTS {name}")
    psql(admin_url, f"CREATE DATABASE {name}")
    return admin_url.rsplit("/", 1)[0] + "/" + name


def sweep(args, root, months, url, processes, workers, label, work_dir):
    """Starts `processes` sweeps at once and waits for all; returns the measurement."""
    env = dict(os.environ, COSTAGG_LOG_FORMAT="json")
    procs = {}
    t0 = time.perf_counter()
    for i in range(1, processes + 1):
        report = work_dir / f"{label}-p{i}.json"
        report.unlink(missing_ok=True)
        log = open(work_dir / f"{label}-p{i}.log", "w+b")
        cmd = [args.costagg, "sweep", "--config", str(CONFIG), "--input", str(root),
               "--since", months[0], "--until", months[-1], "--workers", str(workers),
               "--worker-id", f"p{i}", "--report", str(report), "--log-level", "warn",
               "--database-url", url]
        if args.profile:
            cmd += ["--profile", args.profile]
        if args.lease_seconds:
            cmd += ["--lease-seconds", str(args.lease_seconds)]
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        procs[proc.pid] = {"name": f"p{i}", "proc": proc, "log": log, "report": report,
                           "started_s": time.perf_counter() - t0}
    # A watchdog: a sweep that outlives --timeout is a hang, to be reported, not waited for.
    hung = []

    def kill_all():
        hung.append(True)
        for p in procs.values():
            if p["proc"].poll() is None:
                p["proc"].send_signal(signal.SIGKILL)
    watchdog = threading.Timer(args.timeout, kill_all)
    watchdog.start()
    try:
        left = set(procs)
        while left:
            pid, status, usage = os.wait4(-1, 0)
            if pid not in left:
                continue
            left.discard(pid)
            p = procs[pid]
            p["proc"].returncode = os.waitstatus_to_exitcode(status)
            p["exit_s"] = time.perf_counter() - t0
            p["maxrss_bytes"] = usage.ru_maxrss * 1024
            p["cpu_s"] = usage.ru_utime + usage.ru_stime
    finally:
        watchdog.cancel()
    wall = max(p["exit_s"] for p in procs.values())
    runs = []
    for p in sorted(procs.values(), key=lambda p: p["name"]):
        p["log"].seek(0)
        log = p["log"].read().decode(errors="replace")
        p["log"].close()
        code = p["proc"].returncode
        if hung:
            raise BenchError(f"{label}: killed after --timeout {args.timeout} s (a hang?); "
                             f"{p['name']} exited {code}; its log:\n{log[-4000:]}")
        if code != 0:
            raise BenchError(f"{label}: {p['name']} exited {code}: {' '.join(map(str, p['proc'].args))}\n"
                             f"{log[-4000:]}")
        rep = json.loads(p["report"].read_text())
        runs.append({
            "worker": p["name"], "exit_code": code, "wall_s": p["exit_s"] - p["started_s"],
            "exit_s": p["exit_s"], "cpu_s": p["cpu_s"], "maxrss_bytes": p["maxrss_bytes"],
            "report_peak_rss_bytes": rep.get("peak_rss_bytes"),
            **{k: rep[k] for k in ("units_found", "due", "written", "up_to_date", "done_elsewhere",
                                   "failed", "failed_elsewhere", "interrupted", "rows_written",
                                   "listing_ms", "total_ms")},
            "unit_ms": [u["ms"] for u in rep["units"] if u["outcome"] == "written"],
            # the time its own units ran; the rest of its wall is start-up, listing, claiming, and
            # waiting for units other processes hold (polled every lease/4, at most 5 s)
            "busy_s": sum(u["ms"] for u in rep["units"] if u["outcome"] == "written") / 1000,
            "units": rep["units"],
        })
    written = sum(r["written"] for r in runs)
    rss = max(max(r["maxrss_bytes"], r["report_peak_rss_bytes"] or 0) for r in runs)
    return {"label": label, "processes": processes, "workers": workers, "wall_s": wall,
            "units_written": written, "units_per_min": written / (wall / 60) if written else 0.0,
            "rows_written": sum(r["rows_written"] for r in runs), "peak_rss_bytes": rss,
            "cpu_s": sum(r["cpu_s"] for r in runs),
            "listing_ms": max(r["listing_ms"] for r in runs), "runs": runs}


def check_fresh(m, units):
    """After a sweep on a fresh database: every unit written once, by one process, nothing failed."""
    problems = []
    for r in m["runs"]:
        if r["units_found"] != units:
            problems.append(f"{r['worker']} found {r['units_found']} units, expected {units}")
        if r["failed"] or r["failed_elsewhere"] or r["interrupted"]:
            problems.append(f"{r['worker']}: failed {r['failed']}, failed elsewhere {r['failed_elsewhere']}, "
                            f"interrupted {r['interrupted']}")
    by_unit = {}
    for r in m["runs"]:
        for u in r["units"]:
            if u["outcome"] == "written":
                by_unit.setdefault((u["org"], u["source"], u["month"]), []).append(r["worker"])
    twice = {k: v for k, v in by_unit.items() if len(v) > 1}
    if twice:
        problems.append(f"units written by more than one process: {twice}")
    if m["units_written"] != units or len(by_unit) != units:
        problems.append(f"{m['units_written']} units written ({len(by_unit)} distinct), expected {units}")
    if problems:
        raise BenchError(f"{m['label']}: " + "; ".join(problems))


def check_database(url, shape, reported_rows):
    """The claim table, the runs' records and the summary tables against each other: every unit
    succeeded exactly once, and its rows are in its org's table."""
    units = shape["units"]
    (total, once, failures, claims, succeeded, rows), = psql(url, f"""
        SELECT count(*), count(*) FILTER (WHERE successes = 1), coalesce(sum(failures), 0),
               coalesce(sum(claims), 0), count(*) FILTER (WHERE last_status = 'succeeded'),
               coalesce(sum(rows_written), 0)
        FROM {CLAIMS}""")
    problems = []
    if int(total) != units or int(once) != units:
        bad = psql(url, f"SELECT org, source_uuid, month, successes, failures, claims, last_status, last_error "
                        f"FROM {CLAIMS} WHERE successes <> 1 ORDER BY 1, 2, 3")
        problems.append(f"{CLAIMS}: {total} units, {once} with successes = 1 (expected {units}); "
                        f"the others: {bad}")
    if int(failures) or int(succeeded) != units:
        problems.append(f"{CLAIMS}: {failures} failures, {succeeded} last_status = succeeded")
    if int(rows) != reported_rows:
        problems.append(f"{CLAIMS}: {rows} rows_written in all, the reports say {reported_rows}")
    claimed = {(o, s, m): int(r) for o, s, m, r in psql(
        url, f"SELECT org, source_uuid, month, rows_written FROM {CLAIMS}")}
    in_tables = {}
    runs_ok = {}
    for org in shape["orgs"]:
        for s, m, n in psql(url, f"SELECT source_uuid, to_char(usage_start, 'YYYY-MM'), count(*) "
                                 f"FROM {org}.{SUMMARY_TABLE} GROUP BY 1, 2"):
            in_tables[(org, s, m)] = int(n)
        for s, m, n in psql(url, f"SELECT source_uuid, month, count(*) FROM {org}.costagg_runs "
                                 f"WHERE status = 'succeeded' GROUP BY 1, 2"):
            runs_ok[(org, s, m)] = int(n)
    if in_tables != claimed:
        diff = {k: (claimed.get(k), in_tables.get(k)) for k in set(claimed) | set(in_tables)
                if claimed.get(k) != in_tables.get(k)}
        problems.append(f"rows in the summary tables differ from {CLAIMS}.rows_written "
                        f"(unit: (claimed, in table)): {dict(list(diff.items())[:10])}")
    if set(runs_ok) != set(claimed) or any(n != 1 for n in runs_ok.values()):
        problems.append(f"costagg_runs: succeeded runs per unit {sorted(set(runs_ok.values()))}, "
                        f"{len(runs_ok)} units with one (expected {units})")
    if problems:
        raise BenchError("; ".join(problems))
    if int(claims) != units:
        print(f"warning: {claims} claims for {units} units in {CLAIMS} (a unit claimed twice: a lease ran out?)",
              flush=True)
    return {"units": int(total), "successes_1": int(once), "claims": int(claims),
            "rows_written": int(rows)}


def check_up_to_date(m, units):
    r, = m["runs"]
    if r["up_to_date"] != units or r["written"] or r["due"] or r["units_found"] != units:
        raise BenchError(f"{m['label']}: found {r['units_found']}, due {r['due']}, written {r['written']}, "
                         f"up to date {r['up_to_date']} (expected all {units} up to date)")


def fit(small_rows, small_ms, big_rows, big_ms):
    """time = a + b·rows through two points: (a in s, b in µs per row)."""
    b = (big_ms - small_ms) / (big_rows - small_rows)
    return (small_ms - b * small_rows) / 1000, b * 1000


def machine(args):
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), platform.processor())
    mem = next(int(l.split()[1]) * 1024 for l in Path("/proc/meminfo").read_text().splitlines()
               if l.startswith("MemTotal"))
    git = lambda *a: subprocess.run(["git", *a], capture_output=True, text=True, cwd=HERE.parent).stdout.strip()
    pg = psql(args.database_url, "SHOW server_version")[0][0]
    return {"cpus": os.cpu_count(), "nproc": len(os.sched_getaffinity(0)), "cpu": cpu, "memory_bytes": mem,
            "kernel": platform.release(), "costagg_commit": git("rev-parse", "--short", "HEAD"),
            "src_modified": bool(git("status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock")),
            "binary": str(args.costagg), "postgresql": pg,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")}


def mib(b):
    return b / (1 << 20)


def table(results):
    lines = ["| sweep | processes × workers | units written | wall (s) | units/min | rows written | "
             "peak RSS, largest process (MiB) | each process: wall (s) / own units' run time (s) / written / done elsewhere |",
             "|---|---|---|---|---|---|---|---|"]
    for m in results["measurements"]:
        each = ", ".join(f"{r['wall_s']:.1f} / {r['busy_s']:.1f} / {r['written']} / {r['done_elsewhere']}"
                         for r in m["runs"])
        lines.append(f"| {m['label']} | {m['processes']} × {m['workers']} | {m['units_written']} | "
                     f"{m['wall_s']:.2f} | {m['units_per_min']:.1f} | {m['rows_written']:,} | "
                     f"{mib(m['peak_rss_bytes']):.0f} | {each} |")
    u = results["up_to_date"]
    lines.append(f"| up to date (after {u['after']}) | 1 × {u['workers']} | 0 ({u['up_to_date']} up to date) | "
                 f"{u['wall_s']:.2f} | — | 0 | {mib(u['peak_rss_bytes']):.0f} | listing {u['listing_ms']} ms |")
    f = results["fixed_cost"]
    lines += [
        "",
        f"Up-to-date sweep of {u['up_to_date']} units: {u['wall_s']:.2f} s wall, listing {u['listing_ms']} ms "
        f"(target under {LISTING_TARGET_MS / 1000:.0f} s: {'met' if u['listing_ms'] < LISTING_TARGET_MS else 'NOT met'}).",
        f"Fixed cost per unit: {f['wall_s_per_unit']:.3f} s of wall per unit over a fleet of {f['units']} units of "
        f"{f['rows']:,} rows (one process × {f['workers']}, start-up and listing included: "
        f"{f['wall_s']:.2f} s / {f['units']}); the median unit's run took {f['median_unit_ms']} ms there.",
    ]
    if f.get("fit_a_s") is not None:
        lines.append(
            f"Fitted through the median unit run time (report `ms`) at {f['rows']:,} rows ({f['median_unit_ms']} ms) "
            f"and at {f['fit_big_rows']:,} rows ({f['fit_big_ms']} ms, the {f['fit_from']} run): "
            f"time per unit = {f['fit_a_s']:.3f} s + {f['fit_b_us_per_row']:.3f} µs × rows.")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--units", type=int, default=DEFAULT_UNITS, help="units in the fleet (default %(default)s)")
    p.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="pod usage rows per unit (default %(default)s)")
    p.add_argument("--orgs", type=int, default=4, help="orgs, at most (as many as divide --units; default 4)")
    p.add_argument("--months", default="2025-09,2025-10",
                   help="months, comma-separated (as many as divide --units; default %(default)s)")
    p.add_argument("--processes", default="1,2", help="process counts to measure, comma-separated (default 1,2)")
    p.add_argument("--workers", type=int, default=1, help="--workers of each sweep process (default 1)")
    p.add_argument("--workers-per-process", type=int, metavar="K",
                   help="also measure one process with --workers K")
    p.add_argument("--tiny-units", type=int, default=20, help="units of the tiny fleet (default 20)")
    p.add_argument("--tiny-rows", type=int, default=1000, help="rows per unit of the tiny fleet (default 1000)")
    p.add_argument("--profile", help="costagg's --profile for every sweep (default: the config's)")
    p.add_argument("--lease-seconds", type=int,
                   help="costagg's --lease-seconds for every sweep (default: the config's, 60); a process "
                        "polls units others hold every lease/4 seconds, at most 1")
    p.add_argument("--timeout", type=float, default=3600,
                   help="seconds a measurement may take before its sweeps are killed as hung (default 3600)")
    p.add_argument("--out", default=str(HERE / "results"), help="where fleet*.json goes")
    p.add_argument("--costagg", help="the costagg binary")
    p.add_argument("--database-url", help="a PostgreSQL whose user may create databases")
    p.add_argument("--data-dir", help="where generated fleets are kept")
    args = p.parse_args()
    if not (args.costagg and args.database_url and args.data_dir):
        p.error("--costagg, --database-url and --data-dir are required (scripts/bench-fleet gives them)")
    work_dir = Path(tempfile.mkdtemp(prefix="costagg-fleet-"))
    try:
        run(args, work_dir)
    except BenchError as e:
        sys.exit(f"fleet benchmark: {e}\n(the sweeps' logs and reports are kept in {work_dir})")
    subprocess.run(["rm", "-rf", str(work_dir)], check=True)


def run(args, work_dir):
    months = [m.strip() for m in args.months.split(",") if m.strip()]
    counts = [int(c) for c in args.processes.split(",") if c.strip()]
    data_dir = Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    root, shape = generate(args.costagg, data_dir, args.units, args.rows, args.orgs, months)
    tiny_root, tiny_shape = generate(args.costagg, data_dir, args.tiny_units, args.tiny_rows, args.orgs, months)
    print(f"fleet: {shape['units']} units = {len(shape['orgs'])} orgs × {shape['sources_per_org']} sources × "
          f"{len(shape['months'])} months, {shape['rows']:,} rows each", flush=True)
    results = {"machine": machine(args), "fleet": shape, "tiny_fleet": tiny_shape,
               "profile": args.profile, "lease_seconds": args.lease_seconds, "measurements": []}

    def measure(processes, workers, label):
        url = fresh_database(args.database_url, f"fleet_{label.replace(' ', '_').replace('×', 'x')}")
        m = sweep(args, root, shape["months"], url, processes, workers, label, work_dir)
        check_fresh(m, shape["units"])
        m["claims"] = check_database(url, shape, m["rows_written"])
        print(f"{label:<14} {m['wall_s']:8.2f} s wall, {m['units_written']} units, {m['units_per_min']:.1f} units/min, "
              f"{m['rows_written']:,} rows, peak RSS {mib(m['peak_rss_bytes']):.0f} MiB", flush=True)
        results["measurements"].append(m)
        return url

    first = counts[0] if 1 not in counts else 1
    for processes in [first] + [c for c in counts if c != first]:
        url = measure(processes, args.workers, f"{processes}p")
        if processes == first:
            u = sweep(args, root, shape["months"], url, 1, args.workers, "uptodate", work_dir)
            check_up_to_date(u, shape["units"])
            r = u["runs"][0]
            results["up_to_date"] = {"after": f"{processes}p", "workers": args.workers, "wall_s": u["wall_s"],
                                     "listing_ms": r["listing_ms"], "total_ms": r["total_ms"],
                                     "up_to_date": r["up_to_date"], "peak_rss_bytes": u["peak_rss_bytes"],
                                     "listing_target_met": r["listing_ms"] < LISTING_TARGET_MS}
            print(f"{'up to date':<14} {u['wall_s']:8.2f} s wall, listing {r['listing_ms']} ms, "
                  f"{r['up_to_date']} up to date", flush=True)
    if args.workers_per_process:
        measure(1, args.workers_per_process, f"1p{args.workers_per_process}w")

    # The fixed cost of a unit: the tiny fleet in one process, on a database of its own.
    url = fresh_database(args.database_url, "fleet_tiny")
    t = sweep(args, tiny_root, tiny_shape["months"], url, 1, args.workers, "tiny", work_dir)
    check_fresh(t, tiny_shape["units"])
    check_database(url, tiny_shape, t["rows_written"])
    tiny_ms = statistics.median(t["runs"][0]["unit_ms"])
    fixed = {"units": tiny_shape["units"], "rows": tiny_shape["rows"], "workers": args.workers,
             "wall_s": t["wall_s"], "wall_s_per_unit": t["wall_s"] / tiny_shape["units"],
             "median_unit_ms": tiny_ms, "listing_ms": t["listing_ms"], "peak_rss_bytes": t["peak_rss_bytes"],
             "how": "wall_s_per_unit: the tiny fleet's sweep wall time (one process, start-up and listing "
                    "included) over its units; fit: time = a + b*rows through the median per-unit run time "
                    "(report `ms`, written units) of the tiny fleet and of the one-process fleet run"}
    one = next((m for m in results["measurements"] if m["processes"] == 1 and m["workers"] == args.workers), None)
    if one and shape["rows"] != tiny_shape["rows"]:
        big_ms = statistics.median(ms for r in one["runs"] for ms in r["unit_ms"])
        a, b = fit(tiny_shape["rows"], tiny_ms, shape["rows"], big_ms)
        fixed.update({"fit_big_rows": shape["rows"], "fit_big_ms": big_ms, "fit_from": one["label"],
                      "fit_a_s": a, "fit_b_us_per_row": b})
    results["fixed_cost"] = fixed
    print(f"{'tiny fleet':<14} {t['wall_s']:8.2f} s wall for {tiny_shape['units']} units of "
          f"{tiny_shape['rows']:,} rows: {fixed['wall_s_per_unit']:.3f} s per unit", flush=True)

    for m in results["measurements"]:
        for r in m["runs"]:
            r.pop("units")  # every unit's line: in the sweeps' own reports, not kept here
    name = "fleet" if (args.units, args.rows) == (DEFAULT_UNITS, DEFAULT_ROWS) else f"fleet-{args.units}x{args.rows}"
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    m = results["machine"]
    print(f"\nMeasured {m['date']} at `{m['costagg_commit']}`{' (src modified)' if m['src_modified'] else ''} "
          f"on {m['nproc']} × {m['cpu']}, {m['memory_bytes'] / (1 << 30):.0f} GiB, PostgreSQL {m['postgresql']}; "
          f"{shape['units']} units of {shape['rows']:,} rows; results in {path}\n")
    print(table(results))


if __name__ == "__main__":
    main()
