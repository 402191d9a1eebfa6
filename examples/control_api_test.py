"""A pytest test driving the gateway's control API (README "Control API", worked example).

It starts `jt808-harness serve --control`, points `jt808-harness client` at it, injects a fault
through the API, changes it in place, and asserts on the gateway's log (`GET /log`) and on what
the client printed.
Standard library only besides pytest:

    cargo build && python3 -m pip install pytest && python3 -m pytest examples/

The binary is `target/debug/jt808-harness` unless JT808_HARNESS names another.
"""

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

BINARY = os.environ.get(
    "JT808_HARNESS", str(Path(__file__).resolve().parent.parent / "target" / "debug" / "jt808-harness")
)


def call(api, method, path, body=None):
    """One request to the control API: (status, parsed JSON or text, headers)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(api + path, data=data, method=method)
    req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            status, text, headers = r.status, r.read().decode(), r.headers
    except urllib.error.HTTPError as e:
        status, text, headers = e.code, e.read().decode(), e.headers
    try:
        return status, json.loads(text), headers
    except ValueError:
        return status, text, headers


def log(api, since=0):
    """Gateway log records from cursor `since` (JSON Lines), and the cursor to ask for next."""
    with urllib.request.urlopen(f"{api}/log?since={since}", timeout=5) as r:
        records = [json.loads(line) for line in r.read().decode().splitlines() if line]
        return records, int(r.headers["x-log-next"])


def wait_for(what, check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def gateway():
    """`serve --control` on free loopback ports; yields (ws_url, api_url)."""
    proc = subprocess.Popen(
        [BINARY, "serve", "--control", "--terminals", "1", "--interval", "50ms", "--seed", "7", "--quiet"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        ws = proc.stdout.readline().strip().removeprefix("listening on ")
        api = proc.stdout.readline().strip().removeprefix("control on ")
        assert ws.startswith("ws://") and api.startswith("http://"), (ws, api)
        yield ws, api
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_fault_injected_through_the_api_reaches_an_open_client(gateway, tmp_path):
    ws, api = gateway
    out = open(tmp_path / "client.jsonl", "w+")
    client = subprocess.Popen([BINARY, "client", "--url", ws], stdout=out, stderr=subprocess.DEVNULL)
    try:
        wait_for("the client's connection", lambda: call(api, "GET", "/connections")[1])

        # A bad request is refused, naming the field, and changes nothing.
        status, body, _ = call(api, "POST", "/faults", {"type": "corupt_checksum"})
        assert status == 400 and body["field"] == "type"
        assert call(api, "GET", "/faults")[1] == []

        status, body, _ = call(api, "POST", "/faults", {"type": "corrupt_checksum", "name": "cc", "times": 3})
        assert status == 201, body
        fired = wait_for(
            "three corrupted messages in the log",
            lambda: [r for r in log(api)[0] if r.get("fault") == "cc"][2:],
        )
        assert fired[0]["what"] == "corrupt_checksum"

        def rejected():
            out.seek(0)
            return [e for e in map(json.loads, out.read().splitlines()) if e["type"] == "frame_rejected"]

        assert len(wait_for("the client's rejected frames", lambda: rejected()[2:] and rejected())) == 3

        # Changed in place: `times` counts on from the three it used, so two more fire.
        status, body, _ = call(api, "PATCH", "/faults/cc", {"times": 5})
        assert status == 200 and body["times"] == 5, body
        wait_for("five corrupted messages", lambda: [r for r in log(api)[0] if r.get("fault") == "cc"][4:])
        assert len(wait_for("five rejected frames", lambda: rejected()[4:] and rejected())) == 5
        actions = [r["action"] for r in log(api)[0] if r["type"] == "control"]
        assert actions == ["fault_added", "fault_changed"]
    finally:
        client.terminate()
        client.wait(timeout=10)
        out.close()
