"""Under-attack benchmark (issue 10): a legitimate client's success rate and
p50/p99 latency on a quiet server, then the same client on the same server
while 2,000 idle sockets, 200 slow readers and 50 stalled uploads run, in the
same run. Prints a Markdown section for BENCHMARKS.md.

The legitimate client opens a NEW connection for every request (the harsher
test of an accept loop under a connection flood) and starts its requests on a
fixed schedule, so that one slow answer does not delay the next one. The
attackers run in a child process (this script with `--attack-child`), one
epoll loop holding every attack socket, so their Python work is not counted
in the client's latencies. Loopback only; every loop is bounded in count and
time, and everything started is stopped in `finally`.

    python3 bench/abuse.py [--bin PATH] [--server-args "..."] [--server-nofile N] [--title "..."]
"""

import argparse
import concurrent.futures
import errno
import json
import math
import os
import queue
import re
import resource
import select
import shlex
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import Server, build, machine  # noqa: E402

# The legitimate client.
REQUESTS = 400
RATE = 10  # requests started per second: 400 requests take 40 s
TIMEOUT = 10.0  # per request, connect to last body byte
WARMUP = 20  # requests before the quiet run, not counted
SMALL_SIZES = (2 * 1024, 4 * 1024, 8 * 1024)
BIG_SIZE = 1024 * 1024

# The attack.
IDLE, SLOW, STALLED = 2000, 200, 50
SLOW_RCVBUF = 4096  # the kernel buffers little for a reader that never reads


def slow_requests():
    """How many GETs of the 1 MB media each slow reader sends at once
    (pipelined). A small receive buffer is not enough on loopback: the
    server's kernel grows its send buffer up to tcp_wmem's maximum (4 MiB by
    default) and would take a single 1 MB answer whole, leaving the server
    process nothing to hold. Asking for more than that buffer makes the
    server wait on the reader, as it would over a real network."""
    try:
        with open("/proc/sys/net/ipv4/tcp_wmem") as f:
            wmem_max = int(f.read().split()[2])
    except (OSError, ValueError, IndexError):
        wmem_max = 4 * 1024 * 1024
    return wmem_max // BIG_SIZE + 1


STALLED_DECLARED = 50 * 1024 * 1024
STALLED_SENT = 4 * 1024
# Sockets the server closes are opened again, after a short pause and at a
# bounded rate, so that the attack stays a set of held sockets rather than a
# connection flood limited only by this script's CPU.
REOPEN_DELAY = 0.1
REOPEN_PER_SEC = 500
RAMP_SECS = 10.0  # longest wait for the attack to be in place
# The attack is opened at this pace: a burst of 2,000 connects overflows the
# listen backlog (128 here), and with SYN cookies the kernel then forgets
# connections the client believes open, so an idle socket would hold nothing.
RAMP_PER_SEC = 1000
ATTACK_MAX_SECS = 120.0  # the attacker stops by itself after this, whatever happens
SAMPLE_SECS = 1.0  # how often the attacker looks at the server's side of its sockets

# Most Linux systems start processes with a soft open-file limit of 1,024
# (systemd's default, with a higher hard limit). The server is started with it
# unless told otherwise: that is where the idle-socket attack bites, and a
# server that raises its soft limit to the hard one at start is measured
# doing so.
SERVER_NOFILE = 1024


# ----------------------------------------------------------------------------
# HTTP over a raw socket, bounded by one deadline


