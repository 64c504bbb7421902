"""One large download from S3 (issue 14 item 5): whether one client fetching
one big object through a cluster node gets the object store's throughput.

Starts PostgreSQL (fsync on) and Garage through bench/cluster.py's Services
and two cluster nodes on them: one with the defaults (ranged GETs, 4 in
flight) and one with `--s3-read-parallelism 1` (every blob one sequential
GET, as before ranged reads). A BENCH_OBJECT_MIB object (default 64) is
uploaded through each; then, alternating, one curl downloads it whole
through each node (BENCH_REPEATS times, default 5; median MB/s), and, as
the store's throughput, 8 curls at once through the sequential node
(aggregate MB/s). Each download's bytes are checked against the upload's
length. Servers pinned to one core, curl to the other. Prints a Markdown
section for BENCHMARKS.md. `--bin PATH` measures that binary."""

import contextlib
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import BUILDS, CLIENT_CPU, Node, Services, upload  # noqa: E402
from common import BIN, build, machine  # noqa: E402

MIB = 1024 * 1024
SIZE = int(os.environ.get("BENCH_OBJECT_MIB", "64")) * MIB
REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))
TOGETHER = 8


def curl(url):
    """Starts one download; its output is the bytes and seconds it took."""
    return subprocess.Popen(
        ["taskset", "-c", CLIENT_CPU, "curl", "-sS", "-o", "/dev/null", "-w",
         "%{size_download} %{time_total}", url],
        stdout=subprocess.PIPE, text=True)


def finish(proc):
    out, _ = proc.communicate(timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"curl failed ({proc.returncode})")
    size, seconds = out.split()
    if int(size) != SIZE:
        raise RuntimeError(f"downloaded {size} bytes of {SIZE}")
    return float(seconds)


def one(url):
    return SIZE / MIB / finish(curl(url))


def together(url):
    started = time.perf_counter()
    procs = [curl(url) for _ in range(TOGETHER)]
    for p in procs:
        finish(p)
    return TOGETHER * SIZE / MIB / (time.perf_counter() - started)


def main():
    binary = os.path.abspath(sys.argv[sys.argv.index("--bin") + 1]) if "--bin" in sys.argv else None
    if binary is None:
        build()
        binary = BIN
    BUILDS[0] = ("this build", binary)
    svc = Services()
    runs = {"ranged": [], "sequential": [], "together": []}
    try:
        svc.start()
        with contextlib.ExitStack() as stack:
            ranged = Node(svc, "postgres", blobs="s3", prefix="stream-ranged", binary=binary)
            stack.callback(ranged.close)
            sequential = Node(svc, "postgres", "--s3-read-parallelism", "1", blobs="s3",
                              prefix="stream-sequential", binary=binary)
            stack.callback(sequential.close)
            urls = {"ranged": upload(ranged.server, "1", SIZE),
                    "sequential": upload(sequential.server, "1", SIZE)}
            one(urls["ranged"])
            one(urls["sequential"])
            for _ in range(REPEATS):
                runs["ranged"].append(one(urls["ranged"]))
                runs["sequential"].append(one(urls["sequential"]))
                runs["together"].append(together(urls["sequential"]))
        pg = svc.psql(svc.pg_url, "SHOW server_version").strip().split()[0]
    finally:
        svc.stop()
    report(binary, runs, pg)


def report(binary, runs, pg):
    med = {k: statistics.median(v) for k, v in runs.items()}
    print("### One large download from S3 (bench/s3_stream.py)\n")
    print(f"Machine: {machine()}. Binary: `{binary}`. PostgreSQL {pg} (fsync on) and Garage 2.5.0, "
          "single node, on loopback; two cluster nodes, each pinned with PostgreSQL and Garage to one core, "
          f"curl to the other. A {SIZE // MIB} MiB object downloaded whole by one curl, "
          f"median of {REPEATS} alternating runs; the store's throughput: {TOGETHER} curls at once "
          "through the sequential node, aggregate.\n")
    print("| download | MB/s (MiB/s) | / one sequential GET | / the store's throughput |")
    print("| --- | ---: | ---: | ---: |")
    rows = [("one client, ranged GETs (defaults: 8 MiB parts, 4 in flight)", "ranged"),
            ("one client, one sequential GET (`--s3-read-parallelism 1`)", "sequential"),
            (f"{TOGETHER} clients at once, sequential GETs (the store's throughput)", "together")]
    for label, key in rows:
        print(f"| {label} | {med[key]:,.0f} | {med[key] / med['sequential']:.2f}x | "
              f"{med[key] / med['together']:.2f}x |")


if __name__ == "__main__":
    main()
