"""Cluster stores benchmark (issue 6): the purge and query figures on
PostgreSQL beside SQLite, and serving throughput from S3 beside local disk.

Starts its own PostgreSQL cluster (scripts/pg-cluster.sh with PG_FSYNC=on:
fsync, synchronous_commit and full_page_writes on, as in production) and its
own S3 server (scripts/s3-server.sh: Garage, single node), and stops both at
the end, also on failure. The SQLite runs use an embedded server (SQLite +
local blob directory); the PostgreSQL runs a cluster node (PostgreSQL + S3).

- Purge: 10k, 100k and 1M variants (rows only, no blobs) loaded directly by
  SQL with the server stopped, counters set to match; the purge response
  time over HTTP, then the background reclaim until `reclaim status` is
  empty.
- Query: 100k variants (50k media items); wrk (1 thread, 8 connections)
  against the first page, a filtered and sorted page and single items
  (random ids), SQLite and PostgreSQL alternating, median of the runs.
- Serving: 1 KB, 100 KB and 10 MB objects by signed URL, wrk (1 thread, 64
  connections), vaultplus on local disk, on S3 (SQLite catalog, so that only
  the blob store differs), on S3 with --blob-cache-bytes 0 (every request
  reads from S3) and as a cluster node (PostgreSQL + S3).

Every server process (vaultplus, PostgreSQL, Garage) is pinned to one core
and wrk to the other. Prints a Markdown section for BENCHMARKS.md.
BENCH_SECONDS, BENCH_REPEATS, BENCH_PURGE_SIZES (comma-separated) and
BENCH_PARTS (any of purge,query,serving) change the runs. `--bin PATH` measures that binary instead of building this
checkout's. `--previous PATH` also measures another vaultplus binary (an
earlier build) in the same run: every figure twice, the two builds'
servers running side by side and their wrk runs alternating, each row of
this build beside the previous build's."""

import contextlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import BIN, ROOT, Server, build, machine  # noqa: E402