def fetch(addr, target, headers=(), timeout=TIMEOUT):
    """GET `target` on a new connection; returns (status, body). Raises on a
    timeout, a reset, or a body shorter than announced."""
    deadline = time.monotonic() + timeout
    with socket.create_connection(addr, timeout=timeout) as sock:
        head = (f"GET {target} HTTP/1.1\r\nHost: {addr[0]}:{addr[1]}\r\nConnection: close\r\n"
                + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n")
        sock.sendall(head.encode())
        data = bytearray()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("deadline")
            sock.settimeout(left)
            chunk = sock.recv(256 * 1024)
            if not chunk:
                break
            data += chunk
    return parse_response(bytes(data))


def parse_response(data):
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError("incomplete response head")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        if len(body) != int(headers["content-length"]):
            raise ValueError(f"body {len(body)} of {headers['content-length']} bytes")
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = dechunk(body)
    return status, body


def dechunk(body):
    out, pos = bytearray(), 0
    while True:
        end = body.find(b"\r\n", pos)
        if end < 0:
            raise ValueError("truncated chunked body")
        size = int(body[pos:end].split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        if end + 2 + size > len(body):
            raise ValueError("truncated chunked body")
        out += body[end + 2:end + 2 + size]
        pos = end + 4 + size


# ----------------------------------------------------------------------------
# Setup


def upload(s, media, size):
    req = urllib.request.Request(
        f"{s.base}/v2/vault-plus/media/{media}/variants/full", data=os.urandom(size), method="PUT",
        headers={"apiKey": s.key, "x-connection-id": "conn_bench", "Content-Type": "video/mp4"})
    with urllib.request.urlopen(req, timeout=60) as r:
        r.read()
    item = s.call("GET", f"/v2/vault-plus/media/{media}")
    return item["media"]["full"]["url"]


def target_of(url):
    u = urllib.parse.urlsplit(url)
    return u.path + ("?" + u.query if u.query else "")


def make_plan(s, small_urls, big_url):
    """The fixed mix, in order: the two API calls and the two media sizes
    take turns (100 of each in 400 requests)."""
    auth = (("apiKey", s.key), ("x-connection-id", "conn_bench"))
    plan = []
    for i in range(REQUESTS):
        kind = i % 4
        if kind == 0:
            plan.append(("API media list", "/v2/vault-plus/media?limit=50", auth, None))
        elif kind == 1:
            plan.append(("API status", "/v2/vault-plus/status", auth, None))
        elif kind == 2:
            size, url = small_urls[(i // 4) % len(small_urls)]
            plan.append(("media, few KB", target_of(url), (), size))
        else:
            plan.append(("media, 1 MB", target_of(big_url), (), BIG_SIZE))
    return plan


# ----------------------------------------------------------------------------
# The legitimate client


def one_request(addr, req):
    kind, target, headers, size = req
    started = time.monotonic()
    try:
        status, body = fetch(addr, target, headers)
        if not 200 <= status < 300:
            raise ValueError(f"HTTP {status}")
        if size is None:
            json.loads(body)
        elif len(body) != size:
            raise ValueError(f"body {len(body)} of {size} bytes")
        err = None
    except Exception as e:  # noqa: BLE001 - any failure is a failed request, named in the report
        if isinstance(e, TimeoutError):
            err = "timeout"
        elif isinstance(e, OSError):
            err = type(e).__name__
        else:
            err = str(e)
    return kind, err, (time.monotonic() - started) * 1000


def legit_run(addr, plan):
    """Starts request i at i / RATE seconds, each on its own connection and
    thread; returns [(kind, error or None, ms)]. Bounded: every request has a
    TIMEOUT deadline."""
    workers = int(RATE * TIMEOUT) + 16
    with concurrent.futures.ThreadPoolExecutor(workers) as ex:
        start = time.monotonic()
        futures = []
        for i, req in enumerate(plan):
            wait = start + i / RATE - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            futures.append(ex.submit(one_request, addr, req))
        results = []
        for req, f in zip(plan, futures):
            try:
                results.append(f.result(timeout=TIMEOUT + 5))
            except concurrent.futures.TimeoutError:
                results.append((req[0], "timeout", (TIMEOUT + 5) * 1000))
    return results


def percentile(values, p):
    """Nearest rank."""
    if not values:
        return float("nan")
    v = sorted(values)
    return v[max(0, math.ceil(p / 100 * len(v)) - 1)]


class Sampler:
    """Samples the server's resident memory and open descriptors 4 times a second."""

    def __init__(self, pid):
        self.pid, self.rss, self.fds = pid, [], []
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop_event.is_set():
            try:
                with open(f"/proc/{self.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            self.rss.append(int(line.split()[1]) / 1024)
                self.fds.append(len(os.listdir(f"/proc/{self.pid}/fd")))
            except OSError:
                pass
            self.stop_event.wait(0.25)

    def stop(self):
        self.stop_event.set()
        self.thread.join(timeout=5)
        return max(self.rss, default=float("nan")), max(self.fds, default=0)


# ----------------------------------------------------------------------------
# The attack (child process)


def server_side(port):
    """{client port: inode} of the server's end of every loopback connection
    to `port`, from /proc/net/tcp. Inode 0 means no process holds that end:
    still in the listen backlog, or closed by the server with unsent data
    (orphaned); absent means gone. So a slow reader, whose own end never
    sees the server's FIN behind the unread data, is known to be cut by the
    server as soon as the server lets go of it."""
    out = {}
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, remote = fields[1], fields[2]
            if int(local.rsplit(":", 1)[1], 16) == port:
                rport = int(remote.rsplit(":", 1)[1], 16)
                if rport:
                    out[rport] = int(fields[9])
    return out


class Attack:
    """Every attack socket in one epoll loop. Idle sockets and stalled uploads
    are watched for the server closing them (and opened again); slow readers
    are never read. Once a second the server's side of every attack socket
    is looked up (`server_side`): how many the server process holds, and
    when it let go of each slow reader."""

    def __init__(self, cfg):
        self.addr = (cfg["host"], cfg["port"])
        self.cfg = cfg
        self.ep = select.epoll()
        self.socks = {}  # fd -> [sock, kind, state, t_connected, t_last_sent, first bytes received]
        self.slow = []  # connected slow readers: [sock, port, t_connected, ever held, secs until cut]
        self.held_by_server = {"idle": [], "stalled": [], "slow": []}  # one count per sample
        self.reopen = []  # (due, kind)
        self.stopping = False
        self.stats = {k: {"opened": 0, "connect_failed": 0, "closed_by_server": 0, "answered": {},
                          "close_secs": []} for k in ("idle", "stalled")}
        self.stats["slow"] = {"opened": 0, "connect_failed": 0}
        self.errors = {}
        self.tokens, self.t_tokens = float(REOPEN_PER_SEC), time.monotonic()

    def open(self, kind):
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        except OSError as e:
            self.count_error(e.errno)
            self.reopen.append((time.monotonic() + 1.0, kind))
            return
        if kind == "slow":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_RCVBUF)
        s.setblocking(False)
        err = s.connect_ex(self.addr)
        if err not in (0, errno.EINPROGRESS):
            self.count_error(err)
            s.close()
            self.stats[kind]["connect_failed"] += 1
            if kind != "slow":
                self.reopen.append((time.monotonic() + 1.0, kind))
            return
        self.socks[s.fileno()] = [s, kind, "connecting", 0.0, 0.0, b""]
        self.ep.register(s.fileno(), select.EPOLLOUT)

    def count_error(self, err):
        name = errno.errorcode.get(err, str(err))
        self.errors[name] = self.errors.get(name, 0) + 1

    def connected(self, fd, entry):
        now = time.monotonic()
        entry[2], entry[3], entry[4] = "open", now, now
        self.stats[entry[1]]["opened"] += 1
        try:
            self.start_talking(fd, entry)
        except OSError as e:  # reset before we said anything: closed by the server
            self.count_error(e.errno)
            if entry[1] == "slow":
                self.slow = [e for e in self.slow if e[0] is not entry[0]]
                entry[0].close()
            else:
                self.closed(fd, entry)

    def start_talking(self, fd, entry):
        s, kind = entry[0], entry[1]
        if kind == "idle":
            self.ep.modify(fd, select.EPOLLIN | select.EPOLLRDHUP)
        elif kind == "slow":
            # Ask for the 1 MB media, then never read: the answer stays in
            # the server's hands.
            self.ep.unregister(fd)
            del self.socks[fd]
            self.slow.append([s, s.getsockname()[1], entry[3], False, None])
            get = f"GET {self.cfg['slow_target']} HTTP/1.1\r\nHost: {self.addr[0]}\r\n\r\n"
            s.send((get * self.cfg["slow_requests"]).encode())
        else:
            media = self.cfg["stalled_media"] + self.stats["stalled"]["opened"]
            head = (f"PUT /v2/vault-plus/media/{media}/variants/full HTTP/1.1\r\n"
                    f"Host: {self.addr[0]}\r\napiKey: {self.cfg['key']}\r\n"
                    f"x-connection-id: {self.cfg['conn']}\r\nContent-Type: video/mp4\r\n"
                    f"Content-Length: {STALLED_DECLARED}\r\n\r\n").encode()
            s.send(head + b"\0" * STALLED_SENT)
            self.ep.modify(fd, select.EPOLLIN | select.EPOLLRDHUP)

    def readable(self, fd, entry):
        s, kind = entry[0], entry[1]
        try:
            chunk = s.recv(65536)
        except BlockingIOError:
            return
        except OSError as e:
            self.count_error(e.errno)
            chunk = b""
        if chunk:
            if not entry[5]:
                status = chunk.split(b" ", 2)[1].decode("latin-1", "replace") if chunk.startswith(b"HTTP/") else "?"
                answered = self.stats[kind]["answered"]
                answered[status] = answered.get(status, 0) + 1
            entry[5] = entry[5] or chunk[:16]
            return
        self.closed(fd, entry)
        st = self.stats[kind]
        st["closed_by_server"] += 1
        st["close_secs"].append(time.monotonic() - entry[4])

    def closed(self, fd, entry):
        self.ep.unregister(fd)
        del self.socks[fd]
        entry[0].close()
        if not self.stopping:
            self.reopen.append((time.monotonic() + REOPEN_DELAY, entry[1]))

    def event(self, fd, ev):
        entry = self.socks.get(fd)
        if entry is None:
            return
        if entry[2] == "connecting":
            err = entry[0].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self.count_error(err)
                self.stats[entry[1]]["connect_failed"] += 1
                if entry[1] == "slow":
                    self.ep.unregister(fd)
                    del self.socks[fd]
                    entry[0].close()
                else:
                    self.closed(fd, entry)
            elif ev & select.EPOLLOUT:
                self.connected(fd, entry)
            return
        self.readable(fd, entry)

    def reopen_due(self):
        now = time.monotonic()
        self.tokens = min(REOPEN_PER_SEC, self.tokens + (now - self.t_tokens) * REOPEN_PER_SEC)
        self.t_tokens = now
        keep = []
        for due, kind in self.reopen:
            if due <= now and self.tokens >= 1 and not self.stopping:
                self.tokens -= 1
                self.open(kind)
            else:
                keep.append((due, kind))
        self.reopen = keep

    def held(self):
        counts = {"idle": 0, "stalled": 0, "connecting": 0}
        for entry in self.socks.values():
            counts["connecting" if entry[2] == "connecting" else entry[1]] += 1
        counts["slow"] = len(self.slow)
        return counts

    def sample(self):
        """Counts the attack sockets whose server end a process holds, and
        notes when the server let go of each slow reader."""
        try:
            server = server_side(self.addr[1])
        except OSError:
            return
        now = time.monotonic()
        counts = {"idle": 0, "stalled": 0, "slow": 0}
        for entry in self.socks.values():
            if entry[2] == "open" and server.get(entry[0].getsockname()[1], 0):
                counts[entry[1]] += 1
        for e in self.slow:
            if server.get(e[1], 0):
                e[3] = True
                counts["slow"] += 1
            elif e[3] and e[4] is None:
                e[4] = now - e[2]
        for kind, n in counts.items():
            self.held_by_server[kind].append(n)

    def poll(self, timeout):
        for fd, ev in self.ep.poll(timeout):
            if fd == 0:
                if not os.read(0, 4096):
                    self.stopping = True
                continue
            self.event(fd, ev)

    def run(self):
        started = time.monotonic()
        # Slow readers and stalled uploads first: on a server that stops
        # accepting once its descriptors run out, idle sockets opened first
        # would leave the other two attacks waiting in the listen backlog.
        todo = ["slow"] * SLOW + ["stalled"] * STALLED + ["idle"] * IDLE
        while time.monotonic() - started < RAMP_SECS:
            due = int((time.monotonic() - started) * RAMP_PER_SEC) + 1
            opened = SLOW + STALLED + IDLE - len(todo)
            for kind in todo[:max(0, due - opened)]:
                self.open(kind)
            del todo[:max(0, due - opened)]
            if not todo and not any(e[2] == "connecting" for e in self.socks.values()):
                break
            self.poll(0.01)
        report({"ready": round(time.monotonic() - started, 2), "held": self.held()})
        self.ep.register(0, select.EPOLLIN)
        held_min, next_sample = self.held(), 0.0
        while not self.stopping and time.monotonic() - started < ATTACK_MAX_SECS:
            self.poll(0.1)
            self.reopen_due()
            if time.monotonic() >= next_sample:
                next_sample = time.monotonic() + SAMPLE_SECS
                held_min = {k: min(v, held_min[k]) for k, v in self.held().items()}
                self.sample()
        self.stopping = True
        self.sample()
        for st in (self.stats["idle"], self.stats["stalled"]):
            secs = sorted(st.pop("close_secs"))
            st["close_median_secs"] = round(secs[len(secs) // 2], 1) if secs else None
            st["close_max_secs"] = round(secs[-1], 1) if secs else None
        cut = sorted(e[4] for e in self.slow if e[4] is not None)
        self.stats["slow"].update({
            "ever_held": sum(1 for e in self.slow if e[3]), "cut": len(cut),
            "cut_median_secs": round(cut[len(cut) // 2], 1) if cut else None,
            "cut_max_secs": round(cut[-1], 1) if cut else None})
        server = {k: {"max": max(v, default=0), "end": v[-1] if v else 0} for k, v in self.held_by_server.items()}
        report({"stats": self.stats, "held_min": held_min, "server_held": server, "errors": self.errors,
                "secs": round(time.monotonic() - started, 1)})
        for e in self.slow:
            e[0].close()


def report(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def attack_child(cfg):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    Attack(json.loads(cfg)).run()


class Attacker:
    """The attack child, seen from the parent."""

    def __init__(self, cfg):
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--attack-child", json.dumps(cfg)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.lines = queue.Queue()
        threading.Thread(target=self.read, daemon=True).start()

    def read(self):
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))
        self.lines.put(None)

    def next(self, timeout):
        try:
            msg = self.lines.get(timeout=timeout)
        except queue.Empty:
            msg = None
        if msg is None:
            raise RuntimeError("the attacker did not answer")
        return msg

    def finish(self):
        self.proc.stdin.close()
        return self.next(15)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


# ----------------------------------------------------------------------------
# Runs and report


def server_flags(bin_path, extra):
    """The flags passed to `vaultplus serve`, and a note on each choice."""
    help_text = subprocess.run([bin_path, "serve", "--help"], capture_output=True, text=True).stdout
    flags, notes = list(extra), []
    given = [f.split("=", 1)[0] for f in extra if f.startswith("--")]
    if "--rate-limit-per-minute" in given:
        notes.append("API rate limit as given below")
    elif re.search(r"(?<![\w-])--rate-limit-per-minute\b", help_text):
        flags += ["--rate-limit-per-minute", "0"]
        notes.append("API rate limit off (`--rate-limit-per-minute 0`): it would otherwise throttle the "
                     "legitimate client, which is not what this measures")
    else:
        notes.append("this build has no rate limit")
    timeouts = [f for f in given if f.endswith("-secs") and ("timeout" in f or "idle" in f)]
    notes.append(f"timeouts set for this run (not the defaults): {', '.join(timeouts)}" if timeouts
                 else "every timeout at its default")
    return flags, notes


def summarize(results):
    ok = [r for r in results if r[1] is None]
    ms = [r[2] for r in results]
    return len(results), len(ok), percentile(ms, 50), percentile(ms, 99)


def failures(results):
    out = {}
    for kind, err, _ in results:
        if err:
            key = f"{kind}: {err}"
            out[key] = out.get(key, 0) + 1
    return ", ".join(f"{k} x{v}" for k, v in sorted(out.items(), key=lambda kv: -kv[1])) or "none"


def by_kind(quiet, under):
    parts = []
    for kind in dict.fromkeys(r[0] for r in quiet):
        q = [r[2] for r in quiet if r[0] == kind]
        a = [r[2] for r in under if r[0] == kind]
        parts.append(f"{kind} {percentile(q, 50):.1f} / {percentile(q, 99):.1f} then "
                     f"{percentile(a, 50):.1f} / {percentile(a, 99):.1f}")
    return "; ".join(parts)


def git_head():
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=common.ROOT, capture_output=True, text=True)
    return r.stdout.strip() or "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", help="run this vaultplus binary instead of building target/release")
    ap.add_argument("--server-args", default="", help="extra arguments for `vaultplus serve`, e.g. \"--header-timeout-secs 5\" "
                    "(write --server-args=--flag=value for a single flag without a space)")
    ap.add_argument("--server-nofile", type=int, default=SERVER_NOFILE,
                    help=f"soft open-file limit the server starts with (default {SERVER_NOFILE}; 0 inherits ours)")
    ap.add_argument("--title", help="heading of the printed section")
    ap.add_argument("--attack-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.attack_child:
        return attack_child(args.attack_child)

    if args.bin:
        common.BIN = os.path.abspath(args.bin)
    else:
        build()
    binary = f"`{args.bin}`" if args.bin else "release build"
    title = args.title or (f"`{args.bin}`" if args.bin else f"commit {git_head()}")
    flags, notes = server_flags(common.BIN, shlex.split(args.server_args))

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    server_soft = min(args.server_nofile, hard) if args.server_nofile > 0 else soft
    resource.setrlimit(resource.RLIMIT_NOFILE, (server_soft, hard))
    try:
        s = Server(*flags)  # inherits the soft limit set just above
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    attacker = None
    try:
        s.cli("connections", "add", "--org", "default", "conn_attacker")
        addr = tuple(urllib.parse.urlsplit(s.base).netloc.rsplit(":", 1))
        addr = (addr[0], int(addr[1]))
        small = [(size, upload(s, str(2000 + i), size)) for i, size in enumerate(SMALL_SIZES)]
        big = upload(s, "2100", BIG_SIZE)
        plan = make_plan(s, small, big)
        for req in plan[:WARMUP]:
            one_request(addr, req)

        load_quiet = open("/proc/loadavg").read().split()[0]
        sampler = Sampler(s.proc.pid)
        quiet = legit_run(addr, plan)
        quiet_rss, quiet_fds = sampler.stop()

        attacker = Attacker({"host": addr[0], "port": addr[1], "slow_target": target_of(big),
                             "slow_requests": slow_requests(),
                             "stalled_media": 3000, "key": s.key, "conn": "conn_attacker"})
        ready = attacker.next(RAMP_SECS + 15)
        load_attack = open("/proc/loadavg").read().split()[0]
        sampler = Sampler(s.proc.pid)
        attack_started = time.monotonic()
        under = legit_run(addr, plan)
        attack_rss, attack_fds = sampler.stop()
        final = attacker.finish()
        attack_secs = time.monotonic() - attack_started + ready["ready"]
        try:
            peak = s.peak_rss_mib()
        except OSError:  # the server is gone
            peak = float("nan")
    finally:
        if attacker:
            attacker.kill()
        s.stop()

    q, a = summarize(quiet), summarize(under)
    st = final["stats"]
    print(f"### {title}\n")
    print(f"Machine: {machine()} (shared; 1-minute load {load_quiet} before the quiet run, {load_attack} "
          f"before the attacked one). Binary: {binary}, SQLite + local blobs, server started with a soft "
          f"open-file limit of {server_soft} (hard {hard}); {'; '.join(notes)}. Server flags: "
          f"`{' '.join(flags) or 'none'}`. The legitimate client: {REQUESTS} requests started {RATE} a second "
          f"(API media list, API status, a few-KB media URL, the 1 MB media URL, in turn), each on a new "
          f"connection with a {TIMEOUT:.0f} s deadline; success is a 2xx with the whole body. Latencies "
          f"count every request, a failed one at the time it failed.\n")
    print("| run | requests | succeeded | p50 ms | p99 ms | server RSS MiB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, (n, ok, p50, p99), rss in (("quiet", q, quiet_rss), ("under attack", a, attack_rss)):
        print(f"| {name} | {n} | {ok} ({100 * ok / n:.1f}%) | {p50:.1f} | {p99:.1f} | {rss:.0f} |")
    print()
    print(f"p99 under attack / quiet: {a[3] / q[3]:.2f}x (target: every request succeeds and at most 2x).\n")
    print(f"- Failures under attack: {failures(under)}. Quiet run: {failures(quiet)}.")
    print(f"- p50 / p99 ms by request, quiet then under attack: {by_kind(quiet, under)}.")
    print(f"- Server memory: peak (VmHWM) {peak:.0f} MiB; largest resident sample {quiet_rss:.0f} MiB quiet, "
          f"{attack_rss:.0f} MiB under attack. Open descriptors, largest sample: {quiet_fds} quiet, "
          f"{attack_fds} under attack.")
    print(f"- Attack ({attack_secs:.0f} s): in place after {ready['ready']} s with {ready['held']['idle']} idle "
          f"sockets, {ready['held']['slow']} slow readers and {ready['held']['stalled']} stalled uploads "
          f"connected ({ready['held']['connecting']} still connecting); fewest held at any time during the run: "
          f"{final['held_min']['idle']} idle, {final['held_min']['stalled']} stalled.")
    held = final["server_held"]
    for kind, label, since in (("idle", "Idle sockets", "after connecting"),
                               ("stalled", "Stalled uploads", "after their last byte")):
        k = st[kind]
        med = f"median {k['close_median_secs']} s, longest {k['close_max_secs']} s {since}" \
            if k["close_median_secs"] is not None else "none"
        ans = ", ".join(f"HTTP {c} x{n}" for c, n in k["answered"].items()) or "no answer"
        print(f"- {label}: {k['opened']} connections opened (with re-opens), {k['connect_failed']} failed to "
              f"connect; held by the server process: at most {held[kind]['max']} at once, {held[kind]['end']} "
              f"at the end; {k['closed_by_server']} closed by the server ({med}); answers seen: {ans}.")
    sl = st["slow"]
    cut = f"median {sl['cut_median_secs']} s, longest {sl['cut_max_secs']} s after connecting" \
        if sl["cut_median_secs"] is not None else "none"
    print(f"- Slow readers ({slow_requests()} pipelined GETs of the 1 MB media each, receive buffer "
          f"{SLOW_RCVBUF} bytes, never read): {sl['opened']} connected, {sl['ever_held']} taken in by the server "
          f"process (at most {held['slow']['max']} at once); {sl['cut']} let go by the server ({cut}), "
          f"{held['slow']['end']} still held at the end.")
    if final["errors"]:
        print(f"- Attacker socket errors: {', '.join(f'{k} x{v}' for k, v in final['errors'].items())}.")


if __name__ == "__main__":
    main()
