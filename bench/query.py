"""Query benchmark at a million (issue 13): every shape of
`GET /v2/vault-plus/media` (each filter, each sort, keyset cursors at pages
1, 20 and 1,000) plus one item, a batch of 100, `status`, `stats` and a
list's members, on SQLite (embedded server) and on PostgreSQL (cluster node:
PostgreSQL + S3, from bench/cluster.py's `Services`), in ONE connection of
`--variants` stored variants (half as many items, full + thumb; rows loaded
by bench/cluster.py's `load`), and one list holding every item.

For each shape: p50 and p99 of `--requests` sequential requests over one
keep-alive connection, and requests/s of wrk (1 thread, 8 connections).
Every answer is checked (status 200, page size, and the first answer's IDs
equal to the page the database itself computes), so a broken server cannot
score. Beside it, in the same run and on the same rows, two naive peers
run directly against the database (sqlite3 on a copy of the catalog file;
psycopg on the node's PostgreSQL database):

- LIMIT/OFFSET: the plain SQL of the query on the catalog's own tables and
  indexes (nulls last by `coalesce(column, extreme)`), paged by
  `OFFSET (page - 1) x 50`, plus a read of the page's variants by key;
- unindexed: the same rows in one flat table (a row per variant with its
  item's columns), no index but the primary key, the same SELECT with
  `ORDER BY ... LIMIT 50` (keyset for later pages), plus the page's variants.

Every server process (vaultplus, PostgreSQL, Garage) is pinned to one core,
wrk and this client to the other; the SQLite peer runs on the server's core
(it does the work the embedded server does there). A measurement stops after
`--max-seconds` (at least 5 samples; the sample count is shown when fewer
than `--requests`).

Usage: bench/query.py [--bin PATH] [--previous PATH] [--variants N]
  [--requests N] [--catalog sqlite|postgres|both] [--max-seconds S]
  [--wrk-seconds S] [--out PATH]
Needs wrk, psql and (for PostgreSQL) psycopg: `pip install 'psycopg[binary]'`.
Prints a Markdown section and writes it to --out (bench/results/query.md)."""

import argparse
import contextlib
import datetime
import http.client
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster  # noqa: E402
from cluster import CLIENT_CPU, FIRST_ID, SERVER_CPU, Node, Services, load, progress  # noqa: E402
from common import ROOT, machine  # noqa: E402

PAGE = 50
LIST_ID = "900"
TARGET_MS = {"sqlite": 10.0, "postgres": 20.0}
CATALOG = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
# The sort's column, and the expression that puts items without a value
# last (the query vaultplus ran before issue 13, as a naive peer writes it).
SORTS = {
    "createdAt": ("created_at", "m.created_at", "m.created_at"),
    "cachedAt": ("cached_at", "coalesce(m.cached_at, CAST('-9223372036854775808' AS BIGINT))",
                 "coalesce(m.cached_at, CAST('9223372036854775807' AS BIGINT))"),
    "duration": ("duration", "coalesce(m.duration, CAST('-1.7976931348623157e308' AS DOUBLE PRECISION))",
                 "coalesce(m.duration, CAST('1.7976931348623157e308' AS DOUBLE PRECISION))"),
}


