#!/usr/bin/env python3
"""One-shot, idempotent set-up of a one-node Garage for Coffer.

Talks to Garage's admin API (v2, Garage >= 2.0) with the standard library
only, so it runs in any python:3 image. Steps, each skipped when already
done: give the node a role and apply the layout; wait until the cluster is
healthy; import the access key Coffer uses; create the bucket; let the key
read, write and own it.

Environment:
  GARAGE_ADMIN_URL      admin API, e.g. http://garage:3903
  GARAGE_ADMIN_TOKEN    the admin token Garage was started with
  S3_BUCKET             bucket to create (global alias)
  S3_ACCESS_KEY_ID      "GK" + 24 hex digits
  S3_SECRET_ACCESS_KEY  64 hex digits
  GARAGE_ZONE           zone of the node (default dc1)
  GARAGE_CAPACITY       capacity in bytes given to the node (default 10 GB)
  GARAGE_ALLOW_CREATE_BUCKET  "true": the key may create buckets
                        (needed for s3_bucket_per_coffer_bucket)
  GARAGE_WAIT_SECONDS   how long to wait for Garage (default 120)

The same file is shipped as docker/garage/init.py (Compose) and
k8s/overlays/dev/garage/init.py (the dev overlay's Job); check-deploy
keeps the two identical and runs it against a fake admin API.
"""

import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


def env(name, default=None):
    value = os.environ.get(name, default)
    if value is None or value == "":
        sys.exit(f"garage-init: {name} is not set")
    return value


ADMIN = env("GARAGE_ADMIN_URL").rstrip("/")
TOKEN = env("GARAGE_ADMIN_TOKEN")
BUCKET = env("S3_BUCKET")
KEY_ID = env("S3_ACCESS_KEY_ID")
SECRET = env("S3_SECRET_ACCESS_KEY")
ZONE = env("GARAGE_ZONE", "dc1")
CAPACITY = int(env("GARAGE_CAPACITY", str(10 * 1000**3)))
ALLOW_CREATE = env("GARAGE_ALLOW_CREATE_BUCKET", "false").lower() == "true"
WAIT = float(env("GARAGE_WAIT_SECONDS", "120"))


def log(message):
    print(f"garage-init: {message}", flush=True)


def call(method, path, body=None, query=None, auth=True):
    """Returns (status, parsed JSON or None). Network errors raise OSError."""
    url = ADMIN + path
    if query:
        url += "?" + urllib.parse.urlencode(query)
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if auth:
        request.add_header("Authorization", f"Bearer {TOKEN}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        raw = error.read()
        status = error.code
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = None
    return status, parsed


def must(status, parsed, what):
    if status // 100 != 2:
        sys.exit(f"garage-init: {what} failed with {status}: {parsed}")
    return parsed


def wait_for(what, check):
    deadline = time.monotonic() + WAIT
    while True:
        try:
            if check():
                return
        except OSError as error:
            last = error
        else:
            last = "not yet"
        if time.monotonic() > deadline:
            sys.exit(f"garage-init: gave up waiting for {what}: {last}")
        time.sleep(1)


def main():
    if not re.fullmatch(r"GK[0-9a-f]{24}", KEY_ID):
        sys.exit("garage-init: S3_ACCESS_KEY_ID must be GK followed by 24 hex digits")
    if not re.fullmatch(r"[0-9a-f]{64}", SECRET):
        sys.exit("garage-init: S3_SECRET_ACCESS_KEY must be 64 hex digits")

    status_box = {}

    def admin_up():
        status, parsed = call("GET", "/v2/GetClusterStatus")
        if status in (401, 403):
            sys.exit(f"garage-init: the admin token was refused ({status})")
        status_box["status"] = parsed
        return status == 200

    wait_for("the admin API", admin_up)
    cluster = status_box["status"]
    nodes = cluster.get("nodes") or []
    if not nodes:
        sys.exit("garage-init: the cluster reports no node")

    # 1. Layout: one node, one zone.
    unassigned = [n for n in nodes if not n.get("role")]
    if unassigned:
        roles = [{"id": n["id"], "zone": ZONE, "capacity": CAPACITY, "tags": []} for n in unassigned]
        must(*call("POST", "/v2/UpdateClusterLayout", {"roles": roles}), "UpdateClusterLayout")
        layout = must(*call("GET", "/v2/GetClusterLayout"), "GetClusterLayout")
        version = int(layout["version"]) + 1
        must(*call("POST", "/v2/ApplyClusterLayout", {"version": version}), "ApplyClusterLayout")
        log(f"layout version {version} applied ({len(roles)} node(s) in {ZONE})")
    else:
        log(f"layout already applied (version {cluster.get('layoutVersion')})")

    # 2. Healthy cluster (the unauthenticated /health answers 200).
    wait_for("a healthy cluster", lambda: call("GET", "/health", auth=False)[0] == 200)

    # 3. Access key.
    status, _ = call("GET", "/v2/GetKeyInfo", query={"id": KEY_ID})
    if status == 200:
        log(f"key {KEY_ID} exists")
    else:
        body = {"accessKeyId": KEY_ID, "secretAccessKey": SECRET, "name": "coffer"}
        must(*call("POST", "/v2/ImportKey", body), "ImportKey")
        log(f"key {KEY_ID} imported")
    if ALLOW_CREATE:
        must(
            *call("POST", "/v2/UpdateKey", {"allow": {"createBucket": True}}, query={"id": KEY_ID}),
            "UpdateKey",
        )
        log("key may create buckets")

    # 4. Bucket.
    status, parsed = call("GET", "/v2/GetBucketInfo", query={"globalAlias": BUCKET})
    if status == 200:
        bucket_id = parsed["id"]
        log(f"bucket {BUCKET} exists")
    else:
        bucket_id = must(*call("POST", "/v2/CreateBucket", {"globalAlias": BUCKET}), "CreateBucket")["id"]
        log(f"bucket {BUCKET} created")

    # 5. Permissions (setting them again is harmless).
    permissions = {"read": True, "write": True, "owner": True}
    body = {"bucketId": bucket_id, "accessKeyId": KEY_ID, "permissions": permissions}
    must(*call("POST", "/v2/AllowBucketKey", body), "AllowBucketKey")
    log(f"key {KEY_ID} may read, write and own {BUCKET}; done")


if __name__ == "__main__":
    main()
