"""The scale benchmark: costagg and DuckDB on the same generated months.

For each size it generates a month with `costagg generate` (kept in --data-dir), loads the
generated nodes' roles into koku's `reporting_ocp_nodes`, then times, --repeat times each:

  costagg summary   `costagg run --dry-run`: scan + summary, nothing written
  costagg write     `costagg run`: scan + summary + replace the month in PostgreSQL
  costagg <profile> the write again under each --extra-profile (e.g. the low-memory `small`)
  duckdb summary    benches/duckdb_summary.sql in a fresh DuckDB process, result materialised
  koku first        `costagg run` into koku's own table (tests/fixtures/koku_schema.sql: koku's
                    indexes, foreign keys, the month's partition) in a database of its own, where
                    OTHER_SOURCES other sources' rows fill the month's partition too; the
                    source's rows deleted (and the table vacuumed) before each run
  koku replace      the same, replacing the source's rows of the run before

Each run is its own process; wall time is measured around it and peak RSS is the process's
maximum resident set (wait4), as is its CPU time; the PostgreSQL server's CPU time during each
costagg run is read from /proc (every server process on this machine, exited backends included),
so it is meaningful only with the server local and otherwise idle. costagg's stage times come
from its run report. Medians go to benches/results/scale.json and scale.csv, plots to
benches/results/*.svg, and the table to benches/README.md between the `scale-table` markers.

Run it through scripts/bench-scale, which builds costagg and provides DuckDB and PostgreSQL.
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORG = "org1234567"
SOURCE = "6f5f1c0e-0000-4000-8000-000000000001"
MONTH = "2025-10"
ENABLED_KEYS = ["app", "environment", "version", "team", "cost_center", "vm_kubevirt_io_name"]
COST_CATEGORIES = [("openshift-%", 1), ("kube-%", 1)]
# Other clusters of the org whose rows share the month's partition in koku's table (copies of the
# source's rows under other source ids).
OTHER_SOURCES = 3
KOKU_SCHEMA = HERE.parent / "tests" / "fixtures" / "koku_schema.sql"
MARK_BEGIN = "<!-- scale-table:begin -->"
MARK_END = "<!-- scale-table:end -->"


def run_measured(cmd, env=None):
    """Runs cmd; returns (wall seconds, peak RSS bytes, CPU seconds, stdout, stderr)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(map(str, cmd))}\n{stderr[-4000:]}")
    return wall, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime, stdout, stderr


