"""Ingest benchmark: vaultplus stores a 1,000-item vault list from the local
upstream (list + fetch + checksum + durable write + catalog commit), beside a
naive baseline that only downloads the same bytes to files with the same
concurrency. Then a single 200 MiB item, to show the server's memory does not
grow with file size. Prints a Markdown section for BENCHMARKS.md.

`--bin PATH` measures that build (default: the release build, built first);
`--previous PATH` measures a second build in the same run, alternating with
the first; `--repeats N` (default 3) runs each row N times and reports the
median, so the peers see the same machine.

`--metrics` instead compares ingest with `--metrics-listen` (recording
metrics) and without it, same build, alternating runs."""

import concurrent.futures
import json
import os
import resource
import shutil
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Demo, Server, build, machine  # noqa: E402

LARGE, HUGE = "105", "106"
CONCURRENCY = 8


def list_urls(demo, list_id):
    urls, offset = [], 0
    while True:
        req = urllib.request.Request(
            f"{demo.base}/v2/access/vault/lists/{list_id}/media?limit=100&offset={offset}",
            headers={"apiKey": "demo-key", "x-connection-id": "conn_bench"})
        page = json.load(urllib.request.urlopen(req))
        urls += [it["files"]["full"]["url"] for it in page["list"]]
        offset += len(page["list"])
        if not page["hasMore"]:
            return urls


def baseline(demo):
    """Naive peer: list, then download every full rendition to a file."""
    out = tempfile.mkdtemp(prefix="ingest-baseline-")
    started = time.perf_counter()
    urls = list_urls(demo, LARGE)

    def get(i_url):
        i, url = i_url
        with urllib.request.urlopen(url) as r, open(os.path.join(out, str(i)), "wb") as f:
            shutil.copyfileobj(r, f, 64 * 1024)

    with concurrent.futures.ThreadPoolExecutor(CONCURRENCY) as ex:
        list(ex.map(get, enumerate(urls)))
    elapsed = time.perf_counter() - started
    size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    LEFTOVERS.append(out)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return len(urls), elapsed, size, rss


def vaultplus(demo, list_id, qualities=None, extra=(), binary=None, expect=None):
    # No API-key rate limit: wait_idle polls the job list, which is not
    # what is measured.
    s = Server("--fetch-concurrency", str(CONCURRENCY), "--rate-limit-per-minute", "0", *extra,
               upstream=demo.base, binary=binary)
    try:
        if qualities is not None:
            s.call("PATCH", "/v2/account/connections/conn_bench/settings",
                   {"vaultPlus": {"settings": {"imageQualities": qualities}}})
        base_rss = s.peak_rss_mib()
        started = time.perf_counter()
        s.call("PUT", f"/v2/vault-plus/lists/{list_id}/sync")
        if expect is None:
            s.wait_idle()
        else:
            s.wait_stored(expect)
        elapsed = time.perf_counter() - started
        status = s.call("GET", "/v2/vault-plus/status")
        return status, elapsed, base_rss, s.peak_rss_mib()
    finally:
        s.halt()
        LEFTOVERS.append(s.dir)


# Data directories are deleted only once every run is done: this disk's
# ext4 has no journal, and such a file system skips inodes freed in the
# last minute or more when it makes a file (`recently_deleted`), so a run
# right after another's deletions pays for them on every file it creates,
# whichever peer it is (perf showed a third of the server's time there).
LEFTOVERS = []


def remove_leftovers():
    for d in LEFTOVERS:
        shutil.rmtree(d, ignore_errors=True)
    LEFTOVERS.clear()


METRICS = ("--metrics-listen", "127.0.0.1:0")


