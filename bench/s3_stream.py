"""One large download from S3 (issue 14 item 5): whether one client fetching
one big object through a cluster node gets the object store's throughput,
on loopback Garage and on Garage made to look remote.

Starts PostgreSQL (fsync on) and Garage through bench/cluster.py's Services,
and bench/throttle_proxy.py in front of Garage: every TCP connection through
it capped at `--per-connection-mbps` MB/s (default 40) each way, with
`--rtt-ms` (default 10) added to its round trip, connections together
uncapped. That is a remote S3 endpoint as one node sees it: one connection
bounded by its window over the round trip, the store far beyond it. Four
cluster nodes (six with --previous) share one catalog and bucket, so they
read the very same objects:

- loopback, ranged: the defaults, Garage's own address;
- loopback, sequential: `--s3-read-parallelism 1` (every blob one GET);
- remote, ranged and remote, sequential: the same two through the proxy.

An object of each of BENCH_OBJECT_MIB (comma-separated MiB, default
64,256) is uploaded once; then, BENCH_REPEATS times (default 3), one curl
downloads each object whole through each node in turn (MB/s, median), and,
as the store's throughput on each path, BENCH_TOGETHER curls (default 12)
at once fetch the smallest object through that path's sequential node, one
GET each (aggregate MB/s): more connections than one ranged read keeps in
flight, so the proxy's cap is not what bounds it. Every download's length
is checked. The node's peak resident memory is taken over each single
download (VmHWM, reset before it through /proc/PID/clear_refs): flat in the
object's size if the read path's memory is bounded.

Servers (nodes, PostgreSQL, Garage) pinned to one core; curl and the proxy
(the network) to the other. Prints a Markdown section for BENCHMARKS.md.
`--bin PATH` measures that binary instead of building this checkout's;
`--previous PATH` adds, on each path, a node of that binary (an earlier
build) with its own defaults, its downloads in turn with the others'."""

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import BUILDS, CLIENT_CPU, Node, Services, revision, upload  # noqa: E402
from common import BIN, build, machine, peak_rss_mib  # noqa: E402

MIB = 1024 * 1024
SIZES = [int(s) * MIB for s in os.environ.get("BENCH_OBJECT_MIB", "64,256").split(",")]
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
TOGETHER = int(os.environ.get("BENCH_TOGETHER", "12"))
PROXY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "throttle_proxy.py")
PATHS = ("loopback", "remote")
# How a node reads; "previous": --previous's binary, its own defaults.
READS = ["ranged", "sequential"]


def curl(url):
    """Starts one download; its output is the bytes and seconds it took."""
    return subprocess.Popen(
        ["taskset", "-c", CLIENT_CPU, "curl", "-sS", "-o", "/dev/null", "-w",
         "%{size_download} %{time_total}", url],
        stdout=subprocess.PIPE, text=True)


def finish(proc, size):
    out, _ = proc.communicate(timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"curl failed ({proc.returncode})")
    got, seconds = out.split()
    if int(got) != size:
        raise RuntimeError(f"downloaded {got} bytes of {size}")
    return float(seconds)


def reset_peak(pid):
    """Starts the process's peak resident memory afresh (Linux: VmHWM)."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def one(node, url, size):
    """MB/s of one download, and the node's peak RSS (MiB) over it."""
    pid = node.server.proc.pid
    reset_peak(pid)
    seconds = finish(curl(url), size)
    return size / 1e6 / seconds, peak_rss_mib(pid)


def together(url, size):
    started = time.perf_counter()
    procs = [curl(url) for _ in range(TOGETHER)]
    for p in procs:
        finish(p, size)
    return TOGETHER * size / 1e6 / (time.perf_counter() - started)


def on(node, url, first):
    """A signed URL handed out by `first`, through `node` (they share keys)."""
    assert url.startswith(first.server.base), url
    return node.server.base + url[len(first.server.base):]


