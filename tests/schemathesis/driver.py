"""Schemathesis over vaultplus's whole OpenAPI document, against a real server.

Starts the demo upstream and a vaultplus wired to it (port 0, temporary data
directory), then a vaultplus with no upstream at all. Seeds each
(connections, two vault lists where there is an upstream, an upload) so that
reads find data and media URLs exist, writes a schemathesis configuration
naming the ACCOUNT key, the seeded connection and the seeded IDs and tokens,
runs `st run` over /openapi.json and counts operations from its JUnit
reports (both runs together in the closing line).

Usage (from run.sh): python driver.py BINARY

Environment: VAULTPLUS_ST_MAX_EXAMPLES (default 100) and VAULTPLUS_ST_SEED
(default 20261202) bound and fix the run; VAULTPLUS_ST_REPORT_DIR keeps the
reports (default: a temporary directory, removed afterwards); VAULTPLUS_ST_EXTRA
adds `st run` options (to look at one operation: --include-name 'GET /healthz');
VAULTPLUS_ST_UPSTREAM=yes|no runs only one of the two servers: one wired to
the demo upstream, one with no upstream configured (where every route that
needs one answers 502, which the document must declare).
"""

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
SEEDED = "conn_a"
SCRATCH = "conn_scratch"
# Connections the run may delete (found through GET /v2/account/connections).
SPARE = ["conn_b", "conn_c", "conn_d"]
# Every check that applies to a stateless API with no users of its own.
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "negative_data_rejection",
    "positive_data_acceptance",
]


