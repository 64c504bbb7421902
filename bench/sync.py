"""Big-sync benchmark (issue 13 item 4): a first sync of the demo's list 107
at 200,000 tiny items. For each server build: time until the sync answers,
time until the first variant is stored (measured from the request), and
items planned per second; beside it, in the same run, the time a plain
Python client takes just to list every page of the same upstream list (the
floor any sync that reads the whole listing has to pay).

    python3 bench/sync.py [--items N] [--previous BINARY] [--binary THIS] [--no-build]

`--previous BINARY` also measures an older vaultplus build against the same
demo upstream (this build's, which knows list 107), right after this one.
Prints Markdown."""

import argparse
import json
import os
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import BIN, Demo, Server, build, machine  # noqa: E402

BULK = "107"


def list_all(demo):
    """Naive peer: every page of the list, one after another, nothing kept."""
    started, offset, n = time.perf_counter(), 0, 0
    while True:
        req = urllib.request.Request(
            f"{demo.base}/v2/access/vault/lists/{BULK}/media?limit=100&offset={offset}",
            headers={"apiKey": "demo-key", "x-connection-id": "conn_bench"})
        page = json.load(urllib.request.urlopen(req, timeout=60))
        n += len(page["list"])
        offset += len(page["list"])
        if not page["hasMore"] or not page["list"]:
            return n, time.perf_counter() - started


def sync(demo, binary, items):
    """One first sync on a fresh server; returns the figures (seconds from
    the request)."""
    s = Server(upstream=demo.base, binary=binary)
    seen = {"first_stored": None, "progress": None}
    done, answered = threading.Event(), threading.Event()
    try:
        started = time.perf_counter()

        def watch():
            # Bounded: ends with the run, or after 20 minutes.
            while not done.is_set() and time.perf_counter() - started < 1200:
                try:
                    st = s.call("GET", "/v2/vault-plus/status")
                except OSError:
                    time.sleep(0.05)
                    continue
                now = time.perf_counter() - started
                if seen["first_stored"] is None and st["storedCount"] > 0:
                    seen["first_stored"] = now
                if seen["progress"] is None and st.get("syncs"):
                    seen["progress"] = now
                if seen["first_stored"] is not None and answered.is_set():
                    return
                time.sleep(0.05)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        answer = s.call("PUT", f"/v2/vault-plus/lists/{BULK}/sync")
        elapsed = time.perf_counter() - started
        answered.set()
        watcher.join(timeout=300)
        assert answer["addedItems"] == items, answer
        return {"answer": elapsed, "first_stored": seen["first_stored"],
                "progress": seen["progress"], "rss": s.peak_rss_mib()}
    finally:
        done.set()
        s.stop()


def fmt(v, unit="s"):
    return "n/a" if v is None else f"{v:.1f} {unit}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=200_000)
    ap.add_argument("--previous", help="an older vaultplus binary to measure beside this one")
    ap.add_argument("--binary", default=BIN, help="this build (default: the release build)")
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    if not args.no_build:
        build()
    # The demo upstream is this build's (older ones have no list 107).
    common.BIN = args.binary
    demo = Demo("--bulk-items", str(args.items))
    try:
        n, listed = list_all(demo)
        assert n == args.items, n
        runs = [("vaultplus (this build)", sync(demo, args.binary, args.items))]
        if args.previous:
            runs.append(("vaultplus (previous build)", sync(demo, args.previous, args.items)))
    finally:
        demo.stop()
    print(f"## First sync of a {args.items:,}-item list\n")
    build_kind = "Release build" if args.binary == BIN else f"Build {args.binary}"
    print(f"Machine: {machine()}. {build_kind}, SQLite + local blobs, demo upstream list 107 "
          f"(tiny synthetic audio, 100 items a page), on one machine; times from the sync request.\n")
    print("| client | answered | first variant stored | `status` shows progress | items planned/s | peak RSS |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    print(f"| plain Python client: list every page, nothing else | {fmt(listed)} | | | "
          f"{n / listed:,.0f} listed/s | |")
    for name, r in runs:
        print(f"| {name} | {fmt(r['answer'])} | {fmt(r['first_stored'])} | {fmt(r['progress'])} | "
              f"{args.items / r['answer']:,.0f} | {r['rss']:.0f} MiB |")


if __name__ == "__main__":
    main()
