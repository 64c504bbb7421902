"""vaultplus erasure receipts checked by a standard Ed25519 library.

A purge and a single delete name their receipt in `x-vaultplus-receipt`;
once reclaim has deleted the blobs the receipt is `bytes_gone`, its digest
is the one recomputed here from the bytes this test stored, and PyNaCl
verifies its signature over the RFC 8785 (JCS) form of the receipt without
`signature`, computed here independently of the server, with the public key
`GET /v2/vault-plus/receipts/keys` publishes. A changed field does not
verify.

One server is started for the module (port 0, temp data dir).
"""

import base64
import hashlib
import json
import time
import unittest
import urllib.error
import urllib.request

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from test_sdk import blob, module_server

SERVER = None


def setUpModule():
    global SERVER
    SERVER = module_server()


def tearDownModule():
    if SERVER is not None:
        SERVER.cleanup()


def request(method, path, conn=None):
    """(status, headers, json body)."""
    headers = {"apiKey": SERVER.key}
    if conn is not None:
        headers["x-connection-id"] = conn
    req = urllib.request.Request(SERVER.base + path, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.headers, json.loads(e.read() or b"null")


def b64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jcs(value):
    """RFC 8785 for what a receipt holds (strings, integers, null): sorted
    keys, no white space, UTF-8 as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def digest_of(stored):
    lines = sorted("%s\t%s\t%s\t%d\n" % (m, label, hashlib.sha256(data).hexdigest(), len(data))
                   for m, label, data in stored)
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def wait_bytes_gone(receipt_id):
    deadline = time.time() + 30
    while time.time() < deadline:
        status, _, r = request("GET", "/v2/vault-plus/receipts/" + receipt_id)
        assert status == 200, r
        if r["state"] == "bytes_gone":
            return r
        time.sleep(0.05)
    raise AssertionError("receipt %s never reached bytes_gone" % receipt_id)


class Receipts(unittest.TestCase):
    def keys(self):
        status, _, body = request("GET", "/v2/vault-plus/receipts/keys")
        self.assertEqual(status, 200, body)
        return {k["keyId"]: VerifyKey(b64url(k["publicKey"])) for k in body["keys"]}

    def assertVerifies(self, receipt):
        key = self.keys()[receipt["keyId"]]
        unsigned = {k: v for k, v in receipt.items() if k != "signature"}
        signature = b64url(receipt["signature"])
        self.assertEqual(len(signature), 64)
        key.verify(jcs(unsigned), signature)
        forged = dict(unsigned, purgedCount=unsigned["purgedCount"] + 1)
        with self.assertRaises(BadSignatureError):
            key.verify(jcs(forged), signature)

    def store(self, conn, ids):
        stored = []
        for i in ids:
            for label, n in (("full", 900 + i), ("thumb", 40 + i)):
                data = blob(i + 1, n)
                status, body = SERVER.put(conn, str(i), label, "image/jpeg", data)
                self.assertEqual(status, 201, body)
                stored.append((str(i), label, data))
        return stored

    def test_a_purge_receipt_verifies_with_the_digest_of_what_was_stored(self):
        SERVER.add_connection("conn_rc")
        stored = self.store("conn_rc", range(5))
        status, headers, body = request("DELETE", "/v2/vault-plus/media", conn="conn_rc")
        self.assertEqual(status, 200, body)
        # The seed's body, exactly; the receipt is named by a header.
        self.assertEqual(body, {"success": True, "purgedCount": 10,
                                "freedBytes": sum(len(d) for _, _, d in stored)})
        receipt_id = headers["x-vaultplus-receipt"]
        self.assertRegex(receipt_id, r"^rcpt_[0-9a-f]{32}$")
        receipt = wait_bytes_gone(receipt_id)
        self.assertEqual(receipt["kind"], "purge")
        self.assertEqual(receipt["connectionId"], "conn_rc")
        self.assertEqual(receipt["digest"], digest_of(stored))
        self.assertVerifies(receipt)

    def test_a_delete_receipt_verifies(self):
        SERVER.add_connection("conn_rd")
        stored = self.store("conn_rd", range(2))
        status, headers, body = request("DELETE", "/v2/vault-plus/media/1", conn="conn_rd")
        self.assertEqual(status, 200, body)
        receipt = wait_bytes_gone(headers["x-vaultplus-receipt"])
        self.assertEqual(receipt["kind"], "delete")
        self.assertEqual(receipt["digest"], digest_of([v for v in stored if v[0] == "1"]))
        self.assertVerifies(receipt)


if __name__ == "__main__":
    unittest.main()