def metrics_comparison(demo, repeats):
    """`full`-only syncs of the large list with and without --metrics-listen,
    alternating, so both see the same machine; prints the medians."""
    runs = {"off": [], "on": []}
    for _ in range(repeats):
        for name, extra in (("off", ()), ("on", METRICS)):
            st, elapsed, _, _ = vaultplus(demo, LARGE, ["full"], extra)
            assert st["storedCount"] == 1000, st
            runs[name].append(1000 / elapsed)
    med = {k: sorted(v)[len(v) // 2] for k, v in runs.items()}
    print("## Ingest with metrics on and off\n")
    print(f"Machine: {machine()}. Release build, SQLite + local blobs, the 1,000-item list, "
          f"`full` only, {CONCURRENCY} concurrent fetches; {repeats} alternating runs each.\n")
    print("| server | items/s (each run) | median items/s |")
    print("| --- | --- | ---: |")
    for k, label in (("off", "vaultplus"), ("on", "vaultplus, --metrics-listen")):
        print(f"| {label} | {', '.join(f'{x:.0f}' for x in runs[k])} | {med[k]:.0f} |")
    print(f"\nWith metrics recorded, over without: {med['on'] / med['off']:.2f}x.")


def option(name, default=None):
    if name in sys.argv:
        return sys.argv[sys.argv.index(name) + 1]
    return default


def median(xs):
    return sorted(xs)[len(xs) // 2]


def row(label, runs, naive):
    """One table row from runs of (status, seconds, peak RSS)."""
    st = runs[0][0]
    secs = median([r[1] for r in runs])
    items = 1000
    ratio = f"{(items / secs) / naive:.2f}x" if naive else ""
    print(f"| {label} | {items} | {st['storedCount']} | {st['totalSizeBytes']} | {secs:.2f} | "
          f"{items / secs:.0f} | {st['totalSizeBytes'] / secs / 1e6:.1f} | "
          f"{max(r[2] for r in runs):.0f} | {ratio} |")


def main():
    binary = option("--bin")
    previous = option("--previous")
    repeats = int(option("--repeats", "3"))
    if binary is None:
        build()
    if "--metrics" in sys.argv:
        demo = Demo()
        try:
            vaultplus(demo, "103")  # warm-up
            metrics_comparison(demo, int(os.environ.get("BENCH_REPEATS", "5")))
        finally:
            demo.stop()
            remove_leftovers()
        return
    builds = [("vaultplus", binary)] + ([("previous build", previous)] if previous else [])
    demo = Demo()
    naive, full, thumbs, huge = [], {}, {}, {}
    try:
        vaultplus(demo, "103", binary=binary)  # warm-up: page cache, demo encoders
        for _ in range(repeats):
            n, b_elapsed, b_bytes, b_rss = baseline(demo)
            naive.append((n, b_elapsed, b_bytes, b_rss))
            for name, path in builds:
                st, secs, _, rss = vaultplus(demo, LARGE, ["full"], binary=path, expect=1000)
                assert st["storedCount"] == 1000, st
                full.setdefault(name, []).append((st, secs, rss))
                st, secs, _, rss = vaultplus(demo, LARGE, binary=path, expect=2000)
                assert st["storedCount"] == 2000, st
                thumbs.setdefault(name, []).append((st, secs, rss))
        for name, path in builds:
            st, secs, base, rss = vaultplus(demo, HUGE, binary=path, expect=1)
            huge[name] = (st, secs, base, rss)
    finally:
        demo.stop()
        remove_leftovers()
    b_elapsed = median([r[1] for r in naive])
    n, b_bytes = naive[0][0], naive[0][2]
    naive_rate = n / b_elapsed
    print("## Ingest from the local upstream (issues 3 and 13)\n")
    print(f"Machine: {machine()}. Release build, SQLite + local blobs, "
          f"{CONCURRENCY} concurrent fetches for all; median of {repeats} alternating runs.\n")
    print("| run | items | variants stored | bytes | seconds | items/s | MB/s | peak RSS (MiB) "
          "| items/s over naive |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(f"| naive baseline (Python, download to files only) | {n} | {n} | {b_bytes} | "
          f"{b_elapsed:.2f} | {naive_rate:.0f} | {b_bytes / b_elapsed / 1e6:.1f} | "
          f"{max(r[3] for r in naive):.0f} | 1.00x |")
    for name, _ in builds:
        row(f"{name} sync, `full` only (fetch, checksum, fsync, catalog commit)", full[name],
            naive_rate)
        row(f"{name} sync, default settings (+ 1,000 generated thumbnails)", thumbs[name],
            naive_rate)
    for name, _ in builds:
        st, secs, base, rss = huge[name]
        print(f"| {name}, one 200 MiB video | 1 | {st['storedCount']} | {st['totalSizeBytes']} | "
              f"{secs:.2f} | - | {st['totalSizeBytes'] / secs / 1e6:.1f} | {rss:.0f} "
              f"(idle {base:.0f}) | |")
    print()
    name = builds[0][0]
    print(f"Peak server memory with a 200 MiB body: {huge[name][3]:.0f} MiB, against "
          f"{max(r[2] for r in thumbs[name]):.0f} MiB for 1,000 small items: the body streams "
          "through a bounded buffer and is never held whole.")


if __name__ == "__main__":
    main()
