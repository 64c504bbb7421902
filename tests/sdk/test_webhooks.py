"""vaultplus webhooks checked by the official verifiers.

Every delivery a real HTTP receiver gets from vaultplus must be accepted by
the official SDK's `onlyfans_sdk.webhooks.verify_webhook_payload` and by the
`svix` package's own `Webhook.verify`; a tampered body must be refused by
both. The receiver is down (500) for its first requests: every event still
arrives, answered 200 once, with the same svix-id on each of its attempts.
After a secret rotation either secret verifies (both signatures are sent).

One server is started for the module (port 0, temp data dir) with
`--allow-private-webhooks` (the receiver is on 127.0.0.1) and fast retries.
"""

import http.server
import json
import threading
import time
import unittest
import urllib.error
import urllib.request

from onlyfans_sdk.webhooks import WebhookVerificationError, verify_webhook_payload
from svix.webhooks import Webhook, WebhookVerificationError as SvixVerificationError

from test_sdk import blob, module_server

ALL = ["vault_plus.media.stored", "vault_plus.purge.completed", "vault_plus.connection.removed"]

SERVER = None


def setUpModule():
    global SERVER
    SERVER = module_server(extra=[
        "--allow-private-webhooks", "--webhook-retry-base-ms", "20",
        "--webhook-retry-cap-secs", "1"])


def tearDownModule():
    if SERVER is not None:
        SERVER.cleanup()


class Receiver:
    """A real HTTP server on 127.0.0.1: 500 to its first `failures`
    requests, then 200; keeps every request (headers, raw body, answer)."""

    def __init__(self, failures=0):
        self.failures = failures
        self.got = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver.lock:
                    status = 500 if len(receiver.got) < receiver.failures else 200
                    receiver.got.append((dict(self.headers.items()), body, status))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/hook" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def received(self):
        with self.lock:
            return list(self.got)

    def delivered(self):
        """svix-id -> bodies answered 200."""
        out = {}
        for headers, body, status in self.received():
            if status == 200:
                out.setdefault(lower(headers)["svix-id"], []).append(body)
        return out

    def wait_delivered(self, n):
        for _ in range(600):
            d = self.delivered()
            if len(d) >= n:
                return d
            time.sleep(0.05)
        raise AssertionError("%d events never arrived; got %r" % (n, self.received()))


def lower(headers):
    return {k.lower(): v for k, v in headers.items()}


def call(method, path, body=None, conn=None):
    headers = {"apiKey": SERVER.key}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if conn is not None:
        headers["x-connection-id"] = conn
    req = urllib.request.Request(SERVER.base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def sdk_accepts(body, headers, secret):
    event = verify_webhook_payload(body, lower(headers), secret)
    return event


def svix_accepts(body, headers, secret):
    """svix's verifier raises on a bad signature (this version answers None)."""
    Webhook(secret).verify(body, lower(headers))
    return True


class WebhookDeliveries(unittest.TestCase):
    def test_every_delivery_verifies_and_a_tampered_body_does_not(self):
        rx = Receiver(failures=3)
        self.addCleanup(rx.stop)
        status, created = call("POST", "/v2/vault-plus/webhooks",
                               {"url": rx.url, "events": ALL, "description": "sdk"})
        self.assertEqual(status, 201, created)
        secret = created["secret"]
        self.assertTrue(secret.startswith("whsec_"))

        SERVER.add_connection("conn_hook")
        status, _ = SERVER.put("conn_hook", "77", "full", "image/jpeg", blob(3, 2048))
        self.assertEqual(status, 201)
        self.assertEqual(call("DELETE", "/v2/vault-plus/media", conn="conn_hook")[0], 200)
        self.assertEqual(call("DELETE", "/v2/account/connections/conn_hook")[0], 200)

        # Four events: the purge is told twice, the second time once its
        # erasure receipt is bytes_gone.
        delivered = rx.wait_delivered(4)
        received = rx.received()
        self.assertEqual(sum(1 for r in received if r[2] == 500), 3)
        # Each event answered 200 once; every failed attempt resent one of
        # them with the same svix-id and body.
        self.assertTrue(all(len(b) == 1 for b in delivered.values()), delivered)
        types, gone = {}, None
        for headers, body, status in received:
            with self.subTest(svix_id=lower(headers)["svix-id"], status=status):
                self.assertEqual(delivered[lower(headers)["svix-id"]], [body])
                event = sdk_accepts(body, headers, secret)
                self.assertTrue(svix_accepts(body, headers, secret))
                self.assertIs(event["live"], True)
                if event["data"].get("bytesGone") is True:
                    gone = event["data"]
                else:
                    types[event["eventType"]] = event["data"]
                tampered = body.replace(b"conn_hook", b"conn_evil")
                self.assertNotEqual(tampered, body)
                with self.assertRaises(WebhookVerificationError):
                    verify_webhook_payload(tampered, lower(headers), secret)
                with self.assertRaises(SvixVerificationError):
                    Webhook(secret).verify(tampered, lower(headers))
                # Another endpoint's secret does not verify it either.
                with self.assertRaises(WebhookVerificationError):
                    verify_webhook_payload(body, lower(headers),
                                           "whsec_" + "QUFB" * 11)
        self.assertEqual(sorted(types), sorted(ALL))
        self.assertEqual(types["vault_plus.media.stored"]["mediaId"], "77")
        self.assertEqual(types["vault_plus.media.stored"]["sizeBytes"], 2048)
        purged = types["vault_plus.purge.completed"]
        self.assertTrue(purged.pop("receiptId").startswith("rcpt_"))
        self.assertEqual(purged, {"connectionId": "conn_hook", "purgedCount": 1,
                                  "freedBytes": 2048, "bytesGone": False})
        self.assertEqual(gone["connectionId"], "conn_hook")
        removed = types["vault_plus.connection.removed"]
        self.assertTrue(removed.pop("receiptId").startswith("rcpt_"))
        self.assertEqual(removed, {"connectionId": "conn_hook", "purgedCount": 0,
                                   "freedBytes": 0, "bytesGone": False})
        self.assertEqual(call("DELETE", "/v2/vault-plus/webhooks/" + created["id"])[0], 204)

    def test_after_a_rotation_either_secret_verifies(self):
        rx = Receiver()
        self.addCleanup(rx.stop)
        status, created = call("POST", "/v2/vault-plus/webhooks",
                               {"url": rx.url, "events": ["vault_plus.purge.completed"]})
        self.assertEqual(status, 201, created)
        status, rotated = call("POST", "/v2/vault-plus/webhooks/%s/rotate-secret" % created["id"])
        self.assertEqual(status, 200, rotated)
        self.assertNotEqual(rotated["secret"], created["secret"])
        SERVER.add_connection("conn_rot")
        self.assertEqual(call("DELETE", "/v2/vault-plus/media", conn="conn_rot")[0], 200)
        rx.wait_delivered(1)
        headers, body, _ = rx.received()[0]
        for secret in (created["secret"], rotated["secret"]):
            event = sdk_accepts(body, headers, secret)
            self.assertEqual(event["data"]["connectionId"], "conn_rot")
            svix_accepts(body, headers, secret)
        self.assertEqual(call("DELETE", "/v2/vault-plus/webhooks/" + created["id"])[0], 204)


if __name__ == "__main__":
    unittest.main()