SERVER_CPU, CLIENT_CPU = "1", "0"
SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
PURGE_SIZES = [int(n) for n in os.environ.get("BENCH_PURGE_SIZES", "10000,100000,1000000").split(",")]
# Which parts run (a re-run of one part, e.g. BENCH_PARTS=query).
PARTS = os.environ.get("BENCH_PARTS", "purge,query,serving").split(",")
# (label, binary) of every build measured; main() adds --previous.
BUILDS = [("this build", BIN)]
QUERY_VARIANTS = 100_000
QUERY_CONNECTIONS = 8
SERVE_CONNECTIONS = 64
OBJECTS = [("1 KB", 1024), ("100 KB", 100 * 1024), ("10 MB", 10 * 1024 * 1024)]
FIRST_ID = 10_000_000
VARIANT_BYTES = 1024
QUERIES = [
    ("first page", "/v2/vault-plus/media?limit=50"),
    ("videos, durationMin=300, sort=duration_desc", "/v2/vault-plus/media?type=video&durationMin=300"
     "&sort=duration_desc&limit=50"),
    ("one item by id (random)", None),
]


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def progress(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pin(pid):
    run(["taskset", "-a", "-p", "-c", SERVER_CPU, str(pid)])


class Services:
    """The PostgreSQL cluster and the S3 server, both pinned to SERVER_CPU
    (every process they fork inherits it)."""

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="vaultplus-cluster-bench-")
        # As root, PostgreSQL runs as `postgres` and must reach its directory.
        os.chmod(self.root, 0o755)
        self.pg_dir = os.path.join(self.root, "pg")
        self.s3_dir = os.path.join(self.root, "s3")
        self.databases = 0
        self.pg_url = self.s3 = None

    def start(self):
        out = run(["taskset", "-c", SERVER_CPU, os.path.join(ROOT, "scripts", "pg-cluster.sh"), "start",
                   self.pg_dir], env={**os.environ, "PG_FSYNC": "on"})
        self.pg_url = out.strip().splitlines()[-1]
        run(["taskset", "-c", SERVER_CPU, os.path.join(ROOT, "scripts", "s3-server.sh"), "start", self.s3_dir])
        self.s3 = {}
        with open(os.path.join(self.s3_dir, "env")) as f:
            for line in f:
                m = re.match(r"export (\w+)=(.*)$", line.strip())
                if m:
                    self.s3[m.group(1)] = m.group(2)

    def stop(self):
        for script, d in (("pg-cluster.sh", self.pg_dir), ("s3-server.sh", self.s3_dir)):
            try:
                run([os.path.join(ROOT, "scripts", script), "stop", d])
            except subprocess.CalledProcessError as e:
                print(f"{script} stop failed: {e.stderr}", file=sys.stderr)
        shutil.rmtree(self.root, ignore_errors=True)

    def psql(self, url, sql):
        return run(["psql", url, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])

    def new_database(self):
        self.databases += 1
        name = f"bench_{self.databases}"
        self.psql(self.pg_url, f"CREATE DATABASE {name}")
        return self.pg_url.rsplit("/", 1)[0] + "/" + name

    def drop_database(self, url):
        self.psql(self.pg_url, f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")

    def cluster_stores(self, prefix):
        """--database/--blobs flags and env of a cluster node on a fresh database."""
        db = self.new_database()
        stores = ["--database", db, "--blobs", f"s3://{self.s3['VAULTPLUS_TEST_S3_BUCKET']}/{prefix}",
                  "--s3-endpoint", self.s3["VAULTPLUS_TEST_S3_ENDPOINT"], "--s3-allow-http", "true"]
        env = {k: self.s3[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION")}
        return stores, env, db


class Node:
    """A vaultplus server, pinned, on SQLite + local disk or on the cluster
    stores; stopped (data, database and all) by close(). `join`: another
    cluster Node whose database, bucket, key and connection this one shares
    (its database stays the other's to drop). `endpoint`: the S3 endpoint
    this node reaches the store by, if not Garage's own address (a proxy)."""

    def __init__(self, svc, catalog, *extra, blobs=None, prefix="bench", binary=BIN, join=None, endpoint=None):
        self.svc, self.catalog, self.db = svc, catalog, None
        stores, env, key = (), None, None
        if join:
            stores, env, key = list(join.server.stores), join.server.env, join.server.key
        elif catalog == "postgres" or blobs == "s3":
            stores, env, db = svc.cluster_stores(prefix)
            if catalog == "postgres":
                self.db = db
            else:
                svc.drop_database(db)
                stores = stores[2:]
        if endpoint:
            stores[stores.index("--s3-endpoint") + 1] = endpoint
        # The API rate limit off: the figures are the catalog's and the
        # stores', and wrk's requests would exhaust one key's budget.
        self.server = Server("--rate-limit-per-minute", "0", *extra, stores=stores, env=env, binary=binary,
                             key=key)
        pin(self.server.proc.pid)

    def restart_after(self, fn):
        """Stops the server, runs fn (a direct load), starts it again."""
        self.server.halt()
        fn()
        self.server.start()
        pin(self.server.proc.pid)

    def close(self):
        self.server.stop()
        if self.db:
            self.svc.drop_database(self.db)


def load(node, n, now=None):
    """Fills conn_bench's current scope with n stored variants (n/2 media
    items: full + thumb; odd ones videos with durations 0-599 s), rows only,
    and sets the scope's counters to match. The server must be stopped.
    Nodes loaded with the same `now` (milliseconds) hold the same times."""
    m = n // 2
    now = int(time.time() * 1000) if now is None else now
    if node.catalog == "postgres":
        scope = node.svc.psql(node.db, "SELECT scope_id FROM connections WHERE id = 'conn_bench'").strip()
        node.svc.psql(node.db, f"""
            INSERT INTO media (scope_id, media_id, sort_id, media_type, duration, created_at, cached_at, live_count)
            SELECT {scope}, ({FIRST_ID} + i)::text, lpad(({FIRST_ID} + i)::text, 32, '0') || '08',
                   CASE WHEN i % 2 = 1 THEN 'video' ELSE 'image' END,
                   CASE WHEN i % 2 = 1 THEN (i % 600)::float8 END, {now} - i, {now} - i, 2
            FROM generate_series(0, {m - 1}) AS i;
            INSERT INTO variants (scope_id, media_id, label, status, size_bytes, content_type, created_at,
                                  stored_at, last_accessed_at, blob_key, checksum)
            SELECT {scope}, ({FIRST_ID} + i)::text, l, 'stored', {VARIANT_BYTES},
                   CASE WHEN i % 2 = 1 AND l = 'full' THEN 'video/mp4' ELSE 'image/jpeg' END,
                   {now} - i, {now} - i, {now} - i, NULL, repeat('00', 32)
            FROM generate_series(0, {m - 1}) AS i, (VALUES ('full'), ('thumb')) AS v(l);
            UPDATE scopes SET live_count = {n}, stored_count = {n}, stored_bytes = {n * VARIANT_BYTES}
            WHERE id = {scope};""")
        # What autovacuum would do shortly after such a load on its own.
        node.svc.psql(node.db, "ANALYZE")
        return
    db = sqlite3.connect(os.path.join(node.server.dir, "catalog.sqlite"))
    scope = db.execute("SELECT scope_id FROM connections WHERE id = 'conn_bench'").fetchone()[0]
    with db:
        db.execute(f"""
            WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < {m - 1})
            INSERT INTO media (scope_id, media_id, sort_id, media_type, duration, created_at, cached_at, live_count)
            SELECT {scope}, CAST({FIRST_ID} + i AS TEXT), printf('%032d', {FIRST_ID} + i) || '08',
                   CASE WHEN i % 2 = 1 THEN 'video' ELSE 'image' END,
                   CASE WHEN i % 2 = 1 THEN CAST(i % 600 AS REAL) END, {now} - i, {now} - i, 2
            FROM s""")
        db.execute(f"""
            WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < {m - 1}),
                 v(l) AS (VALUES ('full'), ('thumb'))
            INSERT INTO variants (scope_id, media_id, label, status, size_bytes, content_type, created_at,
                                  stored_at, last_accessed_at, blob_key, checksum)
            SELECT {scope}, CAST({FIRST_ID} + i AS TEXT), l, 'stored', {VARIANT_BYTES},
                   CASE WHEN i % 2 = 1 AND l = 'full' THEN 'video/mp4' ELSE 'image/jpeg' END,
                   {now} - i, {now} - i, {now} - i, NULL, '{"00" * 32}'
            FROM s, v""")
        db.execute("UPDATE scopes SET live_count = ?, stored_count = ?, stored_bytes = ? WHERE id = ?",
                   (n, n, n * VARIANT_BYTES, scope))
    db.close()


def purge_one(svc, catalog, n, build):
    label, binary = build
    progress(f"purge: {n:,} variants on {catalog}, {label}")
    node = Node(svc, catalog, "--reclaim-interval-secs", "3600", prefix=f"purge-{n}", binary=binary)
    try:
        s = node.server
        node.restart_after(lambda: load(node, n))
        req = urllib.request.Request(f"{s.base}/v2/vault-plus/media", method="DELETE",
                                     headers={"apiKey": s.key, "x-connection-id": "conn_bench"})
        started = time.perf_counter()
        with urllib.request.urlopen(req, timeout=600) as r:
            body = r.read()
        elapsed = time.perf_counter() - started
        purged = json.loads(body)["purgedCount"]
        if purged != n:
            raise RuntimeError(f"{catalog} purge of {n}: purgedCount {purged} in {body!r}")
        started = time.perf_counter()
        while True:
            # On the load generator's core, not the server's.
            out = run(["taskset", "-c", CLIENT_CPU, binary, "reclaim", "status", "--data-dir", s.dir, *s.stores],
                      env={**os.environ, **s.env})
            if "retired_scopes=0" in out and "queued_blobs=0" in out:
                break
            if time.perf_counter() - started > 1800:
                raise RuntimeError(f"{catalog} reclaim of {n} did not finish: {out}")
            time.sleep(0.05)
        return elapsed, time.perf_counter() - started
    finally:
        node.close()


def wrk(url, connections, headers=None, lua=None):
    return wrk_figures(run(wrk_command(url, connections, headers, lua)))


def wrk_command(url, connections, headers=None, lua=None):
    cmd = ["taskset", "-c", CLIENT_CPU, "wrk", "-t1", f"-c{connections}", f"-d{SECONDS}s", "--timeout", "30s",
           "--latency"]
    for k, v in (headers or {}).items():
        cmd += ["-H", f"{k}: {v}"]
    if lua:
        cmd += ["-s", lua]
    return cmd + [url]


def wrk_figures(out):
    """Requests/s, p50 and p99 (ms) and errors of one wrk run's output."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def ms(label):
        m = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v

    errors = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())
    return rps, ms("50%"), ms("99%"), errors


def median(runs):
    """The run with the median requests/s."""
    return sorted(runs, key=lambda r: r[0])[len(runs) // 2]


RANDOM_ITEM_LUA = """
math.randomseed(42)
request = function()
  return wrk.format("GET", "/v2/vault-plus/media/" .. (%d + math.random(0, %d)))
end
"""


def query_bench(svc, tmp):
    lua = os.path.join(tmp, "random_item.lua")
    with open(lua, "w") as f:
        f.write(RANDOM_ITEM_LUA % (FIRST_ID, QUERY_VARIANTS // 2 - 1))
    with contextlib.ExitStack() as stack:
        nodes = {}
        for catalog in ("sqlite", "postgres"):
            for build, binary in BUILDS:
                node = Node(svc, catalog, "--reclaim-interval-secs", "3600", prefix="query", binary=binary)
                stack.callback(node.close)
                node.restart_after(lambda node=node: load(node, QUERY_VARIANTS))
                nodes[(catalog, build)] = node
        results = {}
        progress("query")
        for label, path in QUERIES:
            for catalog, node in nodes.items():
                s = node.server
                check = s.call("GET", path or f"/v2/vault-plus/media/{FIRST_ID + 1}")
                if path and len(check["items"]) != 50:
                    raise RuntimeError(f"{catalog} {path}: {len(check['items'])} items")
            runs = {c: [] for c in nodes}
            for _ in range(REPEATS):
                for catalog, node in nodes.items():
                    s = node.server
                    headers = {"apiKey": s.key, "x-connection-id": "conn_bench"}
                    url = s.base + (path or "/")
                    runs[catalog].append(wrk(url, QUERY_CONNECTIONS, headers, None if path else lua))
            results[label] = {c: median(r) for c, r in runs.items()}
        return results


def upload(s, media, size):
    req = urllib.request.Request(
        f"{s.base}/v2/vault-plus/media/{media}/variants/full", data=os.urandom(size), method="PUT",
        headers={"apiKey": s.key, "x-connection-id": "conn_bench", "Content-Type": "video/mp4"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.load(r)["url"]


SERVE_SETUPS = [
    ("local disk (SQLite)", "sqlite", None, ()),
    ("S3 (SQLite)", "sqlite", "s3", ()),
    ("S3, --blob-cache-bytes 0 (SQLite)", "sqlite", "s3", ("--blob-cache-bytes", "0")),
    ("S3 + PostgreSQL (cluster node)", "postgres", "s3", ()),
]


def serve_bench(svc):
    with contextlib.ExitStack() as stack:
        setups = []
        for i, (setup, catalog, blobs, extra) in enumerate(SERVE_SETUPS):
            for build, binary in BUILDS:
                node = Node(svc, catalog, *extra, blobs=blobs, prefix=f"serve-{i}-{len(setups)}", binary=binary)
                stack.callback(node.close)
                urls = {obj: upload(node.server, str(1000 + j), size) for j, (obj, size) in enumerate(OBJECTS)}
                for url in urls.values():
                    with urllib.request.urlopen(url, timeout=60) as r:
                        r.read()
                setups.append(((setup, build), node, urls))
        results = {}
        progress("serving")
        for obj, _ in OBJECTS:
            runs = {label: [] for label, _, _ in setups}
            for _ in range(REPEATS):
                for label, _, urls in setups:
                    runs[label].append(wrk(urls[obj], SERVE_CONNECTIONS))
            results[obj] = {label: median(r) for label, r in runs.items()}
        rss = {label: node.server.peak_rss_mib() for label, node, _ in setups}
        return results, rss


def main():
    # A SIGTERM runs the cleanup too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if "--bin" in sys.argv:
        BUILDS[0] = ("this build", os.path.abspath(sys.argv[sys.argv.index("--bin") + 1]))
    else:
        build()
    if "--previous" in sys.argv:
        BUILDS.append(("previous build", os.path.abspath(sys.argv[sys.argv.index("--previous") + 1])))
    tmp = tempfile.mkdtemp(prefix="vaultplus-cluster-bench-wrk-")
    svc = Services()
    try:
        svc.start()
        purges = [(n, catalog, b[0], *purge_one(svc, catalog, n, b)) for n in PURGE_SIZES
                  for catalog in ("sqlite", "postgres") for b in BUILDS] if "purge" in PARTS else []
        queries = query_bench(svc, tmp) if "query" in PARTS else None
        serving, rss = serve_bench(svc) if "serving" in PARTS else (None, None)
        pg_version = svc.psql(svc.pg_url, "SHOW server_version").strip().split()[0]
    finally:
        svc.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    report(purges, queries, serving, rss, pg_version)


def revision():
    head = run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]).strip()
    dirty = run(["git", "-C", ROOT, "status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock", "migrations"])
    return f"{head} + uncommitted changes in src/" if dirty.strip() else head


CATALOG = {"sqlite": "SQLite", "postgres": "PostgreSQL"}


def builds_note():
    if len(BUILDS) == 1:
        return ""
    return (f" Beside it, the previous build ({BUILDS[1][1]}), its servers running at "
            "the same time as this build's and its runs alternating with theirs; `/ previous` is this "
            "build's figure over the previous build's (purge: its reclaim rate).")


def build_col(build):
    """The build column of a row, when two builds are compared."""
    return f" {build} |" if len(BUILDS) > 1 else ""


def previous_col(build, figure, previous):
    """This build's figure over the previous build's, on this build's row."""
    if len(BUILDS) == 1:
        return ""
    return f" {figure / previous:.2f}x |" if build == BUILDS[0][0] else " |"


def report(purges, queries, serving, rss, pg_version):
    print("## Cluster stores: PostgreSQL beside SQLite, S3 beside local disk (issue 6)\n")
    this = revision() if BUILDS[0][1] == BIN else BUILDS[0][1]
    print(f"Machine: {machine()}. Release build of {this}.{builds_note()} SQLite: embedded server "
          "(WAL, synchronous=FULL, "
          f"local blobs). PostgreSQL {pg_version} with fsync, synchronous_commit and full_page_writes "
          "on, over TCP on loopback; S3: Garage 2.5.0, single node, on loopback. Every server process "
          "(vaultplus, PostgreSQL, Garage) pinned to one core, wrk (1 thread) to the other; "
          f"{SECONDS} s per wrk run, median of {REPEATS} alternating runs.\n")
    extra = len(BUILDS) > 1
    if purges:
        report_purges(purges, extra)
    if queries:
        report_queries(queries, extra)
    if serving:
        report_serving(serving, rss, extra)


def report_purges(purges, extra):
    print("### Purge\n")
    print("Rows only (no blobs), loaded by SQL with the server stopped. Response time measured by the "
          "client; reclaim until `vaultplus reclaim status` shows nothing left (polled every 50 ms, from "
          "the load generator's core), at the default `--reclaim-share 0.5`.\n")
    print("| variants | catalog |" + (" build |" if extra else "") +
          " purge response (ms) | purgedCount | background reclaim (s) | reclaim variants/s |" +
          (" / previous |" if extra else ""))
    print("| ---: | --- |" + (" --- |" if extra else "") + " ---: | ---: | ---: | ---: |" + (" ---: |" if extra else ""))
    rate = {(n, c, b): n / r for n, c, b, _, r in purges}
    for n, catalog, build, elapsed, reclaim in purges:
        row = f"| {n:,} | {CATALOG[catalog]} |{build_col(build)}"
        row += f" {elapsed * 1000:.1f} | {n:,} | {reclaim:.1f} | {n / reclaim:,.0f} |"
        print(row + previous_col(build, n / reclaim, rate[(n, catalog, BUILDS[-1][0])]))
    print()


def report_queries(queries, extra):
    print("### Query\n")
    print(f"{QUERY_VARIANTS:,} variants ({QUERY_VARIANTS // 2:,} media items, half of them videos); "
          f"wrk with {QUERY_CONNECTIONS} connections. Pages of 50.\n")
    print("| request | catalog |" + (" build |" if extra else "") +
          " requests/s | p50 (ms) | p99 (ms) | errors | PostgreSQL / SQLite |" + (" / previous |" if extra else ""))
    print("| --- | --- |" + (" --- |" if extra else "") + " ---: | ---: | ---: | ---: | ---: |" + (" ---: |" if extra else ""))
    for label, path in QUERIES:
        shown = f"`GET {path}`" if path else "`GET /v2/vault-plus/media/{id}`, random ids"
        r = queries[label]
        for catalog in ("sqlite", "postgres"):
            for build, _ in BUILDS:
                rps, p50, p99, err = r[(catalog, build)]
                ratio = f"{rps / r[('sqlite', build)][0]:.2f}x" if catalog == "postgres" else ""
                row = f"| {shown} | {CATALOG[catalog]} |{build_col(build)}"
                row += f" {rps:,.0f} | {p50:.2f} | {p99:.2f} | {err} | {ratio} |"
                print(row + previous_col(build, rps, r[(catalog, BUILDS[-1][0])][0]))
    print()


def report_serving(serving, rss, extra):
    print("### Serving by signed URL\n")
    print(f"wrk with {SERVE_CONNECTIONS} connections, one object per run.\n")
    print("| object | blob store |" + (" build |" if extra else "") +
          " requests/s | MB/s | p50 (ms) | p99 (ms) | errors | / local disk |" + (" / previous |" if extra else ""))
    print("| --- | --- |" + (" --- |" if extra else "") + " ---: | ---: | ---: | ---: | ---: | ---: |" +
          (" ---: |" if extra else ""))
    first = SERVE_SETUPS[0][0]
    for obj, size in OBJECTS:
        r = serving[obj]
        for setup, *_ in SERVE_SETUPS:
            for build, _ in BUILDS:
                rps, p50, p99, err = r[(setup, build)]
                local = r[(first, build)][0]
                ratio = f"{rps / local:.2f}x" if setup != first else ""
                row = f"| {obj} | {setup} |{build_col(build)}"
                row += f" {rps:,.0f} | {rps * size / 1e6:,.1f} | {p50:.2f} | {p99:.2f} | {err} | {ratio} |"
                print(row + previous_col(build, rps, r[(setup, BUILDS[-1][0])][0]))
    print()
    print("vaultplus peak resident memory over the serving runs: " +
          ", ".join(f"{setup}{f' ({build})' if extra else ''} {v:.0f} MiB" for (setup, build), v in rss.items()) + ".")


if __name__ == "__main__":
    main()
