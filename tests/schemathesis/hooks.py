"""Schemathesis hooks for the vaultplus run (loaded through SCHEMATHESIS_HOOKS).

They do not change what is checked; they keep the server in a state where
the rest of the run still means something:

- Destructive calls on the seeded connection (purge, delete media, delete
  the connection, patch its settings) are sent to a scratch connection
  instead, so the reads keep finding the seeded media, lists and jobs.
- A PATCH of the organization's settings may set its rate limit to 1 a
  minute, after which every answer would be a 429: a valid rate in a PATCH
  is raised to at least RATE_FLOOR (still a valid value), and after the
  call the limits and the default settings are put back, so that one call
  does not turn every later answer into a 429 or a 507.
- A schema-valid webhook endpoint gets a URL the server accepts (a public
  address: whether a host's addresses are public is the server's to find
  out, not the document's), and each endpoint created is deleted again, so
  the organization never reaches its limit of endpoints.
- Rules the document can only state in words, since OpenAPI has no way to
  relate two query parameters or a parameter to server state, are kept in
  schema-valid (positive) cases: `cursor` only as a `nextCursor` the server
  issued for the same route and filters; `durationMin` at most
  `durationMax`; `cachedAtFrom`/`storedAtFrom` (and the `To` pair), which
  are aliases, not disagreeing. Schema-invalid (negative) cases are sent as
  generated.

The driver (driver.py) passes what the hooks need in the environment.
"""

import json
import math
import os
import urllib.request

import schemathesis

BASE = os.environ["VAULTPLUS_ST_BASE"]
KEY = os.environ["VAULTPLUS_ST_KEY"]
SEEDED = os.environ["VAULTPLUS_ST_CONNECTION"]
SCRATCH = os.environ["VAULTPLUS_ST_SCRATCH"]
PROTECTED = {SEEDED, SCRATCH}
DEFAULTS = json.loads(os.environ["VAULTPLUS_ST_DEFAULTS"])

# Routes whose effect on the connection named by x-connection-id is to
# remove what it holds.
DESTRUCTIVE_ON_HEADER = {
    ("DELETE", "/v2/vault-plus/media"),
    ("DELETE", "/v2/vault-plus/purge"),
    ("DELETE", "/v2/vault-plus/media/{mediaId}"),
    ("DELETE", "/v2/vault-plus/{mediaId}"),
}
# Routes that change or remove the connection named in the path.
ON_PATH_CONNECTION = {
    ("DELETE", "/v2/account/connections/{connectionId}"),
    ("PATCH", "/v2/account/connections/{connectionId}/settings"),
}


RATE_FLOOR = 100_000
RATE_MAX = 1_000_000

# nextCursor values the server answered, with the query they page through
# (without limit and cursor, which may change from page to page).
ISSUED = set()


def _key(case):
    return (case.method.upper(), case.operation.path)


def _positive(case, location):
    meta = getattr(case, "_meta", None)
    return meta is None or not meta.is_negative_at(location)


def _filters(query):
    return tuple(sorted((k, str(v)) for k, v in (query or {}).items() if k not in ("limit", "cursor")))


def _number(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _keep_query_rules(case):
    q = case.query
    if not q or not _positive(case, "query"):
        return
    if "cursor" in q and (case.operation.path, _filters(q), q["cursor"]) not in ISSUED:
        del q["cursor"]
    lo, hi = _number(q.get("durationMin")), _number(q.get("durationMax"))
    if lo is not None and hi is not None and lo > hi:
        q["durationMin"], q["durationMax"] = q["durationMax"], q["durationMin"]
    for a, b in (("cachedAtFrom", "storedAtFrom"), ("cachedAtTo", "storedAtTo")):
        if a in q and b in q:
            q[b] = q[a]


def _raise_rates(case):
    body = case.body
    if not isinstance(body, dict):
        return
    for field in ("rateLimitPerMinute", "rateLimitBurst"):
        v = body.get(field)
        # Integral floats (5.0) are whole numbers too, as the server reads them.
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v == int(v) and 1 <= v < RATE_FLOOR:
            body[field] = RATE_FLOOR


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    key = _key(case)
    _keep_query_rules(case)
    if key == ("PATCH", "/v2/account/settings"):
        _raise_rates(case)
    if key == ("POST", "/v2/vault-plus/webhooks") and _positive(case, "body"):
        if isinstance(case.body, dict) and isinstance(case.body.get("url"), str):
            case.body["url"] = "https://93.184.216.34/hook"
    if key in DESTRUCTIVE_ON_HEADER and case.headers is not None:
        if case.headers.get("x-connection-id") == SEEDED:
            case.headers["x-connection-id"] = SCRATCH
    if key in ON_PATH_CONNECTION and case.path_parameters:
        if case.path_parameters.get("connectionId") in PROTECTED:
            # The scratch connection for the settings (it may be disabled
            # and overridden at will); a name that exists nowhere for the
            # delete, so both protected ones stay.
            target = SCRATCH if key[0] == "PATCH" else "conn_protected_gone"
            case.path_parameters["connectionId"] = target


def _patch(path, body):
    req = urllib.request.Request(
        BASE + path,
        method="PATCH",
        data=json.dumps(body).encode(),
        headers={"apiKey": KEY, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        r.read()


@schemathesis.hook
def after_call(ctx, case, response):
    if case.method.upper() == "GET" and response.status_code == 200:
        try:
            cursor = response.json().get("nextCursor")
        except (ValueError, AttributeError):
            cursor = None
        if isinstance(cursor, str):
            ISSUED.add((case.operation.path, _filters(case.query), cursor))
    if _key(case) == ("POST", "/v2/vault-plus/webhooks") and response.status_code == 201:
        req = urllib.request.Request(
            BASE + "/v2/vault-plus/webhooks/" + response.json()["id"],
            method="DELETE",
            headers={"apiKey": KEY},
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            r.read()
    if _key(case) == ("PATCH", "/v2/account/settings") and response.status_code == 200:
        _patch(
            "/v2/account/settings",
            {
                "rateLimitPerMinute": None,
                "rateLimitBurst": None,
                "vaultPlus": {"autoEnableForNewConnections": True, "defaultSettings": DEFAULTS},
            },
        )
