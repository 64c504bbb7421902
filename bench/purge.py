"""Purge benchmark: DELETE /v2/vault-plus/media on a connection holding
10k, 100k and 1M variants (response time, and the background reclaim rate),
beside a naive baseline measured on an identical copy of the same data: one
transaction deleting the rows and the files one by one, answering when done.

The catalog is bulk-loaded directly (SQLite, server stopped) so that a
million variants take seconds to set up; blob files are real for 10k and
100k (1M keeps rows only: a million files would measure the disk's inode
speed, not the purge). Prints a Markdown section for BENCHMARKS.md.

`--bin PATH` measures that build (default: the release build, built
first); `--previous PATH` measures an earlier build too, size by size in
the same run, on its own identical copy of the data. Reclaim counts as done
when nothing is left to drain or delete and (builds with erasure receipts)
the purge's receipt is `bytes_gone`."""

import os
import shutil
import sqlite3
import sys
import time
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import Server, build, machine  # noqa: E402

SIZES = [(10_000, True), (100_000, True), (1_000_000, False)]
BLOB = b"x" * 1024


def load(data_dir, n, with_files):
    """Fills conn_bench's current scope with n stored 1 KiB variants."""
    db = sqlite3.connect(os.path.join(data_dir, "catalog.sqlite"))
    scope = db.execute("SELECT scope_id FROM connections WHERE id = 'conn_bench'").fetchone()[0]
    now = int(time.time() * 1000)
    blobs = os.path.join(data_dir, "blobs", str(scope))
    os.makedirs(blobs, exist_ok=True)
    media, variants = [], []
    for i in range(n // 2):
        mid = str(10_000_000 + i)
        media.append((scope, mid, f"{mid:0>32}{len(mid):02}", "image", now - i, now - i, 2))
        for label in ("full", "thumb"):
            key = None
            if with_files:
                name = uuid.uuid4().hex
                with open(os.path.join(blobs, name), "wb") as f:
                    f.write(BLOB)
                key = f"{scope}/{name}"
            variants.append((scope, mid, label, "stored", len(BLOB), "image/jpeg", now - i, now - i,
                             now - i, key, "00" * 32))
    with db:
        db.executemany("INSERT INTO media (scope_id, media_id, sort_id, media_type, created_at, cached_at, "
                       "live_count) VALUES (?, ?, ?, ?, ?, ?, ?)", media)
        db.executemany("INSERT INTO variants (scope_id, media_id, label, status, size_bytes, content_type, "
                       "created_at, stored_at, last_accessed_at, blob_key, checksum) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", variants)
        db.execute("UPDATE scopes SET live_count = ?, stored_count = ?, stored_bytes = ? WHERE id = ?",
                   (n, n, n * len(BLOB), scope))
    db.close()


def naive(data_dir):
    """One transaction: every row and every file, one by one; then answer."""
    started = time.perf_counter()
    db = sqlite3.connect(os.path.join(data_dir, "catalog.sqlite"))
    db.execute("PRAGMA synchronous = FULL")
    scope = db.execute("SELECT scope_id FROM connections WHERE id = 'conn_bench'").fetchone()[0]
    count = freed = 0
    with db:
        rows = db.execute("SELECT rowid, blob_key, size_bytes FROM variants WHERE scope_id = ?",
                          (scope,)).fetchall()
        for rowid, key, size in rows:
            if key:
                os.remove(os.path.join(data_dir, "blobs", key))
            db.execute("DELETE FROM variants WHERE rowid = ?", (rowid,))
            count += 1
            freed += size
        db.execute("DELETE FROM media WHERE scope_id = ?", (scope,))
    db.close()
    return count, freed, time.perf_counter() - started


def purge(server):
    req = urllib.request.Request(f"{server.base}/v2/vault-plus/media", method="DELETE",
                                 headers={"apiKey": server.key, "x-connection-id": "conn_bench"})
    started = time.perf_counter()
    with urllib.request.urlopen(req) as r:
        body = r.read()
    return time.perf_counter() - started, body.decode()


def reclaimed(server):
    out = server.cli("reclaim", "status")
    receipts_done = "unfinished_receipts=0" in out or "unfinished_receipts" not in out
    return "retired_scopes=0" in out and "queued_blobs=0" in out and receipts_done


def option(name, default=None):
    if name in sys.argv:
        return sys.argv[sys.argv.index(name) + 1]
    return default


def run(n, with_files, binary=None):
    s = Server("--reclaim-interval-secs", "3600", binary=binary)
    data_dir = s.dir
    s.proc.terminate()
    s.proc.wait()
    load(data_dir, n, with_files)
    copy = data_dir + "-naive"
    shutil.copytree(data_dir, copy)
    s2 = Server.__new__(Server)
    s2.dir = data_dir
    from common import _spawn
    s2.binary = binary or common.BIN
    s2.proc, s2.base, _ = _spawn(["serve", "--data-dir", data_dir, "--listen", "127.0.0.1:0",
                                  "--reclaim-interval-secs", "3600"], "vaultplus listening on ",
                                 binary=binary)
    s2.key = s.key
    try:
        empty_before, _ = 0, None
        elapsed, body = purge(s2)
        started = time.perf_counter()
        while not reclaimed(s2):
            time.sleep(0.05)
        reclaim = time.perf_counter() - started
        empty, _ = purge(s2)
        empty_before = empty
    finally:
        s2.stop()
    count, freed, naive_elapsed = naive(copy)
    shutil.rmtree(copy, ignore_errors=True)
    return elapsed, body, reclaim, empty_before, count, freed, naive_elapsed


def main():
    binary, previous = option("--bin"), option("--previous")
    if binary is None:
        build()
    rows, before = [], {}
    for n, files in SIZES:
        if previous:
            before[n] = run(n, files, previous)
        rows.append((n, files, *run(n, files, binary)))
    print("## Purge (issue 5)\n")
    print(f"Machine: {machine()}. Release build, SQLite (WAL, synchronous=FULL) + local blobs, "
          "1 KiB variants. Response time measured by the client over loopback.\n")
    print("| variants | blob files | vaultplus purge response (ms) | body | purge of the now-empty connection (ms) "
          "| background reclaim (s) | reclaim variants/s | naive purge (s) | naive / vaultplus |")
    print("| ---: | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for n, files, elapsed, body, reclaim, empty, count, freed, naive_elapsed in rows:
        print(f"| {n:,} | {'yes' if files else 'no (rows only)'} | {elapsed * 1000:.1f} | `{body}` | "
              f"{empty * 1000:.1f} | {reclaim:.1f} | {n / reclaim:,.0f} | {naive_elapsed:.1f} | "
              f"{naive_elapsed / elapsed:,.0f}x |")
    if previous:
        print(f"\nThe previous build ({os.path.basename(previous)}), same sizes, same run, each "
              "before the build above:\n")
        print("| variants | purge response (ms) | background reclaim (s) | reclaim variants/s |")
        print("| ---: | ---: | ---: | ---: |")
        for n, _ in SIZES:
            elapsed, _, reclaim, *_ = before[n]
            print(f"| {n:,} | {elapsed * 1000:.1f} | {reclaim:.1f} | {n / reclaim:,.0f} |")


if __name__ == "__main__":
    main()
