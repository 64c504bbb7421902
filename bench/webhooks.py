"""Webhooks benchmark (issue 15): what an endpoint costs the requests that
cause events, and how fast events reach a receiver. Three parts, each with
its peer measured in the same run:

1. Purge response time on a server with one endpoint subscribed to every
   event type (a local receiver answering 200) beside an identical server
   with no endpoint, and one whose endpoint takes only an event type no
   purge makes; connections filled by uploads through the API, purged in
   turn on the three servers.
2. Event delivery rate: many uploads (`vault_plus.media.stored`) as fast as
   the API takes them; events delivered per second from the first write to
   the last delivery received, and the receiver's count (distinct svix-ids
   against the events expected, duplicates apart). Then the same with the
   receiver holding its requests while the uploads run: the rate at which
   the backlog drains once it answers.
3. Ingest (bench/ingest.py's `full`-only sync of the 1,000-item list) with
   an endpoint subscribed to `vault_plus.media.stored` beside none,
   alternating; and whether the receiver gets all 1,000 events.

The webhook options are the defaults (README, Configuration) except
`--allow-private-webhooks`, which a receiver on 127.0.0.1 needs; every
peer runs with it. `--bin PATH` measures that build (default: the release build,
built first); `--previous PATH` adds to part 1 a server of an earlier build
(no erasure receipts, no endpoint), purged in the same rotation; `--repeats
N` (default 3). Prints a Markdown section for BENCHMARKS.md."""

import concurrent.futures
import http.server
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import Demo, Server, build, machine  # noqa: E402

EVENTS = ["vault_plus.media.stored", "vault_plus.media.failed", "vault_plus.list.synced",
          "vault_plus.purge.completed", "vault_plus.connection.removed",
          "vault_plus.storage.limit_reached"]
FLAGS = ("--allow-private-webhooks", "--rate-limit-per-minute", "0")
LARGE = "105"
CONCURRENCY = 8  # bench/ingest.py's --fetch-concurrency

# Part 1: connections per round, variants uploaded to each before its purge.
PURGE_CONNECTIONS = 40
PURGE_VARIANTS = 20
# Part 2: events per run (uploads), and uploads in flight at once (two per
# connection: under --max-uploads-per-connection 4).
RATE_EVENTS = 2000
RATE_CLIENTS = 8
HOLD = 12
PEERS = ["bare", "quiet", "hooked"]
BLOB = os.urandom(16 * 1024)


def option(name, default=None):
    if name in sys.argv:
        return sys.argv[sys.argv.index(name) + 1]
    return default


