"""Instructions counted by callgrind, without and with `--metrics-listen`:
deterministic for a given binary, unlike wall-clock figures on a shared
machine. The whole server process is counted while the work runs only
(counters zeroed after start-up and a warm-up, dumped when the work is
done: `callgrind_control`), and divided by the units of work.

- `serve [N]`: N requests (default 1,000) for one stored 1 KB object by
  signed URL, each on a new connection;
- `ingest`: a sync of the local upstream's 1,000-item list, `full` only
  (fetch, checksum, fsync, catalog commit per item).

Usage: python3 bench/callgrind.py serve|ingest [N]   (needs valgrind)"""

import glob
import http.client
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import BIN, Demo, Server, build  # noqa: E402
from serve import upload  # noqa: E402

METRICS = ["--metrics-listen", "127.0.0.1:0"]
LARGE = "105"


def stored_object():
    """A data directory holding one 1 KB object, and its signed URL path."""
    s = Server()
    try:
        path = urllib.parse.urlparse(upload(s, "1", 1024)).path
    finally:
        s.halt()
    return s, path


def counted(data_dir, work, extra, warm=None):
    """Instructions of the server process while `work` runs: counters are
    zeroed once the server is up (after `warm`, if given) and dumped when
    the work is done, so start-up, one-time initialisation and shutdown
    are not counted."""
    out = tempfile.mktemp(prefix="callgrind-")
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", BIN, "serve",
         "--data-dir", data_dir, "--listen", "127.0.0.1:0", "--rate-limit-per-minute", "0", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "RUST_LOG": "warn"})
    for line in proc.stdout:
        if line.startswith("vaultplus listening on "):
            base = line.split()[3]
            break
    if warm:
        warm(base)
    control = ["callgrind_control", str(proc.pid)]
    subprocess.run(control[:1] + ["--zero", str(proc.pid)], check=True, capture_output=True)
    work(base)
    subprocess.run(control[:1] + ["--dump", str(proc.pid)], check=True, capture_output=True)
    proc.send_signal(signal.SIGTERM)
    proc.wait()
    dumps = sorted(glob.glob(out + ".*"))
    text = open(dumps[0]).read()
    for f in dumps + [out]:
        if os.path.exists(f):
            os.unlink(f)
    return int(re.search(r"^summary: (\d+)", text, re.M).group(1))


def requests(path, n):
    def work(base):
        host, port = base.removeprefix("http://").split(":")
        for _ in range(n):
            c = http.client.HTTPConnection(host, int(port))
            c.request("GET", path)
            r = c.getresponse()
            assert r.status == 200, r.status
            r.read()
            c.close()
    return work


def ingest(key, n_items):
    def work(base):
        s = Server.__new__(Server)
        s.base, s.key = base, key
        s.call("PUT", f"/v2/vault-plus/lists/{LARGE}/sync")
        # Polled rarely: each poll is counted too.
        while True:
            st = s.call("GET", "/v2/vault-plus/status")
            if st["storedCount"] >= n_items:
                return
            time.sleep(2)
    return work


def fresh_ingest_dir(demo):
    s = Server(upstream=demo.base)
    s.call("PATCH", "/v2/account/connections/conn_bench/settings",
           {"vaultPlus": {"settings": {"imageQualities": ["full"]}}})
    s.halt()
    return s


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "serve"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    build()
    per = {}
    demo = None
    if mode == "serve":
        s, path = stored_object()
        unit, what = "request", f"{n:,} requests"
    else:
        demo = Demo()
        unit, what, n = "item", "a 1,000-item sync", 1000
    print(f"| server | instructions, {what} | per {unit} |")
    print("| --- | ---: | ---: |")
    try:
        for label, extra in (("vaultplus", []), ("vaultplus, --metrics-listen", METRICS)):
            if mode == "serve":
                total = counted(s.dir, requests(path, n), extra, warm=requests(path, 20))
            else:
                up = ["--upstream-url", demo.base, "--upstream-key", "demo-key", "--fetch-concurrency", "8"]
                d = fresh_ingest_dir(demo)
                warm = ingest_warm(d.key)
                total = counted(d.dir, ingest(d.key, n), extra + up, warm=warm)
            per[label] = total / n
            print(f"| {label} | {total:,} | {per[label] / 1000:.1f}k |")
    finally:
        if demo:
            demo.stop()
    on, off = per["vaultplus, --metrics-listen"], per["vaultplus"]
    print(f"\nWith metrics recorded: {on / off:.3f}x the instructions a {unit} ({(on / off - 1) * 100:+.1f}%).")


def ingest_warm(key):
    def warm(base):
        s = Server.__new__(Server)
        s.base, s.key = base, key
        s.call("GET", "/v2/vault-plus/status")
    return warm


if __name__ == "__main__":
    main()