def iso(ms):
    t = datetime.datetime.fromtimestamp(ms // 1000, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


class Shape:
    """One request shape. kind: query (media list; `params` the filters,
    `page` the page a cursor reaches), item, batch, status, stats, members."""

    def __init__(self, label, kind, params=None, page=1, empty=False):
        self.label, self.kind, self.params, self.page, self.empty = label, kind, params or {}, page, empty
        self.cursor = None  # the page's cursor, from a walk of the pages before it

    def sort(self):
        key, _, direction = self.params.get("sort", "createdAt_desc").partition("_")
        return key, direction == "desc"

    def path(self):
        if self.kind == "query":
            q = dict(self.params, limit=PAGE)
            if self.cursor:
                q["cursor"] = self.cursor
            return "/v2/vault-plus/media?" + urllib.parse.urlencode(q)
        return {"item": "/v2/vault-plus/media/{id}", "batch": "/v2/vault-plus/media/batch",
                "status": "/v2/vault-plus/status", "stats": "/v2/vault-plus/stats",
                "members": f"/v2/vault-plus/lists/{LIST_ID}/media?limit={PAGE}"}[self.kind]

    def shown(self):
        """The request as the report shows it (a cursor as `cursor=<page N>`)."""
        if self.kind == "batch":
            return "`POST /v2/vault-plus/media/batch` (100 random IDs)"
        if self.kind == "item":
            return "`GET /v2/vault-plus/media/{id}` (random IDs)"
        path = self.path()
        if self.cursor:
            path = path.split("&cursor=")[0] + f"&cursor=<page {self.page}>"
        return f"`GET {path}`"


def shapes(m, now):
    """Every shape, for m items created at now - i ms (i = 0..m-1)."""
    ms = lambda i: iso(now - i)  # noqa: E731
    out = [Shape("first page (default sort)", "query")]
    for key in ("createdAt", "cachedAt", "duration"):
        for d in ("desc", "asc"):
            out.append(Shape(f"sort={key}_{d}", "query", {"sort": f"{key}_{d}"}))
    out += [
        Shape("status=stored", "query", {"status": "stored"}),
        Shape("status=pending (none pending)", "query", {"status": "pending"}, empty=True),
        Shape("type=video", "query", {"type": "video"}),
        Shape("type=image", "query", {"type": "image"}),
        Shape("contentType=video/mp4", "query", {"contentType": "video/mp4"}),
        Shape("contentType matching nothing", "query", {"contentType": "audio/ogg"}, empty=True),
        Shape("durationMin=300", "query", {"durationMin": 300}),
        Shape("durationMax=30", "query", {"durationMax": 30}),
        Shape("type=video, durationMin=300, sort=duration_desc", "query",
              {"type": "video", "durationMin": 300, "sort": "duration_desc"}),
        Shape("type=video, durationMax=30, sort=duration_desc", "query",
              {"type": "video", "durationMax": 30, "sort": "duration_desc"}),
        Shape("createdAt window (middle half)", "query",
              {"createdAtFrom": ms(3 * m // 4), "createdAtTo": ms(m // 4)}),
        Shape("cachedAt window (middle 1%)", "query",
              {"cachedAtFrom": ms(m // 2 + m // 200), "cachedAtTo": ms(m // 2 - m // 200)}),
    ]
    last = max(1, (m - 1) // PAGE)  # the last page that is full
    for page in (1, 20, 1000):
        out.append(Shape(f"cursor: page {min(page, last):,}", "query", page=min(page, last)))
    out += [Shape("one item", "item"), Shape("batch of 100", "batch"), Shape("status", "status"),
            Shape("stats", "stats"), Shape(f"list members (list of {m:,})", "members")]
    return out


class Client:
    """One keep-alive HTTP connection to a server."""

    def __init__(self, server):
        u = urllib.parse.urlparse(server.base)
        self.host, self.port = u.hostname, u.port
        self.headers = {"apiKey": server.key, "x-connection-id": "conn_bench"}
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=600)

    def request(self, method, path, body=None):
        headers = dict(self.headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        self.conn.request(method, path, body=body, headers=headers)
        r = self.conn.getresponse()
        return r.status, r.read()

    def json(self, method, path, body=None):
        status, data = self.request(method, path, body)
        if status != 200:
            raise RuntimeError(f"{method} {path}: {status} {data[:300]!r}")
        return json.loads(data)


def timed(fn, requests, max_seconds):
    """Latencies (ms) of sequential calls of fn(i), and its answers."""
    lat, answers = [], []
    started = time.perf_counter()
    for i in range(requests):
        t = time.perf_counter()
        answers.append(fn(i))
        lat.append((time.perf_counter() - t) * 1000)
        if i >= 4 and time.perf_counter() - started > max_seconds:
            break
    return lat, answers


def pct(lat, p):
    s = sorted(lat)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


class Peer:
    """Naive SQL against the catalog's database (sqlite3 or psycopg)."""

    def __init__(self, catalog, target):
        self.catalog = catalog
        if catalog == "sqlite":
            self.db, self.ph = sqlite3.connect(target), "?"
        else:
            import psycopg
            self.db, self.ph = psycopg.connect(target, autocommit=True), "%s"

    def rows(self, sql, params=()):
        return self.db.execute(sql.replace("?", self.ph), params).fetchall()

    def script(self, sql):
        if self.catalog == "sqlite":
            self.db.executescript(sql)
        else:
            self.db.execute(sql)

    def flat_tables(self, scope):
        """The same rows in plain tables, no index but the primary key."""
        i, r, t = ("INTEGER", "REAL", "TEXT") if self.catalog == "sqlite" else \
            ("BIGINT", "DOUBLE PRECISION", 'TEXT COLLATE "C"')
        self.script(f"""
            CREATE TABLE naive_flat (scope_id {i} NOT NULL, media_id {t} NOT NULL, label {t} NOT NULL,
                sort_id {t} NOT NULL, media_type {t}, duration {r}, created_at {i} NOT NULL, cached_at {i},
                status {t} NOT NULL, content_type {t} NOT NULL, size_bytes {i} NOT NULL,
                access_count {i} NOT NULL, stored_at {i}, last_accessed_at {i} NOT NULL,
                PRIMARY KEY (scope_id, media_id, label));
            INSERT INTO naive_flat SELECT m.scope_id, m.media_id, v.label, m.sort_id, m.media_type, m.duration,
                m.created_at, m.cached_at, v.status, v.content_type, v.size_bytes, v.access_count, v.stored_at,
                v.last_accessed_at FROM media m JOIN variants v ON v.scope_id = m.scope_id AND v.media_id = m.media_id;
            CREATE TABLE naive_list (scope_id {i} NOT NULL, list_id {t} NOT NULL, media_id {t} NOT NULL,
                first_added_at {i} NOT NULL, PRIMARY KEY (scope_id, list_id, media_id));
            INSERT INTO naive_list SELECT scope_id, list_id, media_id, first_added_at FROM list_members;""")
        if self.catalog == "postgres":
            self.script("ANALYZE naive_flat; ANALYZE naive_list")

    # The SQL of each shape; `flat` picks the unindexed table.
    def page(self, shape, scope, flat, offset=0, after=None):
        p = shape.params
        key, desc = shape.sort()
        expr = SORTS[key][1 if desc else 2]
        d, cmp = ("DESC", "<") if desc else ("ASC", ">")
        cols = f"m.media_id, m.sort_id, {expr} AS k, m.media_type, m.duration, m.created_at, m.cached_at"
        args = [scope]
        variant = [(c, p[k]) for k, c in (("status", "status"), ("contentType", "content_type")) if k in p]
        if flat:
            sql = f"SELECT DISTINCT {cols} FROM naive_flat m WHERE m.scope_id = ?"
            for c, v in variant:
                sql += f" AND m.{c} = ?"
                args.append(v)
            if "status" not in p:
                sql += " AND m.status <> 'removed'"
        else:
            sql = f"SELECT {cols} FROM media m WHERE m.scope_id = ?"
            if variant:
                sql += " AND EXISTS (SELECT 1 FROM variants v WHERE v.scope_id = m.scope_id AND v.media_id = m.media_id"
                for c, v in variant:
                    sql += f" AND v.{c} = ?"
                    args.append(v)
                sql += " AND v.status <> 'removed')" if "status" not in p else ")"
            else:
                sql += " AND m.live_count > 0"
        conds = [("type", "m.media_type = ?", str), ("durationMin", "m.duration >= ?", float),
                 ("durationMax", "m.duration <= ?", float), ("createdAtFrom", "m.created_at >= ?", ms_of),
                 ("createdAtTo", "m.created_at <= ?", ms_of), ("cachedAtFrom", "m.cached_at >= ?", ms_of),
                 ("cachedAtTo", "m.cached_at <= ?", ms_of)]
        for k, cond, conv in conds:
            if k in p:
                sql += f" AND {cond}"
                args.append(conv(p[k]))
        if after is not None:
            sql += f" AND ({expr}, m.sort_id) {cmp} (?, ?)"
            args += list(after)
        sql += f" ORDER BY k {d}, m.sort_id {d} LIMIT {PAGE}"
        if offset:
            sql += f" OFFSET {offset}"
        page = self.rows(sql, args)
        ids = [r[0] for r in page]
        if ids:
            self.variants(scope, ids, flat)
        return ids, page

    def variants(self, scope, ids, flat):
        marks = ", ".join("?" * len(ids))
        if flat:
            return self.rows(f"SELECT * FROM naive_flat WHERE scope_id = ? AND media_id IN ({marks})",
                             [scope, *ids])
        self.rows(f"SELECT media_id FROM media WHERE scope_id = ? AND media_id IN ({marks})", [scope, *ids])
        return self.rows("SELECT media_id, label, status, content_type, size_bytes, access_count, created_at, "
                         f"stored_at, last_accessed_at FROM variants WHERE scope_id = ? AND media_id IN ({marks})",
                         [scope, *ids])

    def status(self, scope, flat):
        return self.rows(f"SELECT status, count(*), sum(size_bytes) FROM {'naive_flat' if flat else 'variants'} "
                         "WHERE scope_id = ? GROUP BY status", [scope])

    def stats(self, flat):
        if flat:
            return self.rows("SELECT count(*), sum(size_bytes) FROM naive_flat WHERE status = 'stored'")
        return self.rows("SELECT count(*), sum(v.size_bytes) FROM variants v JOIN connections c "
                         "ON c.scope_id = v.scope_id WHERE v.status = 'stored'")

    def members(self, scope, flat):
        table = "naive_list" if flat else "list_members"
        ids = [r[0] for r in self.rows(f"SELECT media_id FROM {table} WHERE scope_id = ? AND list_id = ? "
                                       f"ORDER BY first_added_at, media_id LIMIT {PAGE}", [scope, LIST_ID])]
        self.variants(scope, ids, flat)
        return ids


def ms_of(s):
    t = datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    return int(t.timestamp()) * 1000 + t.microsecond // 1000


def load_list(node, m):
    """One list holding every item of conn_bench (members oldest first, as
    the route pages them). The server must be stopped."""
    false = "(1 = 0)"
    sql = (f"INSERT INTO lists (scope_id, list_id, has_baseline, first_added_at, last_added_at) "
           f"SELECT scope_id, '{LIST_ID}', {false}, 0, 0 FROM connections WHERE id = 'conn_bench';"
           f"INSERT INTO list_members (scope_id, list_id, media_id, first_added_at, last_added_at, last_seen_at, "
           f"in_baseline) SELECT m.scope_id, '{LIST_ID}', m.media_id, m.created_at, m.created_at, m.created_at, "
           f"{false} FROM media m JOIN connections c ON c.scope_id = m.scope_id WHERE c.id = 'conn_bench';")
    if node.catalog == "postgres":
        node.svc.psql(node.db, sql + "ANALYZE lists; ANALYZE list_members")
    else:
        db = sqlite3.connect(os.path.join(node.server.dir, "catalog.sqlite"))
        with db:
            db.executescript(sql)
        db.close()


def wrk_lua(tmp, name, shape, m):
    """A wrk script for the requests a fixed URL cannot express."""
    path = os.path.join(tmp, f"{name}.lua")
    with open(path, "w") as f:
        f.write("math.randomseed(42)\n")
        if shape.kind == "item":
            f.write(f'request = function()\n  return wrk.format("GET", "/v2/vault-plus/media/" .. '
                    f'({FIRST_ID} + math.random(0, {m - 1})))\nend\n')
        else:
            f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                    f'wrk.body = {json.dumps(batch_body(random.Random(7), m).decode())}\n')
    return path


def batch_body(rng, m):
    return json.dumps({"mediaIds": [str(FIRST_ID + rng.randrange(m)) for _ in range(100)]}).encode()


def pin_self(cpu):
    os.sched_setaffinity(0, {int(cpu)})


class Bench:
    def __init__(self, args):
        self.args = args
        self.m = args.variants // 2
        cluster.SECONDS = max(1, min(args.wrk_seconds, int(args.max_seconds)))

    def catalog(self, svc, catalog, builds, tmp):
        """Loads one node per build, then measures every shape on each and on both peers."""
        n, m = self.args.variants, self.m
        with contextlib.ExitStack() as stack:
            nodes = []
            # One time for every build's rows: the time-window shapes and
            # their reference pages are computed once, from the first.
            loaded_at = int(time.time() * 1000)
            for i, (label, binary) in enumerate(builds):
                progress(f"{catalog}: loading {n:,} variants for {label}")
                node = Node(svc, catalog, "--reclaim-interval-secs", "3600", prefix=f"query-{i}",
                            binary=binary)
                stack.callback(node.close)
                node.restart_after(lambda node=node: (load(node, n, loaded_at), load_list(node, m)))
                nodes.append((label, node))
            first = nodes[0][1]
            if catalog == "sqlite":
                # A copy: the peers' tables and reads leave the server's file alone.
                copy = os.path.join(tmp, "catalog-copy.sqlite")
                src = sqlite3.connect(os.path.join(first.server.dir, "catalog.sqlite"))
                dst = sqlite3.connect(copy)
                src.backup(dst)
                src.close()
                dst.close()
                peer = Peer("sqlite", copy)
            else:
                peer = Peer("postgres", first.db)
            stack.callback(peer.db.close)
            scope = peer.rows("SELECT scope_id FROM connections WHERE id = 'conn_bench'")[0][0]
            now = peer.rows("SELECT max(created_at) FROM media WHERE scope_id = ?", [scope])[0][0]
            progress(f"{catalog}: flat tables for the unindexed peer")
            if catalog == "sqlite":
                pin_self(SERVER_CPU)
            peer.flat_tables(scope)
            pin_self(CLIENT_CPU)
            all_shapes = shapes(m, now)
            results = {}
            for shape in all_shapes:
                results[shape.label] = self.shape(catalog, shape, nodes, peer, scope, tmp)
            return all_shapes, results

    def reference(self, shape, peer, scope):
        """What the answer must hold (IDs in order, or a count)."""
        if shape.kind == "query":
            return peer.page(shape, scope, False, offset=(shape.page - 1) * PAGE)[0]
        if shape.kind == "members":
            return peer.members(scope, False)
        return None

    def walk(self, client, shape):
        """The cursor of shape.page, from the pages before it."""
        shape.cursor = None
        path, cursor = shape.path(), None
        for _ in range(shape.page - 1):
            page = client.json("GET", path + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else ""))
            cursor = page["nextCursor"]
        shape.cursor = cursor

    def shape(self, catalog, shape, nodes, peer, scope, tmp):
        progress(f"{catalog}: {shape.label}")
        ref = self.reference(shape, peer, scope)
        if shape.kind in ("query", "members"):
            want = 0 if shape.empty else PAGE
            if len(ref) != want:
                raise RuntimeError(f"{catalog} {shape.label}: the database's page has {len(ref)} items, not {want}")
        out = {}
        for label, node in nodes:
            client = Client(node.server)
            if shape.page > 1:
                self.walk(client, shape)
            out[label] = self.vaultplus(catalog, shape, node, client, ref, tmp)
            client.conn.close()
        out["offset"] = self.peer_run(catalog, shape, peer, scope, False, ref)
        out["flat"] = self.peer_run(catalog, shape, peer, scope, True, ref)
        return out

    def vaultplus(self, catalog, shape, node, client, ref, tmp):
        a, m, n = self.args, self.m, self.args.variants
        rng = random.Random(42)
        path = shape.path()

        def call(i):
            if shape.kind == "item":
                return client.request("GET", f"/v2/vault-plus/media/{FIRST_ID + rng.randrange(m)}")
            if shape.kind == "batch":
                return client.request("POST", path, batch_body(rng, m))
            return client.request("GET", path)

        call(0)  # warm
        lat, answers = timed(call, a.requests, a.max_seconds)
        for i, (status, body) in enumerate(answers):
            if status != 200:
                raise RuntimeError(f"{catalog} {path}: {status} {body[:300]!r}")
            page = json.loads(body)
            if shape.kind in ("query", "members"):
                got = [x["id"] if shape.kind == "query" else x["mediaId"] for x in page["items"]]
                if (got != ref) if i == 0 else (len(got) != len(ref)):
                    raise RuntimeError(f"{catalog} {path}: answer {i} has {got[:5]}... ({len(got)}), "
                                       f"the database's page {ref[:5]}... ({len(ref)})")
            elif shape.kind == "item" and page["id"] is None:
                raise RuntimeError(f"{catalog} {path}: {page}")
            elif shape.kind == "batch" and len(page["items"]) < 90:
                raise RuntimeError(f"{catalog} batch: {len(page['items'])} items")
            elif shape.kind == "status" and page["storedCount"] != n:
                raise RuntimeError(f"{catalog} status: {page}")
            elif shape.kind == "stats" and page["totalMediaCount"] != n:
                raise RuntimeError(f"{catalog} stats: {page}")
        s = node.server
        headers = {"apiKey": s.key, "x-connection-id": "conn_bench"}
        lua = wrk_lua(tmp, "shape", shape, m) if shape.kind in ("item", "batch") else None
        url = s.base + ("/" if shape.kind == "item" else path)
        rps, _, _, errors = cluster.wrk(url, 8, headers, lua)
        return {"p50": pct(lat, 50), "p99": pct(lat, 99), "n": len(lat), "rps": rps, "errors": errors}

    def peer_run(self, catalog, shape, peer, scope, flat, ref):
        a, m = self.args, self.m
        rng = random.Random(42)
        offset = (shape.page - 1) * PAGE
        after = None
        if flat and shape.page > 1:
            # The keyset of the page before, as the database orders it.
            boundary = peer.page(shape, scope, False, offset=offset - 1)[1][0]
            after = (boundary[2], boundary[1])

        def call(i):
            if shape.kind == "query":
                return peer.page(shape, scope, flat, offset=0 if flat else offset, after=after)[0]
            if shape.kind == "members":
                return peer.members(scope, flat)
            if shape.kind == "item":
                return peer.variants(scope, [str(FIRST_ID + rng.randrange(m))], flat)
            if shape.kind == "batch":
                return peer.variants(scope, json.loads(batch_body(rng, m))["mediaIds"], flat)
            if shape.kind == "status":
                return peer.status(scope, flat)
            return peer.stats(flat)

        if catalog == "sqlite":
            pin_self(SERVER_CPU)
        try:
            call(0)  # warm
            lat, answers = timed(call, a.requests, a.max_seconds)
        finally:
            pin_self(CLIENT_CPU)
        if ref is not None and answers[0] != ref:
            raise RuntimeError(f"{catalog} {shape.label} ({'unindexed' if flat else 'LIMIT/OFFSET'}): "
                               f"{answers[0][:5]} is not {ref[:5]}")
        if shape.kind == "item" and not answers[0]:
            raise RuntimeError(f"{catalog} one item: peer found nothing")
        return {"p50": pct(lat, 50), "p99": pct(lat, 99), "n": len(lat)}


def uptime():
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def cell(r, requests):
    s = f"{r['p50']:.2f} / {r['p99']:.2f}"
    return s + (f" (n={r['n']})" if r["n"] < requests else "")


def report(args, builds, runs, before, after, pg_version):
    lines = []
    w = lines.append
    w(f"## Queries at {args.variants:,} variants in one connection (issue 13)\n")
    binary = builds[0][1]
    prev = f" Beside it, the previous build {builds[1][1]} on the same rows." if len(builds) > 1 else ""
    w(f"Machine: {machine()}. Binary {binary}.{prev} {args.variants:,} stored variants in one connection "
      f"({args.variants // 2:,} items, full + thumb, every other one a video of 0-599 s), rows loaded by "
      "bench/cluster.py's `load`; one list holding every item. SQLite: embedded server (WAL, local blobs). "
      f"PostgreSQL{' ' + pg_version if pg_version else ''}: cluster node (PostgreSQL with fsync on + Garage "
      "S3), over TCP on loopback. Server processes pinned to one core, wrk (1 thread, 8 connections, "
      f"{cluster.SECONDS} s) and the client to the other; the SQLite peers run on the server's core. "
      f"Sequential figures: p50 / p99 in ms of {args.requests} requests over one keep-alive connection "
      f"(fewer, shown as n=, where {args.max_seconds:g} s ran out). Pages of {PAGE}.\n")
    w("Peers, same run, same rows, straight SQL (no HTTP): **LIMIT/OFFSET** is the query on the catalog's "
      "own tables and indexes, nulls last by `coalesce(column, extreme)`, page N at `OFFSET (N - 1) x 50`, "
      "plus a read of the page's variants by key; **unindexed** is the same rows in one flat table (a row "
      "per variant with its item's columns; no index but the primary key), the same `SELECT ... ORDER BY "
      "... LIMIT 50` (page N by keyset), plus the page's variants. Every vaultplus answer was checked "
      "(200, page size) and its first answer's IDs equal the page both peers computed.\n")
    w(f"Load average before: `{before}`; after: `{after}`.\n")
    verdicts = []
    for catalog, (all_shapes, results) in runs.items():
        target = TARGET_MS[catalog]
        w(f"### {CATALOG[catalog]}\n")
        head = "| shape | vaultplus p50 (ms) | p99 (ms) | req/s @8 |"
        rule = "| --- | ---: | ---: | ---: |"
        if len(builds) > 1:
            head += " previous p50 / p99 | previous req/s |"
            rule += " ---: | ---: |"
        w(head + " LIMIT/OFFSET p50 / p99 | unindexed p50 / p99 |")
        w(rule + " ---: | ---: |")
        over = []
        for shape in all_shapes:
            r = results[shape.label]
            v = r[builds[0][0]]
            flag = " **over**" if v["p99"] >= target else ""
            if v["p99"] >= target:
                over.append((shape, v))
            errs = f" ({v['errors']} errors)" if v["errors"] else ""
            row = (f"| {shape.label}: {shape.shown()} | {v['p50']:.2f} | {v['p99']:.2f}{flag}"
                   f"{'' if v['n'] == args.requests else ' (n=' + str(v['n']) + ')'} | {v['rps']:,.0f}{errs} |")
            if len(builds) > 1:
                p = r[builds[1][0]]
                row += f" {cell(p, args.requests)} | {p['rps']:,.0f} |"
            w(row + f" {cell(r['offset'], args.requests)} | {cell(r['flat'], args.requests)} |")
        w("")
        errors = sum(results[s.label][builds[0][0]]["errors"] for s in all_shapes)
        p1 = next(results[s.label][builds[0][0]] for s in all_shapes if s.label.startswith("cursor: page 1") and s.page == 1)
        deep = [s for s in all_shapes if s.label.startswith("cursor:")][-1]
        pd = results[deep.label][builds[0][0]]
        if over:
            verdicts.append(f"- {CATALOG[catalog]}: p99 < {target:g} ms for every shape: **not met**; over: " +
                            "; ".join(f"{s.label} p99 {v['p99']:.1f} ms (`{s.path()}`)" for s, v in over))
        else:
            verdicts.append(f"- {CATALOG[catalog]}: p99 < {target:g} ms for every shape: met "
                            f"(highest p99 {max(results[s.label][builds[0][0]]['p99'] for s in all_shapes):.2f} ms).")
        ratio = pd["p50"] / p1["p50"]
        fast = ratio <= 1.25 and pd["p99"] < target
        verdicts.append(f"- {CATALOG[catalog]}: cursor page {deep.page:,} as fast as page 1: "
                        f"{'met' if fast else '**not met**'} (p50 {pd['p50']:.2f} vs {p1['p50']:.2f} ms, "
                        f"{ratio:.2f}x; p99 {pd['p99']:.2f} vs {p1['p99']:.2f} ms; met when the p50 is within "
                        "1.25x and the p99 under target).")
        if errors:
            verdicts.append(f"- {CATALOG[catalog]}: wrk saw {errors} non-2xx answers or socket errors.")
    w("### Targets\n")
    lines.extend(verdicts)
    w("")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default="/work/bin/vaultplus-release")
    ap.add_argument("--previous")
    ap.add_argument("--variants", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--catalog", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--max-seconds", type=float, default=10.0,
                    help="bound of each measurement: sequential loops stop (after 5 samples), wrk runs at most this")
    ap.add_argument("--wrk-seconds", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "query.md"))
    args = ap.parse_args()
    # The narrowest shape (the 1% cachedAt window) must still fill a page.
    if args.variants < 2 * PAGE * 100:
        ap.error(f"--variants must be at least {2 * PAGE * 100:,}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    builds = [("this build", os.path.abspath(args.bin))]
    if args.previous:
        builds.append(("previous build", os.path.abspath(args.previous)))
    catalogs = ["sqlite", "postgres"] if args.catalog == "both" else [args.catalog]
    pin_self(CLIENT_CPU)
    before = uptime()
    bench = Bench(args)
    tmp = tempfile.mkdtemp(prefix="vaultplus-query-bench-")
    svc = Services() if "postgres" in catalogs else None
    runs, pg_version = {}, None
    try:
        if svc:
            svc.start()
            pg_version = svc.psql(svc.pg_url, "SHOW server_version").strip().split()[0]
        for catalog in catalogs:
            runs[catalog] = bench.catalog(svc, catalog, builds, tmp)
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(tmp, "catalog-copy.sqlite"))
    finally:
        if svc:
            svc.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    text = report(args, builds, runs, before, uptime(), pg_version)
    print(text)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