def median(xs):
    return sorted(xs)[len(xs) // 2]


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


class Receiver:
    """A local webhook receiver: a threaded http.server answering 200 to
    every POST (keep-alive), counting deliveries by svix-id and event type
    and noting when the last one came."""

    def __init__(self):
        self.lock = threading.Lock()
        # Cleared: requests are held unanswered until it is set again.
        self.gate = threading.Event()
        self.gate.set()
        self.reset()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                msg = self.headers.get("svix-id")
                kind = body.split(b'"eventType":"', 1)[-1].split(b'"', 1)[0].decode()
                outer.gate.wait()
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()
                with outer.lock:
                    outer.by_id[msg] = outer.by_id.get(msg, 0) + 1
                    outer.by_type[kind] = outer.by_type.get(kind, 0) + 1
                    outer.last = time.perf_counter()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def reset(self):
        with self.lock:
            self.by_id, self.by_type, self.last = {}, {}, None

    def distinct(self, kind=None):
        with self.lock:
            return len(self.by_id) if kind is None else self.by_type.get(kind, 0)

    def duplicates(self):
        with self.lock:
            return sum(self.by_id.values()) - len(self.by_id)

    def wait(self, n, kind=None, timeout=300):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.distinct(kind) >= n:
                return self.last
            time.sleep(0.005)
        raise RuntimeError(f"{n} events never arrived (got {self.distinct(kind)})")

    def stop(self):
        self.httpd.shutdown()


def endpoint(server, url, events):
    req = urllib.request.Request(server.base + "/v2/vault-plus/webhooks", method="POST",
                                 data=common.json.dumps({"url": url, "events": events}).encode(),
                                 headers={"apiKey": server.key, "content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        assert r.status == 201, r.status


def upload(server, conn, media_id, label):
    req = urllib.request.Request(f"{server.base}/v2/vault-plus/media/{media_id}/variants/{label}",
                                 data=BLOB, method="PUT",
                                 headers={"apiKey": server.key, "x-connection-id": conn,
                                          "content-type": "image/jpeg"})
    with urllib.request.urlopen(req, timeout=60) as r:
        r.read()
        assert r.status in (200, 201), r.status


def purge(server, conn, receipted=True):
    req = urllib.request.Request(f"{server.base}/v2/vault-plus/media", method="DELETE",
                                 headers={"apiKey": server.key, "x-connection-id": conn})
    started = time.perf_counter()
    with urllib.request.urlopen(req) as r:
        body = r.read()
        receipt = r.headers.get("x-vaultplus-receipt")
    elapsed = time.perf_counter() - started
    assert f'"purgedCount":{PURGE_VARIANTS}' in body.decode(), body
    assert (receipt is not None) == receipted, receipt
    return elapsed


def add_connections(server, names):
    for name in names:
        server.cli("connections", "add", "--org", "default", name)
    # The CLI's writes reach the running server within a second.
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            server.call("GET", "/v2/vault-plus/status", conn=names[-1])
            return
        except urllib.error.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("connections never appeared")


def fill(server, conns, per_conn):
    """Uploads per_conn variants to each connection (labels full and thumb
    of media 1000000..), RATE_CLIENTS clients at once, each one going
    through its jobs in turn. The jobs are dealt round-robin over the
    connections and then over the clients, so that (with as many
    connections as clients, or a multiple, or a divisor) a connection never
    has more uploads in flight than --max-uploads-per-connection (4)."""
    jobs = [(c, 1_000_000 + i // 2, ("full", "thumb")[i % 2]) for i in range(per_conn) for c in conns]

    def client(k):
        for j in jobs[k::RATE_CLIENTS]:
            upload(server, *j)

    with concurrent.futures.ThreadPoolExecutor(RATE_CLIENTS) as pool:
        list(pool.map(client, range(RATE_CLIENTS)))
    return len(jobs)


def purge_comparison(receiver, binary, repeats, previous=None):
    """Part 1: three servers get the same connections and uploads: one with
    an endpoint on every event type, one with an endpoint on an event type
    no purge makes (`storage.limit_reached`: the look-up is made, nothing is
    written or delivered), one with none; with `previous` (a build without
    erasure receipts) a fourth, of that build, with none. Each connection
    is purged on every server in turn, the order rotated every
    connection."""
    peers = PEERS + (["previous"] if previous else [])
    servers = {name: Server(*FLAGS, binary=previous if name == "previous" else binary)
               for name in peers}
    times = {name: [] for name in peers}
    expected = 0
    try:
        endpoint(servers["hooked"], receiver.url, EVENTS)
        endpoint(servers["quiet"], receiver.url, ["vault_plus.storage.limit_reached"])
        for r in range(repeats):
            conns = [f"conn_p{r}_{i}" for i in range(PURGE_CONNECTIONS)]
            for s in servers.values():
                add_connections(s, conns)
                n = fill(s, conns, PURGE_VARIANTS)
            expected += n
            # Purge once the uploads' events are delivered: what is measured
            # is the purge beside a live endpoint, not a backlog draining.
            receiver.wait(expected, "vault_plus.media.stored")
            for i, c in enumerate(conns):
                k = i % len(peers)
                for name in peers[k:] + peers[:k]:
                    times[name].append(purge(servers[name], c, name != "previous"))
        # Each purge is told twice: committed, then its receipt bytes_gone.
        expected_purges = 2 * repeats * PURGE_CONNECTIONS
        receiver.wait(expected_purges, "vault_plus.purge.completed")
        time.sleep(1)
        got = (receiver.distinct("vault_plus.media.stored"), receiver.distinct("vault_plus.purge.completed"),
               receiver.distinct() - expected - expected_purges)
        return times, expected, expected_purges, got, receiver.duplicates()
    finally:
        for s in servers.values():
            s.stop()


def delivery_rate(receiver, binary, held):
    """Part 2: RATE_EVENTS uploads as fast as the API takes them. `held`:
    the receiver holds its first requests unanswered while the uploads run
    (at most HOLD seconds, under the 15 s attempt timeout, so no attempt
    times out), so that the events pile up in the outbox: the rate then is
    that of draining a backlog, from the receiver's release."""
    s = Server(*FLAGS, binary=binary)
    try:
        endpoint(s, receiver.url, EVENTS)
        conns = [f"conn_r{i}" for i in range(RATE_CLIENTS // 2)]
        add_connections(s, conns)
        if held:
            receiver.gate.clear()
            timer = threading.Timer(HOLD, receiver.gate.set)
            timer.start()
        started = time.perf_counter()
        n = fill(s, conns, RATE_EVENTS // len(conns))
        written = time.perf_counter()
        early = False
        if held:
            # Uploads that outlast HOLD (a loaded machine) leave no clean
            # backlog to time: such a run is marked and left out.
            early = receiver.gate.is_set()
            timer.cancel()
            receiver.gate.set()
        backlog = n - receiver.distinct()
        last = receiver.wait(n)
        time.sleep(1)  # late duplicates, if any
        return (n, written - started, last - started, backlog, last - written,
                receiver.distinct(), receiver.duplicates(), early)
    finally:
        s.stop()


def ingest(demo, receiver, binary, hooked):
    """Part 3: bench/ingest.py's `full`-only sync of the 1,000-item list."""
    s = Server("--fetch-concurrency", str(CONCURRENCY), *FLAGS, upstream=demo.base, binary=binary)
    try:
        s.call("PATCH", "/v2/account/connections/conn_bench/settings",
               {"vaultPlus": {"settings": {"imageQualities": ["full"]}}})
        if hooked:
            endpoint(s, receiver.url, ["vault_plus.media.stored"])
        started = time.perf_counter()
        s.call("PUT", f"/v2/vault-plus/lists/{LARGE}/sync")
        s.wait_stored(1000)
        elapsed = time.perf_counter() - started
        st = s.call("GET", "/v2/vault-plus/status")
        assert st["storedCount"] == 1000, st
        if not hooked:
            return elapsed, None, None, None
        last = receiver.wait(1000)
        time.sleep(1)
        return elapsed, last - started, receiver.distinct(), receiver.duplicates()
    finally:
        s.halt()
        LEFTOVERS.append(s.dir)


# As in bench/ingest.py: data directories are deleted once every ingest run
# is done, so no run pays for another's deletions (this ext4 has no journal).
LEFTOVERS = []


def main():
    binary = option("--bin")
    previous = option("--previous")
    repeats = int(option("--repeats", "3"))
    if binary is None:
        build()
    else:
        common.BIN = binary  # the demo upstream too
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=common.ROOT,
                            capture_output=True, text=True).stdout.strip()
    load_start = loadavg()
    receiver = Receiver()
    try:
        times, stored, purges, got, dups = purge_comparison(receiver, binary, repeats, previous)
        receiver.reset()
        rates = {False: [], True: []}
        for _ in range(repeats):
            for held in (False, True):
                rates[held].append(delivery_rate(receiver, binary, held))
                receiver.reset()
        demo = Demo()
        runs = {"bare": [], "hooked": []}
        try:
            ingest(demo, None, binary, False)  # warm-up: page cache, demo
            for _ in range(repeats):
                for name in ("bare", "hooked"):
                    runs[name].append(ingest(demo, receiver, binary, name == "hooked"))
                    receiver.reset()
        finally:
            demo.stop()
            for d in LEFTOVERS:
                shutil.rmtree(d, ignore_errors=True)
    finally:
        receiver.stop()
    load_end = loadavg()

    print("## Telling the app what happened (issue 15)\n")
    print(f"Machine: {machine()}; build {commit}, release; SQLite (WAL, synchronous=FULL) + local "
          f"blobs. Load average (1, 5, 15 min) {load_start} at the start, {load_end} at the end "
          "(the machine is shared). Webhook options at their defaults (`--webhook-concurrency 16`, "
          "`--webhook-timeout-secs 15`, `--webhook-retry-base-ms 5000`, "
          "`--webhook-retry-cap-secs 3600`, `--webhook-retry-window-secs 86400`) plus "
          "`--allow-private-webhooks` (on every peer) for the receiver on 127.0.0.1: a threaded "
          "Python `http.server` answering 200, keep-alive. Every purge of this build writes its "
          "erasure receipt (and, once reclaim is done, its second `purge.completed`).\n")
    n = len(times["bare"])
    print(f"**Purge response time**, {n} purges of {PURGE_VARIANTS} uploaded 16 KiB variants on "
          f"each server ({repeats} rounds of {PURGE_CONNECTIONS} connections), in turn on every "
          "server, connection by connection, the order rotated:\n")
    print("| server | purges | p50 (ms) | p99 (ms) | mean (ms) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    rows = [("bare", "no endpoint"),
            ("quiet", "one endpoint, on `storage.limit_reached` only (nothing written)"),
            ("hooked", "one endpoint, every event type")]
    if previous:
        rows.append(("previous", f"previous build ({os.path.basename(previous)}): no receipts, no endpoint"))
    for name, label in rows:
        xs = times[name]
        print(f"| {label} | {len(xs)} | {pct(xs, 50) * 1000:.2f} | {pct(xs, 99) * 1000:.2f} | "
              f"{sum(xs) / len(xs) * 1000:.2f} |")
    print(f"\nWith an endpoint, over without: p50 {pct(times['hooked'], 50) / pct(times['bare'], 50):.2f}x, "
          f"p99 {pct(times['hooked'], 99) / pct(times['bare'], 99):.2f}x. "
          + (f"With receipts and an endpoint, over the previous build with neither: p50 "
             f"{pct(times['hooked'], 50) / pct(times['previous'], 50):.2f}x, p99 "
             f"{pct(times['hooked'], 99) / pct(times['previous'], 99):.2f}x. " if previous else "")
          + "The receiver got "
          f"{got[0]:,} of {stored:,} `media.stored` and {got[1]} of {purges} `purge.completed` "
          f"events, {got[2]} others, {dups} duplicates.\n")
    print(f"**Event delivery rate**, {RATE_EVENTS:,} uploads (`vault_plus.media.stored`) by "
          f"{RATE_CLIENTS} concurrent clients, {repeats} runs:\n")
    print("| receiver | run | events | uploads/s (writes) | events delivered/s, first write to last "
          "delivery | backlog when the last write returned | drain after the last write (s) "
          "| backlog drained/s | received (distinct) | duplicates |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for held, label in ((False, "answers at once"), (True, "holds every request until the last write")):
        for i, (n, w, total, backlog, drain, got_n, dup, early) in enumerate(rates[held], 1):
            note = f" (released after {HOLD} s, before the last write: left out)" if early else ""
            # A receiver that keeps up leaves no backlog worth a rate.
            rate = f"{backlog / drain:.0f}" if held else "-"
            print(f"| {label} | {i}{note} | {n:,} | {n / w:.0f} | {n / total:.0f} | {backlog:,} | "
                  f"{drain:.2f} | {rate} | {got_n:,} | {dup} |")
    live = median([r[0] / r[2] for r in rates[False]])
    drained = median([r[3] / r[4] for r in rates[True] if not r[7]] or [float("nan")])
    print(f"\nMedian: {live:.0f} events/s end to end while the receiver keeps up; a backlog drains "
          f"at {drained:.0f} events/s.\n")
    print(f"**Ingest with an endpoint**, `full`-only sync of the 1,000-item list from the demo "
          f"upstream ({CONCURRENCY} concurrent fetches), alternating, median of {repeats}:\n")
    print("| server | items/s (each run) | median items/s | last event received after (s, each run) "
          "| events received (distinct, each run) | duplicates |")
    print("| --- | --- | ---: | --- | --- | ---: |")
    for name, label in (("bare", "no endpoint"), ("hooked", "endpoint on `vault_plus.media.stored`")):
        rs = runs[name]
        rates_ = [1000 / r[0] for r in rs]
        if name == "bare":
            print(f"| {label} | {', '.join(f'{x:.0f}' for x in rates_)} | {median(rates_):.0f} | - | - | - |")
        else:
            print(f"| {label} | {', '.join(f'{x:.0f}' for x in rates_)} | {median(rates_):.0f} | "
                  f"{', '.join(f'{r[1]:.2f}' for r in rs)} | {', '.join(str(r[2]) for r in rs)} | "
                  f"{sum(r[3] for r in rs)} |")
    b, h = median([1000 / r[0] for r in runs["bare"]]), median([1000 / r[0] for r in runs["hooked"]])
    print(f"\nWith an endpoint, over without: {h / b:.2f}x.")


if __name__ == "__main__":
    main()
