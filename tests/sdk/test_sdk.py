"""Compatibility of the official Python SDK (`onlyfans-sdk` 3.1.0) with vaultplus.

The SDK is used unchanged, pointed at a vaultplus server by `base_url`. It
calls the older Vault+ paths (docs/reference/vaultplus-api.md section 7): `/v2/vault-plus/{id}`,
`/batch`, `/list`, `/purge`, `/store/status`, `/store/stats`, and the Account
settings routes. Expected values come from docs/reference/vaultplus-api.md
("API"), docs/reference/DECISIONS.md ("DECISIONS") and the purge contract
docs/reference/000_ab7af7969c1ee0d9.txt ("PURGE").

The server binary is taken from $VAULTPLUS_BIN. One server is started for the
module on a temporary data dir and port 0; each test uses its own connections.
"""

import atexit
import json
import os
import shutil
import subprocess
import socket
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

from onlyfans_sdk import account, vault_media, vault_stats
from onlyfans_sdk._client import OFAuthClient, OFAuthError

DAY_MS = 86_400_000

# The ten fields of every variant object (API 3.1).
VARIANT_FIELDS = {
    "status", "quality", "sizeBytes", "contentType", "accessCount",
    "createdAt", "expiresAt", "storedAt", "lastAccessedAt", "url",
}

# Org defaultSettings on a new organization (DECISIONS "Settings defaults").
DEFAULT_SETTINGS = {
    "autoCacheVault": True,
    "autoCacheMessages": False,
    "autoCachePosts": False,
    "autoCacheStories": False,
    "minAccessCountVault": 1,
    "minAccessCountMessages": 1,
    "minAccessCountPosts": 1,
    "minAccessCountStories": 1,
    "cacheImages": True,
    "cacheVideos": True,
    "cacheAudio": True,
    "imageQualities": ["thumb", "full"],
    "videoQualities": ["preview", "source"],
    "retentionDays": 0,
    "accessExpiryDays": 0,
    "presignedUrlTtlSeconds": 3600,
    "storageLimitBytes": 0,
    "storageLimitPurgeStrategy": "purge_oldest",
}


def blob(seed, n):
    """Deterministic pseudo-random bytes."""
    return bytes(((i * 31) + seed) & 0xFF for i in range(n))


class Server:
    """The vaultplus binary on a temp data dir, port 0."""

    def __init__(self, binary, extra=()):
        self.binary = binary
        self.extra = list(extra)
        self.dir = tempfile.mkdtemp(prefix="vaultplus-sdk-")
        self.data_dir = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "server.log")
        self.proc = None
        self.base = None
        self.key = None

    def start(self):
        env = dict(os.environ, RUST_LOG="warn")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--data-dir", self.data_dir, "--listen", "127.0.0.1:0",
             *self.extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._log, env=env,
        )
        ready = threading.Event()
        lines = []

        def reader():
            want_key = False
            for raw in self.proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                lines.append(line)
                if line.startswith("Created organization"):
                    want_key = True
                elif want_key and self.key is None:
                    self.key = line.strip()
                    want_key = False
                elif line.startswith("vaultplus listening on "):
                    self.base = line[len("vaultplus listening on "):].split()[0].rstrip("/")
                    ready.set()
            ready.set()  # stdout closed: the process ended

        threading.Thread(target=reader, daemon=True).start()
        if not ready.wait(30) or self.base is None:
            self.stop()
            raise RuntimeError("server did not print its address; stdout=%r log=%s"
                               % (lines, self.log_text()))
        if not (self.key or "").startswith("vpk_"):
            self.stop()
            raise RuntimeError("no vpk_ key after 'Created organization'; stdout=%r" % lines)
        for _ in range(200):
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("server never answered /healthz 200; log=%s" % self.log_text())

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-4000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
            if self.proc.stdout:
                self.proc.stdout.close()
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None
        self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def cli(self, *args):
        out = subprocess.run([self.binary, *args], stdin=subprocess.DEVNULL,
                             capture_output=True, timeout=60)
        if out.returncode != 0:
            raise AssertionError("vaultplus %s failed: %s" % (" ".join(args),
                                                              out.stderr.decode(errors="replace")))
        return out.stdout.decode()

    def add_connection(self, conn, *flags):
        self.cli("connections", "add", "--data-dir", self.data_dir, "--org", "default", *flags, conn)

    def put(self, conn, media_id, label, content_type, data, duration=None, key=None):
        """PUT /v2/vault-plus/media/{id}/variants/{label}; returns (status, json)."""
        req = urllib.request.Request(
            "%s/v2/vault-plus/media/%s/variants/%s" % (self.base, media_id, label),
            data=data, method="PUT",
            headers={"apiKey": key or self.key, "x-connection-id": conn,
                     "Content-Type": content_type})
        if duration is not None:
            req.add_header("x-media-duration", str(duration))
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            body = e.read()
            try:
                return e.code, json.loads(body)
            except ValueError:
                return e.code, body


