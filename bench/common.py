"""Shared helpers for the benchmarks: start the release binary's server and
demo upstream as local processes, talk HTTP to them, read peak memory."""

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "vaultplus")


def build():
    subprocess.run(["cargo", "build", "--release", "--locked", "-q"], cwd=ROOT, check=True)


def _spawn(args, marker, env=None, binary=None):
    proc = subprocess.Popen([binary or BIN] + args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, env={**os.environ, **(env or {}), "RUST_LOG": "warn"})
    key = None
    for line in proc.stdout:
        if line.startswith("vpk_"):
            key = line.strip()
        if line.startswith(marker):
            base = line[len(marker):].split()[0]
            return proc, base, key
    raise RuntimeError(f"{args[0]} did not start")


class Demo:
    def __init__(self, *extra):
        self.proc, self.base, _ = _spawn(["demo-upstream", "--listen", "127.0.0.1:0", *extra],
                                         "demo-upstream listening on ")

    def stop(self):
        self.proc.kill()
        self.proc.wait()


class Server:
    """A server on a fresh data directory. `stores` are the --database,
    --blobs and S3 flags (passed to the CLI as well), `env` extra variables
    (e.g. AWS credentials) for the server and the CLI. `key`: an API key of
    a shared catalog another server set up (a second cluster node): this one
    joins it as it is, adding no connection (only the first prints a key)."""

    # Defaults for instances made without __init__ (bench/purge.py).
    stores = ()
    env = {}

    def __init__(self, *extra, upstream=None, stores=(), env=None, binary=None, key=None):
        self.binary = binary or BIN
        self.dir = tempfile.mkdtemp(prefix="vaultplus-bench-")
        self.stores = list(stores)
        self.env = dict(env or {})
        self.args = ["serve", "--data-dir", self.dir, *self.stores, "--listen", "127.0.0.1:0", *extra]
        if upstream:
            self.args += ["--upstream-url", upstream, "--upstream-key", "demo-key"]
        self.key = key
        self.start()
        if key is None:
            self.cli("connections", "add", "--org", "default", "conn_bench")

    def start(self):
        """Starts the server process (again, after halt(): same stores, same key)."""
        self.proc, self.base, key = _spawn(self.args, "vaultplus listening on ", self.env, self.binary)
        self.key = key or self.key

    def halt(self):
        """Stops the server process, keeping its data."""
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def cli(self, *args):
        return subprocess.run([self.binary, *args, "--data-dir", self.dir, *self.stores], check=True,
                              capture_output=True, text=True, env={**os.environ, **self.env}).stdout

    def call(self, method, path, body=None, conn="conn_bench"):
        headers = {"apiKey": self.key, "x-connection-id": conn}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        with urllib.request.urlopen(req, timeout=600) as r:
            return json.load(r)

    def peak_rss_mib(self):
        return peak_rss_mib(self.proc.pid)

    def all_pages(self, path):
        """Every item of a paged route, following nextCursor to the end."""
        items, cursor = [], None
        while True:
            sep = "&" if "?" in path else "?"
            url = path if cursor is None else f"{path}{sep}cursor={urllib.parse.quote(cursor)}"
            page = self.call("GET", url)
            items.extend(page["items"])
            cursor = page.get("nextCursor")
            if cursor is None:
                return items

    def wait_stored(self, count, timeout=900):
        """Waits until `count` variants are stored, polling the connection's
        status (its counters: cheap, so the poll does not load the server
        being measured, as paging through every job would)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.call("GET", "/v2/vault-plus/status")["storedCount"] >= count:
                return
            time.sleep(0.01)
        raise RuntimeError("storing did not finish")

    def wait_idle(self, timeout=900):
        deadline = time.time() + timeout
        while time.time() < deadline:
            jobs = self.all_pages("/v2/vault-plus/jobs")
            if not any(j["state"] != "failed" for j in jobs):
                return
            time.sleep(0.05)
        raise RuntimeError("storing did not finish")

    def stop(self):
        self.halt()
        shutil.rmtree(self.dir, ignore_errors=True)


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        m = re.search(r"VmHWM:\s+(\d+) kB", f.read())
    return int(m.group(1)) / 1024 if m else float("nan")


def machine():
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores, {cpu}"
