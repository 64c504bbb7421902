"""Serving benchmark: vaultplus serving stored media by signed URL beside
nginx serving the very same blob files from the same disk (sendfile on), in
the same run, driven by wrk over loopback: 1 KB, 100 KB and 10 MB objects,
64 connections. Prints a Markdown section for BENCHMARKS.md.

`--previous PATH` also measures another vaultplus binary (an earlier
release build) on its own data directory, alternating with the others.
`--metrics` also measures this build with `--metrics-listen` (recording
metrics), beside the same build without it.

nginx and wrk come from the OS packages (installed here when missing)."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Server, build, machine  # noqa: E402

SIZES = [("1 KB", 1024), ("100 KB", 100 * 1024), ("10 MB", 10 * 1024 * 1024)]
CONNECTIONS = 64
THREADS = 1
# Load generator and servers on separate cores, so that neither peer is
# measured while competing with wrk for the same CPU.
SERVER_CPU, CLIENT_CPU = "1", "0"
SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
# Runs alternate between the two servers and the median is reported: on a
# shared 2-core VM single runs vary by tens of percent.
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))


def ensure_tools():
    missing = [t for t in ("nginx", "wrk") if shutil.which(t) is None and not os.path.exists(f"/usr/sbin/{t}")]
    if missing:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "nginx-light", "wrk"], check=True, env=env)


def upload(s, media, size):
    body = os.urandom(size)
    req = urllib.request.Request(
        f"{s.base}/v2/vault-plus/media/{media}/variants/full", data=body, method="PUT",
        headers={"apiKey": s.key, "x-connection-id": "conn_bench", "Content-Type": "video/mp4"})
    with urllib.request.urlopen(req) as r:
        import json
        return json.load(r)["url"]


def blob_path(s, size):
    root = os.path.join(s.dir, "blobs")
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            if os.path.getsize(p) == size:
                return os.path.relpath(p, root)
    raise RuntimeError("blob not found")


def start_nginx(root):
    conf_dir = tempfile.mkdtemp(prefix="bench-nginx-")
    conf = os.path.join(conf_dir, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""
user root;
worker_processes 1;
pid {conf_dir}/nginx.pid;
error_log {conf_dir}/error.log warn;
daemon off;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    default_type application/octet-stream;
    client_body_temp_path {conf_dir}/body;
    proxy_temp_path {conf_dir}/proxy;
    fastcgi_temp_path {conf_dir}/fastcgi;
    uwsgi_temp_path {conf_dir}/uwsgi;
    scgi_temp_path {conf_dir}/scgi;
    server {{
        listen 127.0.0.1:18999;
        root {root};
        location / {{ }}
    }}
}}
""")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    proc = subprocess.Popen(["taskset", "-c", SERVER_CPU, nginx, "-c", conf, "-p", conf_dir],
                            stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            urllib.request.urlopen("http://127.0.0.1:18999/", timeout=1)
        except urllib.error.HTTPError:
            break
        except OSError:
            time.sleep(0.05)
    return proc, conf_dir


def wrk(url):
    check = urllib.request.urlopen(url)
    assert check.status == 200, f"{url}: {check.status}"
    check.read()
    out = subprocess.run(["taskset", "-c", CLIENT_CPU, "wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{SECONDS}s", "--latency", url],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def ms(label):
        m = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, ms("50%"), ms("99%"), int(errors.group(1)) if errors else 0


def median(runs):
    """The run with the median requests/s."""
    return sorted(runs, key=lambda r: r[0])[len(runs) // 2]


def pinned_server(binary=None, extra=()):
    # Rate limits (where the build has them) off: wrk is one client.
    extra = (("--rate-limit-per-minute", "0") if binary is None else ()) + tuple(extra)
    s = Server(*extra, binary=binary)
    subprocess.run(["taskset", "-a", "-p", "-c", SERVER_CPU, str(s.proc.pid)], check=True,
                   stdout=subprocess.DEVNULL)
    return s


def main():
    previous = None
    if "--previous" in sys.argv:
        previous = os.path.abspath(sys.argv[sys.argv.index("--previous") + 1])
    ensure_tools()
    build()
    s = pinned_server()
    # Every vaultplus peer: (label, server); each gets the same objects.
    peers = [("vaultplus", s)]
    if "--metrics" in sys.argv:
        peers.append(("vaultplus, --metrics-listen", pinned_server(extra=("--metrics-listen", "127.0.0.1:0"))))
    if previous:
        peers.append(("previous build", pinned_server(previous)))
    nginx = None
    try:
        urls = {name: {label: upload(p, str(1000 + i), size) for i, (label, size) in enumerate(SIZES)}
                for name, p in peers}
        paths = {label: blob_path(s, size) for label, size in SIZES}
        nginx, conf_dir = start_nginx(os.path.join(s.dir, "blobs"))
        rows = []
        idle_rss = s.peak_rss_mib()
        for label, size in SIZES:
            runs = {name: [] for name in ["nginx"] + [n for n, _ in peers]}
            for _ in range(REPEATS):
                runs["nginx"].append(wrk(f"http://127.0.0.1:18999/{paths[label]}"))
                for name, _ in peers:
                    runs[name].append(wrk(urls[name][label]))
            rows.append((label, size, {name: median(r) for name, r in runs.items()}))
        peak_rss = s.peak_rss_mib()
    finally:
        if nginx:
            # SIGTERM: the master stops its workers (SIGKILL would orphan
            # them, still listening).
            nginx.terminate()
            nginx.wait()
        for _, p in peers:
            p.stop()
    print("## Serving stored media (issue 4)\n")
    print(f"Machine: {machine()}. Release build; nginx {nginx_version()} with `sendfile on`, "
          f"serving the same blob files; each server pinned to one core and wrk ({THREADS} thread, "
          f"{CONNECTIONS} connections) to the other; "
          f"{SECONDS} s per run, median of {REPEATS} alternating runs, all on loopback.\n")
    print("| object | server | requests/s | MB/s | p50 (ms) | p99 (ms) | errors | vaultplus / nginx |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, size, figures in rows:
        n = figures["nginx"]
        for name, (rps, p50, p99, err) in figures.items():
            ratio = "" if name == "nginx" else f"{rps / n[0]:.2f}x"
            print(f"| {label} | {name} | {rps:,.0f} | {rps * size / 1e6:,.1f} | {p50:.2f} | {p99:.2f} | {err} | {ratio} |")
    metered = "vaultplus, --metrics-listen"
    if any(metered in f for _, _, f in rows):
        print()
        print("With metrics recorded, over without: " + ", ".join(
            f"{label} {f[metered][0] / f['vaultplus'][0]:.2f}x" for label, _, f in rows) + ".")
    print()
    print(f"vaultplus peak resident memory over all runs (64 concurrent downloads, up to 10 MB each): "
          f"{peak_rss:.0f} MiB (after start-up and uploads: {idle_rss:.0f} MiB).")


def nginx_version():
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    out = subprocess.run([nginx, "-v"], capture_output=True, text=True).stderr
    return out.strip().split("/")[-1]


if __name__ == "__main__":
    main()