class Proxy:
    def __init__(self, target, mbps, rtt_ms):
        self.proc = subprocess.Popen(
            ["taskset", "-c", CLIENT_CPU, sys.executable, PROXY, "--target", target,
             "--per-connection-mbps", str(mbps), "--rtt-ms", str(rtt_ms)],
            stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("throttle-proxy listening on "):
            self.stop()
            raise RuntimeError("the throttling proxy did not start")
        self.endpoint = "http://" + line.split()[-1]

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bin", help="the vaultplus binary to measure (default: build this checkout's)")
    p.add_argument("--previous", help="an earlier vaultplus binary, measured beside it")
    p.add_argument("--per-connection-mbps", type=float, default=40.0)
    p.add_argument("--rtt-ms", type=float, default=10.0)
    args = p.parse_args()
    binary = os.path.abspath(args.bin) if args.bin else None
    if binary is None:
        build()
        binary = BIN
    BUILDS[0] = ("this build", binary)
    if args.previous:
        READS.append("previous")
    svc = Services()
    keys = [(path, read) for path in PATHS for read in READS]
    runs = {(k, size): [] for k in keys for size in SIZES}
    rss = {(k, size): [] for k in keys for size in SIZES}
    store = {path: [] for path in PATHS}
    load = [os.getloadavg()[0]]
    try:
        svc.start()
        with contextlib.ExitStack() as stack:
            proxy = Proxy(svc.s3["VAULTPLUS_TEST_S3_ENDPOINT"].removeprefix("http://"), args.per_connection_mbps,
                          args.rtt_ms)
            stack.callback(proxy.stop)
            first = Node(svc, "postgres", blobs="s3", prefix="stream", binary=binary)
            stack.callback(first.close)
            nodes = {("loopback", "ranged"): first}
            for path, read in keys[1:]:
                extra = ("--s3-read-parallelism", "1") if read == "sequential" else ()
                endpoint = proxy.endpoint if path == "remote" else None
                node = Node(svc, "postgres", *extra, binary=os.path.abspath(args.previous) if read == "previous"
                            else binary, join=first, endpoint=endpoint)
                # Closed before the first, which owns the database.
                stack.callback(node.close)
                nodes[(path, read)] = node
            urls = {size: upload(first.server, str(i + 1), size) for i, size in enumerate(SIZES)}
            # Warm: connections opened, every path read once.
            for k, node in nodes.items():
                one(node, on(node, urls[SIZES[0]], first), SIZES[0])
            for _ in range(REPEATS):
                for size in SIZES:
                    for k, node in nodes.items():
                        mbs, peak = one(node, on(node, urls[size], first), size)
                        runs[(k, size)].append(mbs)
                        rss[(k, size)].append(peak)
                for path in PATHS:
                    node = nodes[(path, "sequential")]
                    store[path].append(together(on(node, urls[SIZES[0]], first), SIZES[0]))
            load.append(os.getloadavg()[0])
        pg = svc.psql(svc.pg_url, "SHOW server_version").strip().split()[0]
    finally:
        svc.stop()
    report(binary, args, runs, rss, store, pg, load)


def report(binary, args, runs, rss, store, pg, load):
    med = {k: statistics.median(v) for k, v in runs.items()}
    peak = {k: max(v) for k, v in rss.items()}
    st = {k: statistics.median(v) for k, v in store.items()}
    print("#### One large download from S3 (bench/s3_stream.py)\n")
    print(f"Machine: {machine()}; load average {load[0]:.2f} at the start, {load[-1]:.2f} at the end. "
          f"Release build of {revision()} (`{binary}`). PostgreSQL {pg} (fsync on) and Garage 2.5.0, "
          f"single node, on loopback. {len(runs) // len(SIZES)} cluster nodes on one catalog and bucket "
          "(the same objects), "
          "pinned with PostgreSQL and Garage to one core, curl and the proxy to the other. "
          f"\"Remote\": through bench/throttle_proxy.py, each TCP connection capped at "
          f"{args.per_connection_mbps:g} MB/s each way with {args.rtt_ms:g} ms added to its round trip, "
          f"connections together uncapped. One curl per download, median of {REPEATS} runs, the "
          f"nodes in turn; the store's throughput: {TOGETHER} curls at once through the path's "
          f"sequential node ({SIZES[0] // MIB} MiB object, one GET each), aggregate. MB/s are 10^6 bytes "
          "a second. Peak RSS: the node's, over the single download (highest of the runs).\n")
    print("| path | object | download | MB/s | / one sequential GET | / the store's throughput | peak RSS (MiB) |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: |")
    labels = {"ranged": "one client, ranged GETs (defaults)",
              "sequential": "one client, one sequential GET (`--s3-read-parallelism 1`)",
              "previous": f"one client, ranged GETs, previous build (`{args.previous}`, its defaults)"}
    for path in PATHS:
        for size in SIZES:
            seq = med[((path, "sequential"), size)]
            for read in READS:
                k = ((path, read), size)
                print(f"| {path} | {size // MIB} MiB | {labels[read]} | {med[k]:,.0f} | {med[k] / seq:.2f}x | "
                      f"{med[k] / st[path]:.2f}x | {peak[k]:.0f} |")
        print(f"| {path} | {SIZES[0] // MIB} MiB | {TOGETHER} clients at once, one GET each (the store's "
              f"throughput) | {st[path]:,.0f} | {st[path] / med[((path, 'sequential'), SIZES[0])]:.2f}x | "
              "1.00x | |")


if __name__ == "__main__":
    main()
