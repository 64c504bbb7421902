"""Cluster coherence benchmark (issue 14): what the look-up cache on cluster
nodes buys, each figure beside its peer in the same run.

Starts its own PostgreSQL (fsync on) and Garage through bench/cluster.py's
Services, and stops them and every vaultplus process at the end, also on
failure. Three parts (BENCH_PARTS, any of serving,scaling,purge):

- Serving: 1 KB and 100 KB objects by signed URL, wrk (1 thread, 64
  connections), a cluster node (PostgreSQL + S3) beside an embedded node
  (SQLite + local directory); every URL fetched once before. Target: the
  cluster node at 0.8x of the embedded node or better.
- Scaling: two cluster nodes on one database, a 1 KB object uploaded through
  the first and fetched once through each; wrk on the first node alone,
  then one wrk per node at once (requests/s summed). The machine has two
  cores, so the scaling is also shown as PostgreSQL transactions per 100
  media requests: the database's xact_commit + xact_rollback just before
  each run and 11 s after it (PostgreSQL publishes a backend's counts up to
  10 s late), from pg_stat_database over a connection to another database
  (so the reads are not counted), over wrk's request count. Background
  traffic (lease renewals, workers) is included, and also measured alone
  in idle slots of the same length, so a net figure is shown too. Target:
  at most one per 100 requests on a warm cache.
- Purge: BENCH_PURGES times (default 50): a 1 KB item uploaded through node
  A, its URL fetched through every node, then `DELETE /v2/vault-plus/media`
  through A timed by the client (purgedCount must be 1, and afterwards no
  node may serve the URL); on three live nodes beside one single node, the
  two loops interleaved. Target: under 50 ms on three live nodes.

Every server process (vaultplus, PostgreSQL, Garage) is pinned to one core;
wrk, the purge client and the statistics reads to the other. BENCH_SECONDS
and BENCH_REPEATS (median of alternating runs) as in bench/cluster.py.
`--bin PATH` measures that binary instead of building this checkout's;
`--previous PATH` measures another build in the same run, its servers beside
this build's and its runs alternating with theirs. Prints a Markdown section
for BENCHMARKS.md."""

import contextlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import (BUILDS, CLIENT_CPU, REPEATS, SECONDS, Node, Services, build_col, median,  # noqa: E402
                     previous_col, progress, revision, upload, wrk, wrk_command, wrk_figures)
from common import BIN, build, machine  # noqa: E402

PARTS = os.environ.get("BENCH_PARTS", "serving,scaling,purge").split(",")
PURGES = int(os.environ.get("BENCH_PURGES", "50"))
CONNECTIONS = 64
OBJECTS = [("1 KB", 1024), ("100 KB", 100 * 1024)]
SCALING_BYTES = 1024
# PostgreSQL (15+) flushes a backend's pending statistics at most every
# second while busy and 10 s after it went idle (PGSTAT_IDLE_INTERVAL).
STATS_SETTLE = 11
SERVE_SETUPS = [
    ("embedded node (SQLite + local dir)", "sqlite", None),
    ("cluster node (PostgreSQL + S3)", "postgres", "s3"),
]
PURGE_SETUPS = [("three live nodes", 3), ("one node", 1)]


def ensure_wrk():
    if shutil.which("wrk") is None:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, env=env)


