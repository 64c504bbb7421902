"""Instructions counted by callgrind, without and with `--metrics-listen`:
deterministic for a given binary, unlike wall-clock figures on a shared
machine. The whole server process is counted for the work and for a start
and stop alone, and the difference divided by the units of work.

- `serve [N]`: N requests (default 1,000) for one stored 1 KB object by
  signed URL, each on a new connection;
- `ingest`: a sync of the local upstream's 1,000-item list, `full` only
  (fetch, checksum, fsync, catalog commit per item).

Usage: python3 bench/callgrind.py serve|ingest [N]   (needs valgrind)"""

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


def counted(data_dir, work, extra):
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
    work(base)
    proc.send_signal(signal.SIGTERM)
    proc.wait()
    text = open(out).read()
    os.unlink(out)
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
    if mode == "serve":
        s, path = stored_object()
        unit = "request"
        print(f"| server | instructions, {n} requests | instructions, none | per request |")
    else:
        demo = Demo()
        unit, n = "item", 1000
        print("| server | instructions, 1,000-item sync | instructions, none | per item |")
    print("| --- | ---: | ---: | ---: |")
    try:
        for label, extra in (("vaultplus", []), ("vaultplus, --metrics-listen", METRICS)):
            if mode == "serve":
                busy = counted(s.dir, requests(path, n), extra)
                idle = counted(s.dir, requests(path, 0), extra)
            else:
                up = ["--upstream-url", demo.base, "--upstream-key", "demo-key", "--fetch-concurrency", "8"]
                d = fresh_ingest_dir(demo)
                busy = counted(d.dir, ingest(d.key, n), extra + up)
                idle = counted(fresh_ingest_dir(demo).dir, lambda base: None, extra + up)
            per[label] = (busy - idle) / n
            print(f"| {label} | {busy:,} | {idle:,} | {per[label] / 1000:.1f}k |")
    finally:
        if mode != "serve":
            demo.stop()
    on, off = per["vaultplus, --metrics-listen"], per["vaultplus"]
    print(f"\nWith metrics recorded: {on / off:.3f}x the instructions a {unit} ({(on / off - 1) * 100:+.1f}%).")


if __name__ == "__main__":
    main()