def server_cpu_seconds():
    """CPU seconds of every PostgreSQL server process on this machine so far, the backends that
    have exited included (their time is in the postmaster's reaped children). Differences of it
    around a run are the server's CPU for that run when nothing else uses the server."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if text[text.index("(") + 1:text.rindex(")")] != "postgres":
            continue
        fields = text[text.rindex(")") + 2:].split()
        ticks += int(fields[11]) + int(fields[12])
        try:
            parent = Path(f"/proc/{fields[1]}/stat").read_text()
        except OSError:
            parent = ""
        if "(postgres)" not in parent:
            ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def generate(costagg, data_dir, rows):
    root = data_dir / f"rows-{rows}"
    if (root / "reference" / "reporting_ocp_nodes.csv").exists():
        return root
    print(f"generating {rows} rows under {root}", flush=True)
    subprocess.run([costagg, "generate", "--rows", str(rows), "--month", MONTH, "--org", ORG,
                    "--source", SOURCE, "--seed", "1", "--out", str(root)], check=True)
    return root


def load_node_roles(database_url, root):
    subprocess.run(["psql", database_url, "-X", "-q", "-v", "ON_ERROR_STOP=1",
                    "-c", f"CREATE SCHEMA IF NOT EXISTS {ORG}",
                    "-c", f"DROP TABLE IF EXISTS {ORG}.reporting_ocp_nodes",
                    "-c", f"CREATE TABLE {ORG}.reporting_ocp_nodes (node text, resource_id text, node_role text)",
                    "-c", f"\\copy {ORG}.reporting_ocp_nodes FROM '{root}/reference/reporting_ocp_nodes.csv' CSV HEADER"],
                   check=True, env=dict(os.environ, PGOPTIONS="-c client_min_messages=warning"))


def costagg_run(args, root, extra, database_url=None):
    with tempfile.NamedTemporaryFile(suffix=".json") as report:
        cmd = [args.costagg, "run", "--config", str(HERE.parent / "config" / "costagg.yaml"),
               "--input", str(root), "--org", ORG, "--source", SOURCE, "--month", MONTH,
               "--database-url", database_url or args.database_url, "--report", report.name, *extra]
        env = dict(os.environ, COSTAGG_LOG_FORMAT="json", COSTAGG_LOG_LEVEL="warn")
        server_before = server_cpu_seconds()
        wall, rss, cpu, _, _ = run_measured(cmd, env)
        server_cpu = server_cpu_seconds() - server_before
        rep = json.loads(Path(report.name).read_text())
    return {"wall_s": wall, "peak_rss_bytes": rss, "cpu_s": cpu, "server_cpu_s": server_cpu,
            "summary_s": rep["summarize_write_ms"] / 1000, "rows_out": rep["rows_written"],
            "rows_in": rep["input"]["pod_usage"]["rows"]}


def psql(url, *commands):
    cmd = ["psql", url, "-X", "-q", "-v", "ON_ERROR_STOP=1"]
    for c in commands:
        cmd += ["-c", c]
    subprocess.run(cmd, check=True, env=dict(os.environ, PGOPTIONS="-c client_min_messages=warning"))


def koku_database(args, root):
    """A fresh database `koku` with koku's schema for the org: its tables, the source registered,
    the sample config's enabled keys (so the rows are the same as in costagg's own table), the
    month's partition as koku's processor creates it, the source's month written once and copied
    as OTHER_SOURCES other sources. Returns its URL."""
    url = args.database_url.rsplit("/", 1)[0] + "/koku"
    psql(args.database_url, "DROP DATABASE IF EXISTS koku", "CREATE DATABASE koku")
    ddl = KOKU_SCHEMA.read_text().replace("{schema}", ORG)
    subprocess.run(["psql", url, "-X", "-q", "-v", "ON_ERROR_STOP=1"], input=f"CREATE SCHEMA {ORG};\n{ddl}",
                   text=True, check=True, env=dict(os.environ, PGOPTIONS="-c client_min_messages=warning"))
    table = f"{ORG}.reporting_ocpusagelineitem_daily_summary"
    sources = [SOURCE] + [f"6f5f1c0e-0000-4000-8000-0000000001{i:02d}" for i in range(OTHER_SOURCES)]
    psql(url,
         *[f"INSERT INTO {ORG}.reporting_tenant_api_provider (uuid, name, type) VALUES ('{s}', '{s}', 'OCP')"
           for s in sources],
         *[f"INSERT INTO {ORG}.reporting_enabledtagkeys (uuid, key, enabled, provider_type) "
           f"VALUES (gen_random_uuid(), '{k}', true, 'OCP')" for k in ENABLED_KEYS],
         f"CREATE TABLE {table}_2025_10 PARTITION OF {table} FOR VALUES FROM ('2025-10-01') TO ('2025-11-01')")
    costagg_run(args, root, [], url)
    columns = subprocess.run(
        ["psql", url, "-XAtc", f"SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute "
                               f"WHERE attrelid = '{table}'::regclass AND attnum > 0 AND NOT attisdropped "
                               f"AND attname NOT IN ('uuid', 'source_uuid')"],
        capture_output=True, text=True, check=True).stdout.strip()
    psql(url, *[f"INSERT INTO {table} (uuid, source_uuid, {columns}) SELECT gen_random_uuid(), '{s}', {columns} "
                f"FROM {table} WHERE source_uuid = '{SOURCE}'" for s in sources[1:]],
         f"VACUUM ANALYZE {table}")
    return url


def koku_run(args, root, url, first):
    if first:
        psql(url, f"DELETE FROM {ORG}.reporting_ocpusagelineitem_daily_summary WHERE source_uuid = '{SOURCE}'",
             f"VACUUM ANALYZE {ORG}.reporting_ocpusagelineitem_daily_summary")
    return costagg_run(args, root, [], url)


def duckdb_sql(root):
    base = root / "data" / "parquet"
    part = f"source={SOURCE}/year=2025/month=10/*.parquet"
    return (HERE / "duckdb_summary.sql").read_text().format(
        pod_usage=f"{base}/{ORG}/OCP/pod_usage/{part}",
        storage_usage=f"{base}/daily/{ORG}/OCP/storage_usage/{part}",
        node_labels=f"{base}/{ORG}/OCP/node_labels/{part}",
        namespace_labels=f"{base}/{ORG}/OCP/namespace_labels/{part}",
        node_roles=f"{root}/reference/reporting_ocp_nodes.csv",
        start="2025-10-01", end="2025-11-01", days_in_month=31,
        enabled_keys="[" + ", ".join(f"'{k}'" for k in ENABLED_KEYS) + "]",
        cost_categories=", ".join(f"('{p}', {i})" for p, i in COST_CATEGORIES))


def duckdb_once(root, threads):
    """In a child process: run the summary, print {seconds, rows} as JSON."""
    import duckdb
    con = duckdb.connect(config={"threads": threads})
    start = time.perf_counter()
    con.execute(duckdb_sql(Path(root)))
    seconds = time.perf_counter() - start
    rows = con.execute("SELECT count(*) FROM summary").fetchone()[0]
    print(json.dumps({"seconds": seconds, "rows": rows, "version": duckdb.__version__}))


def duckdb_run(args, root):
    cmd = [sys.executable, __file__, "--duckdb-once", str(root), "--threads", str(args.threads)]
    wall, rss, cpu, out, _ = run_measured(cmd)
    res = json.loads(out)
    return {"wall_s": wall, "peak_rss_bytes": rss, "cpu_s": cpu, "summary_s": res["seconds"],
            "rows_out": res["rows"], "version": res["version"]}


def median_of(runs):
    keys = [k for k, v in runs[0].items() if isinstance(v, (int, float))]
    out = {k: statistics.median(r[k] for r in runs) for k in keys}
    out["runs"] = runs
    return out


def machine(args):
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), platform.processor())
    mem = next(int(l.split()[1]) * 1024 for l in Path("/proc/meminfo").read_text().splitlines()
               if l.startswith("MemTotal"))
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                         cwd=HERE.parent).stdout.strip()
    pg = subprocess.run(["psql", args.database_url, "-XAtc", "SHOW server_version"],
                        capture_output=True, text=True).stdout.strip()
    return {"cpus": os.cpu_count(), "cpu": cpu, "memory_bytes": mem, "kernel": platform.release(),
            "costagg_commit": rev, "postgresql": pg,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")}


def mib(b):
    return b / (1 << 20)


def table(results):
    lines = [
        "| pod rows | summary rows | costagg scan+summary (s) | costagg end to end (s) | "
        "DuckDB summary (s) | summary ratio | end-to-end ratio | costagg rows/s | "
        "costagg peak RSS (MiB) | " + "".join(f"`{p}` profile end to end (s) / RSS (MiB) | "
                                         for p in results["extra_profiles"])
        + "DuckDB peak RSS (MiB) |",
        "|" + "---|" * (10 + len(results["extra_profiles"])),
    ]
    for s in results["sizes"]:
        summ, write, duck = s["costagg_summary"], s["costagg_write"], s["duckdb"]
        extra = "".join(f"{s[p]['wall_s']:.2f} / {mib(s[p]['peak_rss_bytes']):.0f} | "
                        for p in results["extra_profiles"])
        lines.append(
            f"| {s['rows']:,} | {write['rows_out']:,.0f} | {summ['wall_s']:.2f} | "
            f"{write['wall_s']:.2f} | {duck['summary_s']:.2f} | "
            f"{summ['wall_s'] / duck['summary_s']:.2f}× | {write['wall_s'] / duck['summary_s']:.2f}× | "
            f"{s['rows'] / write['wall_s']:,.0f} | {mib(write['peak_rss_bytes']):.0f} | {extra}"
            f"{mib(duck['peak_rss_bytes']):.0f} |")
    return "\n".join(lines)


def koku_table(results):
    """Own table against koku's, in the same run (sizes that have both)."""
    lines = [
        f"| pod rows | own table end to end (s) | koku's table, first write (s) | ratio | "
        f"koku's table, replacement (s) | ratio | peak RSS, koku's table (MiB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in results["sizes"]:
        if "koku_first" not in s:
            continue
        own, first, again = s["costagg_write"]["wall_s"], s["koku_first"], s["koku_replace"]
        rss = max(first["peak_rss_bytes"], again["peak_rss_bytes"])
        lines.append(f"| {s['rows']:,} | {own:.2f} | {first['wall_s']:.2f} | {first['wall_s'] / own:.2f}× | "
                     f"{again['wall_s']:.2f} | {again['wall_s'] / own:.2f}× | {mib(rss):.0f} |")
    return "\n".join(lines)


def slope(results, key, stage, base):
    """Time per row at the largest size over time per row at `base` rows (None if absent)."""
    sizes = {s["rows"]: s for s in results["sizes"]}
    largest = max(sizes)
    if base not in sizes or largest <= base:
        return None
    return (sizes[largest][key][stage] / largest) / (sizes[base][key][stage] / base)


def plot(results, out_dir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [s["rows"] for s in results["sizes"]]
    series = [("costagg scan+summary (dry run)", "costagg_summary", "wall_s"),
              ("costagg end to end (with PostgreSQL write)", "costagg_write", "wall_s"),
              ("DuckDB summary", "duckdb", "summary_s")]
    series += [(f"costagg end to end, `{p}` profile", p, "wall_s") for p in results["extra_profiles"]]
    for name, ylabel, pick in [
        ("time_vs_rows.svg", "wall time (s)", lambda s, key, stage: s[key][stage]),
        ("memory_vs_rows.svg", "peak RSS (MiB)", lambda s, key, stage: mib(s[key]["peak_rss_bytes"])),
    ]:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for label, key, stage in series:
            if name.startswith("memory") and key == "costagg_summary":
                continue
            ax.plot(rows, [pick(s, key, stage) for s in results["sizes"]], marker="o", label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("pod usage rows (one month)")
        ax.set_ylabel(ylabel)
        m = results["machine"]
        ax.set_title(f"costagg vs DuckDB, {m['cpus']} cores, {m['date']}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out_dir / name)
        plt.close(fig)


def update_readme(results):
    readme = HERE / "README.md"
    text = readme.read_text()
    m = results["machine"]
    block = "\n".join([
        MARK_BEGIN,
        f"Measured {m['date']} at `{m['costagg_commit']}` on {m['cpus']} × {m['cpu']}, "
        f"{m['memory_bytes'] / (1 << 30):.0f} GiB, PostgreSQL {m['postgresql']}, "
        f"DuckDB {results['sizes'][0]['duckdb']['runs'][0]['version']} ({results['threads']} threads); "
        f"median of {results['repeat']}. costagg's times are whole processes (start-up, file checks, "
        f"malformed-row check included; scan+summary is `run --dry-run`); DuckDB's is the summary "
        f"statement alone, without starting Python. Ratios are costagg's time over DuckDB's.",
        "",
        table(results),
        "",
        f"Into koku's own table (`tests/fixtures/koku_schema.sql`, the month's partition holding "
        f"{OTHER_SOURCES} other sources' rows as well), same run:",
        "",
        koku_table(results),
        "",
        "".join(
            f"Time per row, {max(s['rows'] for s in results['sizes']):,} rows over {base:,} rows: "
            + ", ".join(f"{label} {v:.2f}×" for label, v in [
                ("costagg scan+summary", slope(results, "costagg_summary", "wall_s", base)),
                ("costagg end to end", slope(results, "costagg_write", "wall_s", base)),
                ("DuckDB", slope(results, "duckdb", "summary_s", base))] if v is not None) + ". "
            for base in (100_000, 1_000_000) if slope(results, "duckdb", "summary_s", base) is not None),
        "",
        "![time vs rows](results/time_vs_rows.svg) ![peak memory vs rows](results/memory_vs_rows.svg)",
        MARK_END,
    ])
    if MARK_BEGIN in text:
        text = text[:text.index(MARK_BEGIN)] + block + text[text.index(MARK_END) + len(MARK_END):]
    else:
        text += "\n" + block + "\n"
    readme.write_text(text)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", default="10000,100000,1000000,10000000",
                   help="comma-separated sizes (pod usage rows per month)")
    p.add_argument("--repeat", type=int, default=3, help="runs per tool and size; medians are kept")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="DuckDB threads (default: CPUs)")
    p.add_argument("--extra-profile", action="append", default=None,
                   help="also time costagg end to end under this profile (default: small)")
    p.add_argument("--no-duckdb", action="store_true", help="time costagg only (e.g. for 100M rows)")
    p.add_argument("--no-koku", action="store_true", help="skip the writes into koku's own table")
    p.add_argument("--out", default=str(HERE / "results"), help="where JSON, CSV and plots go")
    p.add_argument("--no-readme", action="store_true", help="leave benches/README.md alone")
    p.add_argument("--costagg", help="the release binary")
    p.add_argument("--database-url", help="a PostgreSQL to write to")
    p.add_argument("--data-dir", help="where generated months are kept")
    p.add_argument("--render", action="store_true",
                   help="only redraw the plots and the README table from --out's scale.json")
    p.add_argument("--duckdb-once", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.duckdb_once:
        duckdb_once(args.duckdb_once, args.threads)
        return
    if args.render:
        results = json.loads((Path(args.out) / "scale.json").read_text())
        plot(results, Path(args.out))
        update_readme(results)
        return
    if not (args.costagg and args.database_url and args.data_dir):
        p.error("--costagg, --database-url and --data-dir are required (scripts/bench-scale gives them)")
    extra_profiles = args.extra_profile if args.extra_profile is not None else ["small"]
    data_dir = Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {"machine": machine(args), "repeat": args.repeat, "threads": args.threads,
               "extra_profiles": extra_profiles, "sizes": []}
    for rows in [int(r) for r in args.rows.split(",")]:
        root = generate(args.costagg, data_dir, rows)
        load_node_roles(args.database_url, root)
        size = {"rows": rows}
        plan = [("costagg_summary", lambda: costagg_run(args, root, ["--dry-run", "--preview-rows", "1"])),
                ("costagg_write", lambda: costagg_run(args, root, []))]
        plan += [(prof, lambda prof=prof: costagg_run(args, root, ["--profile", prof])) for prof in extra_profiles]
        if not args.no_duckdb:
            plan.append(("duckdb", lambda: duckdb_run(args, root)))
        if not args.no_koku:
            url = koku_database(args, root)
            plan += [("koku_first", lambda: koku_run(args, root, url, True)),
                     ("koku_replace", lambda: koku_run(args, root, url, False))]
        for key, fn in plan:
            runs = []
            for i in range(args.repeat):
                runs.append(fn())
                r = runs[-1]
                server = f", PostgreSQL {r['server_cpu_s']:.2f} CPU-s" if "server_cpu_s" in r else ""
                print(f"{rows:>11,} {key:<16} run {i + 1}: {r['wall_s']:.2f} s wall, {r['summary_s']:.2f} s "
                      f"summary, {mib(r['peak_rss_bytes']):.0f} MiB, {r['cpu_s']:.2f} CPU-s{server}", flush=True)
            size[key] = median_of(runs)
        results["sizes"].append(size)
    name = "scale" if not args.no_duckdb else "scale-costagg-only"
    (out_dir / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    with open(out_dir / f"{name}.csv", "w") as f:
        f.write("rows,tool,wall_s,summary_s,peak_rss_mib,rows_out\n")
        for s in results["sizes"]:
            for key in [k for k in s if k != "rows"]:
                r = s[key]
                f.write(f"{s['rows']},{key},{r['wall_s']:.3f},{r['summary_s']:.3f},"
                        f"{mib(r['peak_rss_bytes']):.1f},{r['rows_out']:.0f}\n")
    if not args.no_duckdb:
        plot(results, out_dir)
        if not args.no_readme:
            update_readme(results)
        print(table(results))
    if not args.no_koku:
        print(koku_table(results))


if __name__ == "__main__":
    main()