@contextlib.contextmanager
def on_client_core():
    """This process on the load generator's core, for timing requests it
    sends itself (set after the servers started: they must not inherit it,
    as a runtime sizes its threads by the cores it may use)."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {int(CLIENT_CPU)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def fetch(url):
    """The status of a GET (the body read)."""
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def on(node, url, first):
    """A signed URL handed out by `first`, through `node` (they share keys)."""
    assert url.startswith(first.server.base), url
    return node.server.base + url[len(first.server.base):]


def warm(url):
    status = fetch(url)
    if status != 200:
        raise RuntimeError(f"{url}: {status}")


def cluster(svc, n, prefix, binary):
    """n cluster nodes on one fresh database and bucket prefix; the first
    owns the database. Close them in reverse order."""
    first = Node(svc, "postgres", blobs="s3", prefix=prefix, binary=binary)
    nodes = [first]
    try:
        for _ in range(n - 1):
            nodes.append(Node(svc, "postgres", binary=binary, join=first))
    except BaseException:
        for node in reversed(nodes):
            node.close()
        raise
    return nodes


def serve_bench(svc):
    with contextlib.ExitStack() as stack:
        setups = []
        for setup, catalog, blobs in SERVE_SETUPS:
            for build_label, binary in BUILDS:
                node = Node(svc, catalog, blobs=blobs, prefix=f"serve-{len(setups)}", binary=binary)
                stack.callback(node.close)
                urls = {obj: upload(node.server, str(1000 + j), size) for j, (obj, size) in enumerate(OBJECTS)}
                for url in urls.values():
                    warm(url)
                setups.append(((setup, build_label), urls))
        progress("serving")
        results = {}
        for obj, _ in OBJECTS:
            runs = {label: [] for label, _ in setups}
            for _ in range(REPEATS):
                for label, urls in setups:
                    runs[label].append(wrk(urls[obj], CONNECTIONS))
            results[obj] = {label: median(r) for label, r in runs.items()}
        return results


def requests_done(out):
    return int(re.search(r"(\d+) requests in ", out).group(1))


def wrk_together(urls):
    """One wrk per URL, all at once: (summed requests/s, summed requests,
    summed errors)."""
    procs = [subprocess.Popen(wrk_command(url, CONNECTIONS), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for url in urls]
    outs = []
    for p in procs:
        out, err = p.communicate()
        if p.returncode != 0:
            raise RuntimeError(f"wrk failed ({p.returncode}): {err}")
        outs.append(out)
    figures = [wrk_figures(out) for out in outs]
    return (sum(f[0] for f in figures), sum(requests_done(out) for out in outs), sum(f[3] for f in figures))


def transactions(svc, db):
    """The database's committed and rolled-back transactions so far, read
    over a connection to the server's maintenance database: the read itself
    is then not counted in `db`."""
    with on_client_core():
        out = svc.psql(svc.pg_url, "SELECT xact_commit + xact_rollback FROM pg_stat_database "
                       f"WHERE datname = '{db.rsplit('/', 1)[1]}'")
    return int(out.strip())


def slot(svc, db, urls):
    """One wrk per URL at once (no URL: an idle slot as long): requests/s
    and requests summed, errors, and the database's transactions from just
    before until STATS_SETTLE s after."""
    before = transactions(svc, db)
    if urls:
        rps, count, errors = wrk_together(urls)
    else:
        time.sleep(SECONDS)
        rps = count = errors = 0
    time.sleep(STATS_SETTLE)
    return rps, count, errors, transactions(svc, db) - before


SCALING_SETUPS = [("idle", 0), ("one node", 1), ("two nodes together", 2)]


def scaling_bench(svc):
    with contextlib.ExitStack() as stack:
        pairs = []
        for i, (build_label, binary) in enumerate(BUILDS):
            a, b = cluster(svc, 2, f"scale-{i}", binary)
            stack.callback(a.close)
            stack.callback(b.close)
            url = upload(a.server, "1", SCALING_BYTES)
            urls = [url, on(b, url, a)]
            for u in urls:
                warm(u)
            pairs.append((build_label, a.db, urls))
        progress("scaling")
        # The set-up's own counts published before the first slot.
        time.sleep(STATS_SETTLE)
        runs = {}  # (setup, build) -> [(requests/s, requests, errors, transactions)]
        for _ in range(REPEATS):
            for setup, n in SCALING_SETUPS:
                for build_label, db, urls in pairs:
                    runs.setdefault((setup, build_label), []).append(slot(svc, db, urls[:n]))
        return runs


def purge_once(nodes, media):
    """Upload through the first node, fetch through all, purge through the
    first: the purge's response time (s)."""
    a = nodes[0]
    url = upload(a.server, media, 1024)
    for node in nodes:
        warm(on(node, url, a))
    req = urllib.request.Request(f"{a.server.base}/v2/vault-plus/media", method="DELETE",
                                 headers={"apiKey": a.server.key, "x-connection-id": "conn_bench"})
    started = time.perf_counter()
    with urllib.request.urlopen(req, timeout=60) as r:
        body = r.read()
    elapsed = time.perf_counter() - started
    purged = json.loads(body)["purgedCount"]
    if purged != 1:
        raise RuntimeError(f"purge through {a.server.base}: purgedCount {purged} in {body!r}")
    for node in nodes:
        status = fetch(on(node, url, a))
        if status == 200:
            raise RuntimeError(f"{node.server.base} served a purged URL ({media})")
    return elapsed