SERVER = None


def module_server(extra=()):
    """The server a test module shares: $VAULTPLUS_BIN on a temp data dir,
    cleaned up at exit whatever happens."""
    binary = os.environ.get("VAULTPLUS_BIN")
    if not binary:
        raise RuntimeError("set VAULTPLUS_BIN to the vaultplus binary")
    server = Server(os.path.abspath(binary), extra=extra)
    atexit.register(server.cleanup)
    server.start()
    return server


def setUpModule():
    global SERVER
    SERVER = module_server()


def tearDownModule():
    if SERVER is not None:
        SERVER.cleanup()


def fetch(url):
    """GET a variant URL with no key; returns (status, bytes, headers)."""
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers


def _read_response(sock):
    """Reads one HTTP/1.1 response with Content-Length; returns its head or
    None when the server closed the connection first."""
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            data += chunk
    except (ConnectionResetError, BrokenPipeError, socket.timeout):
        return None
    head, rest = data.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return head.decode("latin-1")


def raw_two_requests(host, port, method, path, headers, body, gap):
    """Sends `method path` with its body `gap` seconds after the headers,
    reads the answer, then sends GET /healthz on the same connection.
    Returns (first response head, second response head or None if the
    server had closed the connection)."""
    sock = socket.create_connection((host, port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        lines = ["%s %s HTTP/1.1" % (method, path), "Host: %s:%d" % (host, port)]
        lines += ["%s: %s" % kv for kv in headers.items()]
        lines += ["Content-Type: application/json", "Content-Length: %d" % len(body), "", ""]
        sock.sendall("\r\n".join(lines).encode())
        time.sleep(gap)
        try:
            sock.sendall(body)
        except OSError:
            pass
        first = _read_response(sock)
        if first is None:
            raise AssertionError("no response to %s %s" % (method, path))
        time.sleep(0.1)
        try:
            sock.sendall(("GET /healthz HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (host, port)).encode())
        except OSError:
            return first, None
        return first, _read_response(sock)
    finally:
        sock.close()


class SdkCompat(unittest.TestCase):
    _conn_seq = 0

    def setUp(self):
        self.s = SERVER
        self.client = OFAuthClient(api_key=self.s.key, base_url=self.s.base, timeout=30.0)

    def tearDown(self):
        self.client.close()

    # helpers ---------------------------------------------------------------

    def new_conn(self, name):
        SdkCompat._conn_seq += 1
        conn = "conn_sdk%s%02d" % (name, SdkCompat._conn_seq)
        self.s.add_connection(conn)
        return conn

    def put(self, conn, media_id, label, content_type, data, **kw):
        status, body = self.s.put(conn, media_id, label, content_type, data, **kw)
        self.assertEqual(status, 201, "upload %s/%s answered %s: %r" % (media_id, label, status, body))
        self.assertEqual(body["status"], "stored")
        self.assertEqual(body["sizeBytes"], len(data))
        return body

    def assertSdkError(self, expected, fn, /, *args, message=None, **kwargs):
        """`fn(*args, **kwargs)` raises OFAuthError with HTTP `expected`."""
        with self.assertRaises(OFAuthError) as cm:
            fn(*args, **kwargs)
        err = cm.exception
        self.assertEqual(err.status, expected,
                         "expected HTTP %s, got %s (%s)" % (expected, err.status, err))
        self.assertTrue(str(err), "OFAuthError has an empty message")
        self.assertNotEqual(str(err), "HTTP %s" % expected,
                            "error body has no `message` field (the SDK fell back to 'HTTP <status>')")
        if message is not None:
            self.assertEqual(str(err), message)
        return err

    def assertVariant(self, v, label, content_type, data):
        self.assertTrue(VARIANT_FIELDS <= set(v), "variant lacks %s" % (VARIANT_FIELDS - set(v)))
        self.assertEqual(v["status"], "stored")
        self.assertEqual(v["quality"], label)
        self.assertEqual(v["sizeBytes"], len(data))
        self.assertEqual(v["contentType"], content_type)
        for f in ("sizeBytes", "accessCount", "createdAt", "expiresAt", "storedAt", "lastAccessedAt"):
            self.assertIsInstance(v[f], int, "%s must be a JSON integer: %r" % (f, v[f]))
        self.assertIsInstance(v["url"], str)
        self.assertTrue(v["url"].startswith(("http://", "https://")), v["url"])

    # get / delete (older paths /v2/vault-plus/{mediaId}) -------------------

    def test_get_old_path(self):
        conn = self.new_conn("get")
        full, thumb = blob(1, 5000), blob(2, 700)
        self.put(conn, "1001", "full", "image/jpeg", full)
        self.put(conn, "1001", "thumb", "image/jpeg", thumb)

        item = vault_media.get_v2_vault_plus(self.client, connection_id=conn, media_id="1001")
        self.assertEqual(item["id"], "1001")
        self.assertEqual(item["type"], "image")
        self.assertIsNone(item["duration"])  # API 3.2: null for images
        self.assertEqual(set(item["media"]), {"full", "thumb"})
        self.assertVariant(item["media"]["full"], "full", "image/jpeg", full)
        self.assertVariant(item["media"]["thumb"], "thumb", "image/jpeg", thumb)
        v = item["media"]["full"]
        # DECISIONS: lastAccessedAt == createdAt until first access; with no
        # retention/access-expiry policy expiresAt == createdAt + 365 days.
        self.assertEqual(v["accessCount"], 0)
        self.assertEqual(v["lastAccessedAt"], v["createdAt"])
        self.assertEqual(v["expiresAt"], v["createdAt"] + 365 * DAY_MS)
        self.assertGreaterEqual(v["storedAt"], v["createdAt"])

        # Misses: 404 "Media not found" (DECISIONS); another connection's
        # media is not visible.
        self.assertSdkError(404, vault_media.get_v2_vault_plus, self.client,
                            connection_id=conn, media_id="1002", message="Media not found")
        other = self.new_conn("getother")
        self.assertSdkError(404, vault_media.get_v2_vault_plus, self.client,
                            connection_id=other, media_id="1001")

    def test_video_type_and_duration(self):
        conn = self.new_conn("video")
        data = blob(3, 3000)
        self.put(conn, "1101", "source", "video/mp4", data, duration=12.5)
        item = vault_media.get_v2_vault_plus(self.client, connection_id=conn, media_id="1101")
        self.assertEqual(item["type"], "video")
        self.assertEqual(item["duration"], 12.5)
        self.assertVariant(item["media"]["source"], "source", "video/mp4", data)

    def test_variant_url_serves_bytes_without_key(self):
        conn = self.new_conn("url")
        full = blob(4, 20000)
        self.put(conn, "1201", "full", "image/png", full)
        item = vault_media.get_v2_vault_plus(self.client, connection_id=conn, media_id="1201")
        v = item["media"]["full"]
        status, body, headers = fetch(v["url"])
        self.assertEqual(status, 200)
        self.assertEqual(body, full)
        self.assertEqual(headers.get("Content-Type", "").split(";")[0].strip(), "image/png")
        # DECISIONS: accessCount counts successful GETs of the bytes. The
        # count may be recorded in the background, so allow a few seconds.
        deadline = time.monotonic() + 5
        while True:
            again = vault_media.get_v2_vault_plus(self.client, connection_id=conn, media_id="1201")
            if again["media"]["full"]["accessCount"] >= 1 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(again["media"]["full"]["accessCount"], 1)
        self.assertGreaterEqual(again["media"]["full"]["lastAccessedAt"], v["lastAccessedAt"])

    def test_delete_old_path(self):
        conn = self.new_conn("del")
        full, thumb = blob(5, 4000), blob(6, 300)
        self.put(conn, "1301", "full", "image/jpeg", full)
        self.put(conn, "1301", "thumb", "image/jpeg", thumb)
        self.put(conn, "1302", "full", "image/jpeg", blob(7, 100))
        url = vault_media.get_v2_vault_plus(self.client, connection_id=conn,
                                            media_id="1301")["media"]["full"]["url"]

        res = vault_media.delete_v2_vault_plus(self.client, connection_id=conn, media_id="1301")
        self.assertEqual(res, {"success": True, "mediaId": "1301",
                               "freedBytes": len(full) + len(thumb)})
        self.assertSdkError(404, vault_media.get_v2_vault_plus, self.client,
                            connection_id=conn, media_id="1301")
        status, _, _ = fetch(url)
        self.assertGreaterEqual(status, 400, "a deleted variant's URL still serves")
        # The other media item is untouched.
        vault_media.get_v2_vault_plus(self.client, connection_id=conn, media_id="1302")

        # Miss (and repeat delete): 200 success:false (API 4.4, DECISIONS).
        res = vault_media.delete_v2_vault_plus(self.client, connection_id=conn, media_id="1301")
        self.assertEqual(res, {"success": False, "mediaId": "1301", "freedBytes": 0})
        res = vault_media.delete_v2_vault_plus(self.client, connection_id=conn, media_id="999999")
        self.assertEqual(res, {"success": False, "mediaId": "999999", "freedBytes": 0})

        st = vault_stats.list_v2_vault_plus_store_status(self.client, connection_id=conn)
        self.assertEqual((st["storedCount"], st["totalSizeBytes"]), (1, 100))

    # batch (older path /v2/vault-plus/batch) -------------------------------

    def test_batch(self):
        conn = self.new_conn("batch")
        for i, mid in enumerate(("1401", "1402", "1403")):
            self.put(conn, mid, "full", "image/jpeg", blob(10 + i, 200 + i))
        self.put(conn, "1402", "thumb", "image/jpeg", blob(20, 50))

        res = vault_media.create_v2_vault_plus_batch(
            self.client, connection_id=conn,
            body={"mediaIds": ["1403", "777", "1401", "1403", "1402", "1401"]})
        self.assertEqual(set(res), {"items"})
        # Request order, duplicates folded, misses left out (API 4.5, DECISIONS).
        self.assertEqual([i["id"] for i in res["items"]], ["1403", "1401", "1402"])
        by_id = {i["id"]: i for i in res["items"]}
        self.assertEqual(set(by_id["1402"]["media"]), {"full", "thumb"})
        self.assertVariant(by_id["1403"]["media"]["full"], "full", "image/jpeg", blob(12, 202))
        self.assertEqual(by_id["1401"]["type"], "image")

        res = vault_media.create_v2_vault_plus_batch(
            self.client, connection_id=conn, body={"mediaIds": ["5", "6"]})
        self.assertEqual(res, {"items": []})

        # 1-100 string IDs, else 400 (DECISIONS).
        for bad in ([str(n) for n in range(1, 102)], [], [1401], ["abc"]):
            self.assertSdkError(400, vault_media.create_v2_vault_plus_batch, self.client,
                                connection_id=conn, body={"mediaIds": bad})
        full100 = vault_media.create_v2_vault_plus_batch(
            self.client, connection_id=conn, body={"mediaIds": [str(n) for n in range(1, 101)]})
        self.assertEqual(full100, {"items": []})

    # list (older path /v2/vault-plus/list) ----------------------------------

    def test_list_filters_and_paging(self):
        conn = self.new_conn("list")
        uploads = [("1501", "image/jpeg"), ("1502", "image/png"), ("1503", "image/jpeg"),
                   ("1504", "video/mp4"), ("1505", "image/png")]
        for i, (mid, ct) in enumerate(uploads):
            self.put(conn, mid, "full", ct, blob(30 + i, 100 + i))
        self.put(conn, "1503", "thumb", "image/png", blob(40, 10))

        res = vault_media.list_v2_vault_plus_lists(self.client, connection_id=conn)
        ids = [i["id"] for i in res["items"]]
        # Default sort createdAt_desc, ties by media ID in the same direction.
        self.assertEqual(ids, ["1505", "1504", "1503", "1502", "1501"])
        self.assertNotIn("nextCursor", res)  # omitted on the last page
        for item in res["items"]:
            for label, v in item["media"].items():
                self.assertTrue(VARIANT_FIELDS <= set(v))
                self.assertEqual(v["quality"], label)

        # status filter
        res = vault_media.list_v2_vault_plus_lists(self.client, connection_id=conn, status="stored")
        self.assertEqual([i["id"] for i in res["items"]], ids)
        for st in ("pending", "edge_only", "storing", "removed"):
            res = vault_media.list_v2_vault_plus_lists(self.client, connection_id=conn, status=st)
            self.assertEqual(res["items"], [], st)

        # contentType filter: item matches when any variant matches, and is
        # returned with all its variants (DECISIONS).
        res = vault_media.list_v2_vault_plus_lists(self.client, connection_id=conn,
                                                   content_type="image/png")
        self.assertEqual([i["id"] for i in res["items"]], ["1505", "1503", "1502"])
        self.assertEqual(set(res["items"][1]["media"]), {"full", "thumb"})
        res = vault_media.list_v2_vault_plus_lists(self.client, connection_id=conn,
                                                   content_type="video/mp4")
        self.assertEqual([i["id"] for i in res["items"]], ["1504"])
        self.assertEqual(res["items"][0]["type"], "video")
        res = vault_media.list_v2_vault_plus_lists(self.client, connection_id=conn,
                                                   status="stored", content_type="image/jpeg")
        self.assertEqual([i["id"] for i in res["items"]], ["1503", "1501"])

        # limit + cursor paging
        seen, cursor, pages = [], None, 0
        while True:
            page = vault_media.list_v2_vault_plus_lists(self.client, connection_id=conn,
                                                        limit=2, cursor=cursor)
            pages += 1
            self.assertLessEqual(len(page["items"]), 2)
            seen += [i["id"] for i in page["items"]]
            cursor = page.get("nextCursor")
            if cursor is None:
                break
            self.assertIsInstance(cursor, str)
            self.assertLess(pages, 10, "paging does not end")
        self.assertEqual(seen, ids)
        self.assertEqual(pages, 3)

        # paging combined with a filter
        page = vault_media.list_v2_vault_plus_lists(self.client, connection_id=conn,
                                                    content_type="image/png", limit=2)
        self.assertEqual([i["id"] for i in page["items"]], ["1505", "1503"])
        rest = vault_media.list_v2_vault_plus_lists(self.client, connection_id=conn,
                                                    content_type="image/png", limit=2,
                                                    cursor=page["nextCursor"])
        self.assertEqual([i["id"] for i in rest["items"]], ["1502"])
        self.assertNotIn("nextCursor", rest)

        # Malformed values are 400 (DECISIONS): a cursor from another query,
        # a garbage cursor, an unknown status, limit out of range.
        self.assertSdkError(400, vault_media.list_v2_vault_plus_lists, self.client,
                            connection_id=conn, limit=2, cursor=page["nextCursor"])
        self.assertSdkError(400, vault_media.list_v2_vault_plus_lists, self.client,
                            connection_id=conn, cursor="not-a-cursor")
        self.assertSdkError(400, vault_media.list_v2_vault_plus_lists, self.client,
                            connection_id=conn, status="cached")
        for lim in (0, 101):
            self.assertSdkError(400, vault_media.list_v2_vault_plus_lists, self.client,
                                connection_id=conn, limit=lim)

        # Another connection sees nothing of this one.
        other = self.new_conn("listother")
        self.assertEqual(vault_media.list_v2_vault_plus_lists(self.client, connection_id=other),
                         {"items": []})

    # purge (older path /v2/vault-plus/purge) --------------------------------

    def test_purge(self):
        conn = self.new_conn("purge")
        keep = self.new_conn("purgekeep")
        a_full, a_thumb, b_full = blob(50, 3000), blob(51, 400), blob(52, 1234)
        self.put(conn, "1601", "full", "image/jpeg", a_full)
        self.put(conn, "1601", "thumb", "image/jpeg", a_thumb)
        self.put(conn, "1602", "full", "video/mp4", b_full)
        self.put(keep, "1601", "full", "image/jpeg", blob(53, 99))
        url = vault_media.get_v2_vault_plus(self.client, connection_id=conn,
                                            media_id="1601")["media"]["full"]["url"]

        res = vault_media.delete_v2_vault_plus_purge(self.client, connection_id=conn)
        # PURGE contract: exactly {success, purgedCount, freedBytes}.
        self.assertEqual(res, {"success": True, "purgedCount": 3,
                               "freedBytes": len(a_full) + len(a_thumb) + len(b_full)})

        # Nothing of it is visible or servable afterwards (DECISIONS).
        self.assertEqual(vault_media.list_v2_vault_plus_lists(self.client, connection_id=conn),
                         {"items": []})
        self.assertSdkError(404, vault_media.get_v2_vault_plus, self.client,
                            connection_id=conn, media_id="1601")
        status, _, _ = fetch(url)
        self.assertGreaterEqual(status, 400, "a purged variant's URL still serves")
        st = vault_stats.list_v2_vault_plus_store_status(self.client, connection_id=conn)
        self.assertEqual(st, {"connectionId": conn, "totalMedia": 0, "storedCount": 0,
                              "pendingCount": 0, "totalSizeBytes": 0})

        # Second purge: zeros (PURGE, DECISIONS).
        res = vault_media.delete_v2_vault_plus_purge(self.client, connection_id=conn)
        self.assertEqual(res, {"success": True, "purgedCount": 0, "freedBytes": 0})

        # Other connections keep their media; the purged one stays enabled
        # and takes new media.
        kept = vault_media.get_v2_vault_plus(self.client, connection_id=keep, media_id="1601")
        self.assertEqual(kept["media"]["full"]["sizeBytes"], 99)
        self.put(conn, "1603", "full", "image/jpeg", blob(54, 10))
        self.assertTrue(account.get_connection_settings(self.client, conn)["vaultPlus"]["enabled"])

        # Purge errors (PURGE): missing x-connection-id 400, bad key 401;
        # unknown connection 401 SESSION_NOT_PROVIDED (DECISIONS).
        self.assertSdkError(400, vault_media.delete_v2_vault_plus_purge, self.client,
                            connection_id="", message="x-connection-id header is required")
        self.assertSdkError(401, vault_media.delete_v2_vault_plus_purge, self.client,
                            connection_id="conn_sdk_nosuchconnection", message="Connection not found")

    # store status / stats ---------------------------------------------------

    def test_store_status(self):
        conn = self.new_conn("status")
        st = vault_stats.list_v2_vault_plus_store_status(self.client, connection_id=conn)
        self.assertEqual(st, {"connectionId": conn, "totalMedia": 0, "storedCount": 0,
                              "pendingCount": 0, "totalSizeBytes": 0})
        sizes = [1000, 200, 3333]
        self.put(conn, "1701", "full", "image/jpeg", blob(60, sizes[0]))
        self.put(conn, "1701", "thumb", "image/jpeg", blob(61, sizes[1]))
        self.put(conn, "1702", "full", "audio/mpeg", blob(62, sizes[2]))
        st = vault_stats.list_v2_vault_plus_store_status(self.client, connection_id=conn)
        # Old SDK shape {connectionId, totalMedia, storedCount, pendingCount,
        # totalSizeBytes} (API 7); pendingCount = total - stored (API 4.10).
        self.assertEqual(st, {"connectionId": conn, "totalMedia": 3, "storedCount": 3,
                              "pendingCount": 0, "totalSizeBytes": sum(sizes)})
        self.assertEqual(st["totalMedia"], st["storedCount"] + st["pendingCount"])

    def test_store_stats(self):
        c1 = self.new_conn("stats")
        c2 = self.new_conn("stats")
        off = "conn_sdkstatsoff%02d" % SdkCompat._conn_seq
        self.s.add_connection(off, "--disabled")
        self.put(c1, "1801", "full", "image/jpeg", blob(70, 500))
        self.put(c2, "1801", "full", "image/jpeg", blob(71, 600))
        self.put(c2, "1802", "thumb", "image/jpeg", blob(72, 70))

        stats = vault_stats.list_v2_vault_plus_store_stats(self.client)
        self.assertEqual(set(stats), {"totalConnections", "connectionsWithVaultPlus",
                                      "totalStorageBytes", "totalMediaCount"})
        for v in stats.values():
            self.assertIsInstance(v, int)

        # Cross-check against every connection of the org, through the SDK.
        conns = list(account.iter_connections(self.client, page_size=3))
        ids = [c["id"] for c in conns]
        self.assertEqual(len(ids), len(set(ids)))
        self.assertTrue({c1, c2, off} <= set(ids))
        enabled, size, count = 0, 0, 0
        for cid in ids:
            settings = account.get_connection_settings(self.client, cid)
            if settings["vaultPlus"]["enabled"]:
                enabled += 1
            st = vault_stats.list_v2_vault_plus_store_status(self.client, connection_id=cid)
            size += st["totalSizeBytes"]
            count += st["storedCount"] + st["pendingCount"]
        self.assertEqual(stats, {"totalConnections": len(ids), "connectionsWithVaultPlus": enabled,
                                 "totalStorageBytes": size, "totalMediaCount": count})
        self.assertLess(enabled, len(ids))  # the disabled one is not counted

    # account: connection settings, org settings, connections ---------------

    def test_connection_settings(self):
        conn = self.new_conn("settings")
        s = account.get_connection_settings(self.client, conn)
        self.assertEqual(s["connectionId"], conn)
        vp = s["vaultPlus"]
        self.assertIs(vp["enabled"], True)
        self.assertIn("settingsOverrides", vp)
        self.assertFalse(vp["settingsOverrides"])  # null (or {}) when nothing is overridden
        self.assertEqual(set(vp["stats"]), {"vaultPlusEnabled", "totalStorageBytes",
                                            "storageLimitBytes", "mediaCount", "storedCount",
                                            "storageUsagePercent"})
        self.assertIs(vp["stats"]["vaultPlusEnabled"], True)
        self.assertEqual(vp["stats"]["totalStorageBytes"], 0)
        self.assertEqual(vp["stats"]["storedCount"], 0)

        full, thumb = blob(80, 2500), blob(81, 250)
        self.put(conn, "1901", "full", "image/jpeg", full)
        self.put(conn, "1901", "thumb", "image/jpeg", thumb)
        stats = account.get_connection_settings(self.client, conn)["vaultPlus"]["stats"]
        self.assertEqual(stats["totalStorageBytes"], len(full) + len(thumb))
        self.assertEqual(stats["storedCount"], 2)

        # Override a setting; it shows in settingsOverrides and takes effect
        # (DECISIONS: expiresAt = storedAt + retentionDays).
        res = account.update_connection_settings(
            self.client, conn, {"vaultPlus": {"settings": {"retentionDays": 30}}})
        self.assertEqual(res["settings"]["connectionId"], conn)
        self.assertIs(res["settings"]["vaultPlus"]["enabled"], True)
        self.assertEqual(res["settings"]["vaultPlus"]["settingsOverrides"]["retentionDays"], 30)
        got = account.get_connection_settings(self.client, conn)
        self.assertEqual(got["vaultPlus"]["settingsOverrides"]["retentionDays"], 30)
        v = vault_media.get_v2_vault_plus(self.client, connection_id=conn,
                                          media_id="1901")["media"]["full"]
        self.assertEqual(v["expiresAt"], v["storedAt"] + 30 * DAY_MS)

        # settings: null resets to the org defaults (SDK docstring).
        res = account.update_connection_settings(self.client, conn,
                                                 {"vaultPlus": {"settings": None}})
        self.assertFalse(res["settings"]["vaultPlus"]["settingsOverrides"])
        v = vault_media.get_v2_vault_plus(self.client, connection_id=conn,
                                          media_id="1901")["media"]["full"]
        self.assertEqual(v["expiresAt"], v["createdAt"] + 365 * DAY_MS)

        # Disable: purges and answers purgeResult (DECISIONS "Vault+ disabled").
        res = account.update_connection_settings(self.client, conn,
                                                 {"vaultPlus": {"enabled": False}})
        self.assertIs(res["settings"]["vaultPlus"]["enabled"], False)
        self.assertEqual(res["purgeResult"], {"purgedCount": 2,
                                              "freedBytes": len(full) + len(thumb)})
        s = account.get_connection_settings(self.client, conn)
        self.assertIs(s["vaultPlus"]["enabled"], False)
        self.assertIs(s["vaultPlus"]["stats"]["vaultPlusEnabled"], False)
        self.assertEqual(s["vaultPlus"]["stats"]["totalStorageBytes"], 0)
        # Reads answer empty; writes 403.
        self.assertEqual(vault_media.list_v2_vault_plus_lists(self.client, connection_id=conn),
                         {"items": []})
        self.assertEqual(vault_media.create_v2_vault_plus_batch(
            self.client, connection_id=conn, body={"mediaIds": ["1901"]}), {"items": []})
        st = vault_stats.list_v2_vault_plus_store_status(self.client, connection_id=conn)
        self.assertEqual((st["storedCount"], st["totalSizeBytes"]), (0, 0))
        status, body = self.s.put(conn, "1902", "full", "image/jpeg", blob(82, 10))
        self.assertEqual(status, 403, body)
        self.assertEqual(body.get("type"), "FORBIDDEN")

        # Enable again; uploads work.
        res = account.update_connection_settings(self.client, conn,
                                                 {"vaultPlus": {"enabled": True}})
        self.assertIs(res["settings"]["vaultPlus"]["enabled"], True)
        self.assertFalse((res.get("purgeResult") or {}).get("purgedCount"))
        self.put(conn, "1902", "full", "image/jpeg", blob(82, 10))

        # Unknown connection in the path: 404 (DECISIONS).
        self.assertSdkError(404, account.get_connection_settings, self.client,
                            "conn_sdk_nosuchconnection")
        self.assertSdkError(404, account.update_connection_settings, self.client,
                            "conn_sdk_nosuchconnection", {"vaultPlus": {"enabled": True}})

    def test_org_settings(self):
        s = account.get_org_settings(self.client)
        self.assertEqual(set(s), {"vaultPlus"})
        self.assertIs(s["vaultPlus"]["autoEnableForNewConnections"], True)
        self.assertEqual(s["vaultPlus"]["defaultSettings"], DEFAULT_SETTINGS)

    def test_list_connections(self):
        mine = [self.new_conn("lc") for _ in range(3)]
        res = account.list_connections(self.client)
        self.assertIsInstance(res["list"], list)
        self.assertIsInstance(res["hasMore"], bool)
        ids = [c["id"] for c in res["list"]]
        self.assertTrue(set(mine) <= set(ids), (mine, ids))
        for c in res["list"]:
            self.assertIsInstance(c["id"], str)
            self.assertIn(c.get("status"), ("active", "expired", "awaiting_2fa"))

        first = account.list_connections(self.client, limit=1)
        self.assertEqual(len(first["list"]), 1)
        self.assertIs(first["hasMore"], True)
        second = account.list_connections(self.client, limit=1, offset=1)
        self.assertEqual(len(second["list"]), 1)
        self.assertNotEqual(first["list"][0]["id"], second["list"][0]["id"])
        everything = [c["id"] for c in account.iter_connections(self.client, page_size=2)]
        self.assertEqual(len(everything), len(set(everything)))
        self.assertTrue(set(mine) <= set(everything))

    # auth ------------------------------------------------------------------

    def test_invalid_key(self):
        conn = self.new_conn("auth")
        self.put(conn, "2001", "full", "image/jpeg", blob(90, 10))
        calls = [
            (vault_media.get_v2_vault_plus, dict(connection_id=conn, media_id="2001")),
            (vault_media.delete_v2_vault_plus, dict(connection_id=conn, media_id="2001")),
            (vault_media.create_v2_vault_plus_batch,
             dict(connection_id=conn, body={"mediaIds": ["2001"]})),
            (vault_media.list_v2_vault_plus_lists, dict(connection_id=conn)),
            (vault_media.delete_v2_vault_plus_purge, dict(connection_id=conn)),
            (vault_stats.list_v2_vault_plus_store_status, dict(connection_id=conn)),
            (vault_stats.list_v2_vault_plus_store_stats, {}),
            (account.get_connection_settings, dict(connection_id=conn)),
            (account.update_connection_settings,
             dict(connection_id=conn, body={"vaultPlus": {"enabled": False}})),
            (account.get_org_settings, {}),
            (account.list_connections, {}),
        ]
        for bad_key in ("vpk_definitely_not_a_key", "nonsense"):
            for fn, kwargs in calls:
                with self.subTest(key=bad_key, call=fn.__name__):
                    # A fresh client per call: this test is about the 401
                    # itself; reusing one client's connections after a
                    # rejected request is test_keepalive_after_rejected_body.
                    bad = OFAuthClient(api_key=bad_key, base_url=self.s.base)
                    try:
                        # PURGE / DECISIONS: 401 {"error":"Unauthorized"}, message = error.
                        self.assertSdkError(401, fn, bad, message="Unauthorized", **kwargs)
                    finally:
                        bad.close()
        # Nothing was changed by the rejected calls.
        item = vault_media.get_v2_vault_plus(self.client, connection_id=conn, media_id="2001")
        self.assertEqual(item["media"]["full"]["sizeBytes"], 10)
        self.assertTrue(account.get_connection_settings(self.client, conn)["vaultPlus"]["enabled"])

    def test_keepalive_after_rejected_body(self):
        # A rejected request that carries a body must not break the next one.
        # The SDK keeps one httpx client (keep-alive pool) and sends the JSON
        # body of PATCH/POST calls in a write after the headers. If the server
        # answers before reading that body and then closes the connection
        # without saying `Connection: close` (RFC 9112 section 9.6), the SDK's
        # next call may go out on the dead connection and fail with
        # httpx.RemoteProtocolError instead of an answer.
        conn = self.new_conn("keepalive")
        base = urllib.parse.urlsplit(self.s.base)
        host, port = base.hostname, base.port
        cases = [
            ("PATCH", "/v2/account/connections/%s/settings" % conn, {"apiKey": "nonsense"},
             {"vaultPlus": {"enabled": False}}),
            ("POST", "/v2/vault-plus/batch", {"apiKey": "nonsense", "x-connection-id": conn},
             {"mediaIds": ["1"]}),
            ("PATCH", "/v2/account/settings", {"apiKey": "nonsense"}, {"vaultPlus": {}}),
        ]
        # Deterministic: headers first, the body 50 ms later (as over a real
        # network), then a second request on the same connection.
        for method, path, headers, body in cases:
            with self.subTest(request="%s %s" % (method, path)):
                head, second = raw_two_requests(host, port, method, path, headers,
                                                json.dumps(body).encode(), gap=0.05)
                self.assertTrue(head.startswith("HTTP/1.1 401"), head)
                if second is None:
                    self.assertTrue("connection: close" in head.lower(),
                                  "server closed the keep-alive connection after answering %s %s "
                                  "(401, body unread) without sending `Connection: close`; the "
                                  "SDK's next call on that connection fails. Response head:\n%s"
                                  % (method, path, head))
                else:
                    self.assertTrue(second.startswith("HTTP/1.1 200"), second)

        # Through the SDK, as an application would: one client, rejected
        # calls with bodies, each followed at once by another call.
        bad = OFAuthClient(api_key="nonsense", base_url=self.s.base)
        transport_errors = []
        try:
            for i in range(150):
                for fn, kwargs in (
                        (account.update_connection_settings,
                         dict(connection_id=conn, body={"vaultPlus": {"enabled": False}})),
                        (vault_media.create_v2_vault_plus_batch,
                         dict(connection_id=conn, body={"mediaIds": ["1"]})),
                        (account.get_org_settings, {})):
                    try:
                        fn(bad, **kwargs)
                    except OFAuthError as e:
                        self.assertEqual(e.status, 401)
                    except Exception as e:  # httpx transport errors
                        transport_errors.append("%s after %d rounds: %s: %s"
                                                % (fn.__name__, i, type(e).__name__, e))
        finally:
            bad.close()
        self.assertEqual(transport_errors, [],
                         "%d of 450 SDK calls failed in transport instead of answering 401"
                         % len(transport_errors))

if __name__ == "__main__":
    unittest.main()