class Process:
    """A child process whose stdout is read line by line in a thread."""

    def __init__(self, args, log_path):
        self.log = open(log_path, "wb")
        self.lines = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=dict(os.environ, RUST_LOG="warn"),
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in self.proc.stdout:
            with self.cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\r\n"))
                self.cond.notify_all()
        with self.cond:
            self.lines.append(None)
            self.cond.notify_all()

    def wait_line(self, prefix, timeout=30):
        """The first line starting with `prefix` (and the one after it)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for i, line in enumerate(self.lines):
                    if line is None:
                        raise RuntimeError("process ended before printing %r" % prefix)
                    if line.startswith(prefix):
                        after = self.lines[i + 1] if i + 1 < len(self.lines) else None
                        if after is not None or not prefix.startswith("Created"):
                            return line, after
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError("no line %r within %ss: %r" % (prefix, timeout, self.lines))
                self.cond.wait(left)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self.log.close()


def request(method, url, key=None, connection=None, body=None, content_type=None):
    headers = {}
    if key:
        headers["apiKey"] = key
    if connection:
        headers["x-connection-id"] = connection
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers["Content-Type"] = content_type or "application/json"
    req = urllib.request.Request(url, method=method, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def must(result, what):
    status, body = result
    if status // 100 != 2:
        raise RuntimeError("%s: %s %s" % (what, status, body))
    return body


def seed(binary, data_dir, base, key, upstream):
    """Connections, lists and an upload; answers the IDs and tokens to reuse."""
    env = dict(os.environ, VAULTPLUS_DATA_DIR=data_dir)
    for conn in [SEEDED, SCRATCH] + SPARE:
        subprocess.run([binary, "connections", "add", "--org", "default", conn],
                       env=env, check=True, stdout=subprocess.DEVNULL)
    for conn in (SEEDED, SCRATCH):
        for list_id in ("101", "104") if upstream else ():
            must(request("POST", "%s/v2/vault-plus/lists/%s/add" % (base, list_id), key, conn),
                 "add list %s" % list_id)
        png = bytes.fromhex(
            "89504e470d0a1a0a0000000d4948445200000001000000010800000000"
            "3a7e9b550000000a49444154789c63600000000200015e2cd5ef0000000049454e44ae426082")
        must(request("PUT", "%s/v2/vault-plus/media/7/variants/full" % base, key, conn,
                     body=png, content_type="image/png"), "upload")
    # Let the storing jobs of the lists run, so that stored variants (with
    # ranges and conditional requests) exist beside edge-only ones.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        jobs = must(request("GET", base + "/v2/vault-plus/jobs", key, SEEDED), "jobs")
        if all(j["state"] == "failed" for j in jobs["items"]):
            break
        time.sleep(0.2)
    page = must(request("GET", base + "/v2/vault-plus/media?limit=100", key, SEEDED), "media")
    media_ids, tokens = [], []
    for item in page["items"]:
        media_ids.append(item["id"])
        for variant in item["media"].values():
            tokens.append(urllib.parse.urlsplit(variant["url"]).path.rsplit("/", 1)[1])
    if not tokens:
        raise RuntimeError("seeding left no media: %r" % page)
    defaults = must(request("GET", base + "/v2/account/settings", key), "settings")
    return media_ids, tokens, defaults["vaultPlus"]["defaultSettings"]


def toml_str(s):
    return json.dumps(s)  # a JSON string is a valid TOML basic string


def toml_list(values):
    return "[" + ", ".join(toml_str(v) for v in values) + "]"


def write_config(path, key, media_ids, tokens, with_upstream):
    lines = [
        "[auth.openapi.ApiKey]",
        "api_key = %s" % toml_str(key),
        "",
        "[dictionaries]",
        "media-ids = { values = %s }" % toml_list(media_ids),
        # The demo's lists, and one it does not have.
        'list-ids = { values = ["101", "102", "103", "104", "999999"] }',
        "labels = { values = %s }" % toml_list(["full", "thumb", "preview", "source"]),
        "tokens = { values = %s }" % toml_list(tokens),
        "connections = { values = %s }" % toml_list(SPARE + [SEEDED]),
        "",
        "[parameters]",
        # Every route that reads a connection reads the seeded one (the
        # hooks send destructive calls elsewhere).
        '"header.x-connection-id" = %s' % toml_str(SEEDED),
        '"path.mediaId" = { dictionary = "media-ids", probability = 0.5 }',
        '"path.listId" = { dictionary = "list-ids", probability = 0.5 }',
        '"path.label" = { dictionary = "labels", probability = 0.5 }',
        '"path.token" = { dictionary = "tokens", probability = 0.8 }',
        '"path.connectionId" = { dictionary = "connections", probability = 0.5 }',
        "",
    ]
    if not with_upstream:
        # With no upstream configured, the routes that need one answer 502
        # by design (the document says so; status_code_conformance checks
        # that it does).
        lines += [
            "[checks.not_a_server_error]",
            'expected-statuses = ["2xx", "3xx", "4xx", "502"]',
            "",
        ]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def count(junit_path):
    """Operations passed and failed, from the JUnit report."""
    root = ET.parse(junit_path).getroot()
    passed = failed = 0
    for case in root.iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        elif case.find("skipped") is None:
            passed += 1
    return passed, failed


def run_once(binary, with_upstream, work):
    """One server, seeded, and one schemathesis run; answers (passed, failed)."""
    st = os.path.join(os.path.dirname(sys.executable), "st")
    max_examples = os.environ.get("VAULTPLUS_ST_MAX_EXAMPLES", "100")
    seed_value = os.environ.get("VAULTPLUS_ST_SEED", "20261202")
    reports = os.path.join(os.environ.get("VAULTPLUS_ST_REPORT_DIR") or os.path.join(work, "reports"),
                           "upstream" if with_upstream else "no-upstream")
    procs = []
    try:
        upstream = []
        if with_upstream:
            demo = Process([binary, "demo-upstream", "--listen", "127.0.0.1:0"],
                           os.path.join(work, "demo.log"))
            procs.append(demo)
            demo_url = demo.wait_line("demo-upstream listening on ")[0].split()[-1]
            upstream = ["--upstream-url", demo_url, "--upstream-key", "demo-key"]
        data_dir = os.path.join(work, "data")
        server = Process(
            [binary, "serve", "--data-dir", data_dir, "--listen", "127.0.0.1:0"] + upstream + [
             "--retry-base-ms", "20", "--retry-cap-secs", "1",
             # The run is one client sending thousands of requests: the API
             # key limit would answer most of them 429 (declared, and so no
             # finding, but nothing else would be tested).
             "--rate-limit-per-minute", "0", "--rate-limit-burst", "0"],
            os.path.join(work, "server.log"))
        procs.append(server)
        key = server.wait_line("Created organization")[1].strip()
        base = server.wait_line("vaultplus listening on ")[0].split()[3]
        media_ids, tokens, defaults = seed(binary, data_dir, base, key, with_upstream)
        config = os.path.join(work, "schemathesis.toml")
        write_config(config, key, media_ids, tokens, with_upstream)
        os.makedirs(reports, exist_ok=True)
        junit = os.path.join(reports, "junit.xml")
        env = dict(
            os.environ,
            PYTHONPATH=HERE,
            SCHEMATHESIS_HOOKS="hooks",
            VAULTPLUS_ST_BASE=base,
            VAULTPLUS_ST_KEY=key,
            VAULTPLUS_ST_CONNECTION=SEEDED,
            VAULTPLUS_ST_SCRATCH=SCRATCH,
            VAULTPLUS_ST_DEFAULTS=json.dumps(defaults),
        )
        args = [
            st, "--config-file", config, "run", base + "/openapi.json",
            "--checks", ",".join(CHECKS),
            "--seed", seed_value,
            "--max-examples", max_examples,
            "--workers", "1",
            # Negative cases for the upload (raw bytes, strict path
            # patterns) are often discarded while generated; that slows
            # generation and checks nothing, so it must not end the run.
            "--suppress-health-check", "filter_too_much",
            "--generation-database", "none",
            "--no-color",
            "--report", "junit", "--report-junit-path", junit,
        ] + shlex.split(os.environ.get("VAULTPLUS_ST_EXTRA", ""))
        print("==> %s upstream: $ %s ..." % ("with" if with_upstream else "no",
                                             " ".join(args[:5])), flush=True)
        rc = subprocess.run(args, env=env, cwd=work).returncode
        if not os.path.exists(junit):
            print("schemathesis wrote no report (exit %d)" % rc)
            return 0, 1
        passed, failed = count(junit)
        if rc != 0 and failed == 0:
            failed = 1  # errors outside any operation (schema, hooks)
        return passed, failed
    finally:
        for p in reversed(procs):
            p.stop()


def main():
    binary = os.path.abspath(sys.argv[1])
    only = os.environ.get("VAULTPLUS_ST_UPSTREAM")  # "yes", "no", or both
    modes = [m for m in (True, False) if only is None or only == ("yes" if m else "no")]
    passed = failed = 0
    for with_upstream in modes:
        work = tempfile.mkdtemp(prefix="vaultplus-st-")
        try:
            p, f = run_once(binary, with_upstream, work)
            passed, failed = passed + p, failed + f
        finally:
            if os.environ.get("VAULTPLUS_ST_KEEP"):
                print("kept " + work)
            else:
                shutil.rmtree(work, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