def purge_bench(svc):
    with contextlib.ExitStack() as stack:
        setups = []
        for setup, n in PURGE_SETUPS:
            for build_label, binary in BUILDS:
                nodes = cluster(svc, n, f"purge-{len(setups)}", binary)
                for node in nodes:
                    stack.callback(node.close)
                setups.append(((setup, build_label), nodes))
        progress("purge")
        times = {label: [] for label, _ in setups}
        with on_client_core():
            for i in range(PURGES):
                for label, nodes in setups:
                    times[label].append(purge_once(nodes, str(1 + i)))
        return times


def percentile(values, q):
    """Nearest rank."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def main():
    # A SIGTERM runs the cleanup too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if "--bin" in sys.argv:
        BUILDS[0] = ("this build", os.path.abspath(sys.argv[sys.argv.index("--bin") + 1]))
    else:
        build()
    if "--previous" in sys.argv:
        BUILDS.append(("previous build", os.path.abspath(sys.argv[sys.argv.index("--previous") + 1])))
    ensure_wrk()
    svc = Services()
    try:
        svc.start()
        serving = serve_bench(svc) if "serving" in PARTS else None
        scaling = scaling_bench(svc) if "scaling" in PARTS else None
        purges = purge_bench(svc) if "purge" in PARTS else None
        pg_version = svc.psql(svc.pg_url, "SHOW server_version").strip().split()[0]
    finally:
        svc.stop()
    report(serving, scaling, purges, pg_version)


def report(serving, scaling, purges, pg_version):
    print("## Cluster coherence: serving from memory, revoking everywhere (issue 14)\n")
    this = f"release build of {revision()}" if BUILDS[0][1] == BIN else f"`{BUILDS[0][1]}`"
    previous = ""
    if len(BUILDS) > 1:
        previous = (f" Beside it, the previous build (`{BUILDS[1][1]}`), its servers running at the same time "
                    "as this build's and its runs alternating with theirs; `/ previous` is this build's figure "
                    "over the previous build's (purge: its p50).")
    print(f"Machine: {machine()}. Binary: {this}.{previous} PostgreSQL {pg_version} with fsync, "
          "synchronous_commit and full_page_writes on, over TCP on loopback; S3: Garage 2.5.0, single node, on "
          "loopback; embedded node: SQLite (WAL, synchronous=FULL) + local blob directory. API rate limit off. "
          "Every server process (vaultplus, PostgreSQL, Garage) pinned to one core; wrk (1 thread, "
          f"{CONNECTIONS} connections each), the purge client and the statistics reads to the other. "
          f"{SECONDS} s per wrk run, median of {REPEATS} alternating runs; {PURGES} purges per setup.\n")
    extra = len(BUILDS) > 1
    if serving:
        report_serving(serving, extra)
    if scaling:
        report_scaling(scaling, extra)
    if purges:
        report_purges(purges, extra)


def header(columns, extra, build_at):
    """Markdown table head: `columns` as (title, right-aligned); the build
    column after the first `build_at` columns, as build_col() puts it."""
    cols = list(columns)
    if extra:
        cols.insert(build_at, ("build", False))
        cols.append(("/ previous", True))
    print("| " + " | ".join(t for t, _ in cols) + " |")
    print("| " + " | ".join("---:" if r else "---" for _, r in cols) + " |")


def report_serving(serving, extra):
    print("### Serving small objects by signed URL\n")
    print("Each URL fetched once before the runs. Target: the cluster node at 0.8x of the embedded node or "
          "better.\n")
    header([("object", False), ("node", False), ("requests/s", True), ("MB/s", True), ("p50 (ms)", True),
            ("p99 (ms)", True), ("errors", True), ("cluster / embedded", True)], extra, 2)
    embedded, cluster_node = SERVE_SETUPS[0][0], SERVE_SETUPS[1][0]
    for obj, size in OBJECTS:
        r = serving[obj]
        for setup, *_ in SERVE_SETUPS:
            for build_label, _ in BUILDS:
                rps, p50, p99, err = r[(setup, build_label)]
                ratio = f"{rps / r[(embedded, build_label)][0]:.2f}x" if setup == cluster_node else ""
                row = f"| {obj} | {setup} |{build_col(build_label)}"
                row += f" {rps:,.0f} | {rps * size / 1e6:,.1f} | {p50:.2f} | {p99:.2f} | {err} | {ratio} |"
                print(row + previous_col(build_label, rps, r[(setup, BUILDS[-1][0])][0]))
    print()


def report_scaling(runs, extra):
    print("### Two cluster nodes together beside one\n")
    print(f"Two nodes on one database; a {SCALING_BYTES // 1024} KB object by signed URL, fetched once through "
          "each node before the runs. One node: wrk on the first node alone (the second live and idle); two "
          "nodes: one wrk per node at once, requests/s summed. Both nodes share the server core with "
          "PostgreSQL and Garage (two cores in all), so requests/s cannot scale here; the round trips show "
          "what would. PostgreSQL transactions: the database's `xact_commit + xact_rollback` "
          "(`pg_stat_database`) read just before each run and again "
          f"{STATS_SETTLE} s after it (PostgreSQL publishes a backend's counts up to 10 s late), over a "
          "connection to another database (the reads are not counted); so background traffic (lease "
          "renewals, workers) over those seconds is included. Idle: the same slot with no requests, its "
          "transactions the background alone; net: less one idle slot's mean per run. Per 100 requests: "
          "over all runs. Target: at most one per 100 requests on a warm cache.\n")
    header([("nodes", False), ("requests/s", True), ("requests (all runs)", True), ("errors", True),
            ("PostgreSQL transactions (all runs)", True), ("per 100 requests", True),
            ("net per 100 requests", True), ("two / one", True)], extra, 1)
    total = {}
    for (setup, build_label), r in runs.items():
        total[(setup, build_label)] = (median(r)[0], sum(x[1] for x in r), sum(x[2] for x in r),
                                       sum(x[3] for x in r), len(r))
    for setup, _ in SCALING_SETUPS:
        for build_label, _ in BUILDS:
            rps, count, errors, xacts, slots = total[(setup, build_label)]
            row = f"| {setup} |{build_col(build_label)}"
            if setup == "idle":
                print(row + f" | | | {xacts:,} ({xacts / slots:,.0f} per slot of {SECONDS + STATS_SETTLE} s) | | |"
                      f" |{' |' if extra else ''}")
                continue
            idle = total[("idle", build_label)]
            net = max(0.0, xacts - idle[3] / idle[4] * slots)
            ratio = f"{rps / total[('one node', build_label)][0]:.2f}x" if setup != "one node" else ""
            row += (f" {rps:,.0f} | {count:,} | {errors} | {xacts:,} | {xacts / count * 100:.2f} |"
                    f" {net / count * 100:.2f} | {ratio} |")
            print(row + previous_col(build_label, rps, total[(setup, BUILDS[-1][0])][0]))
    print()


def report_purges(purges, extra):
    print("### Purge response\n")
    print(f"{PURGES} times: a 1 KB item uploaded through node A, its URL fetched through every node, then "
          "`DELETE /v2/vault-plus/media` through A, timed by the client (a new TCP connection each); every "
          "purge answered purgedCount 1 and no node served the URL after it. The setups' loops interleaved. "
          "Target: under 50 ms on three live nodes.\n")
    header([("nodes", False), ("purges", True), ("p50 (ms)", True), ("p99 (ms)", True), ("max (ms)", True),
            ("p50 / one node", True)], extra, 1)
    for setup, _ in PURGE_SETUPS:
        for build_label, _ in BUILDS:
            t = purges[(setup, build_label)]
            p50 = percentile(t, 0.5)
            one = percentile(purges[("one node", build_label)], 0.5)
            ratio = f"{p50 / one:.2f}x" if setup != "one node" else ""
            row = f"| {setup} |{build_col(build_label)}"
            row += (f" {len(t)} | {p50 * 1000:.1f} | {percentile(t, 0.99) * 1000:.1f} | {max(t) * 1000:.1f} |"
                    f" {ratio} |")
            print(row + previous_col(build_label, p50, percentile(purges[(setup, BUILDS[-1][0])], 0.5)))
    print()


if __name__ == "__main__":
    main()
