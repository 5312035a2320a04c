#!/usr/bin/env python3
"""Send chat completions round-robin to Serve proxies until a stop file appears
(or --max-seconds pass), then print one JSON line: ok/failed per URL and the
first errors. Standard library only; runs on the test host during a fault.

Like a load balancer with passive health checks, a proxy that fails at the
connection level (refused, reset, timed out) leaves the rotation until its
/-/healthz answers 200 again (probed every --down-seconds); that request
still counts as failed, as does every error status.

  request_loop.py --stop FILE --model M URL [URL ...]

With REQUEST_LOOP_API_KEY set (through the gateway), each request sends it
as `Authorization: Bearer`.
"""
import argparse
import json
import os
import time
import urllib.error
import urllib.request


def one(url, model, timeout, max_tokens):
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "ping"}],
                       "max_tokens": max_tokens}).encode()
    headers = {"Content-Type": "application/json"}
    if os.environ.get("REQUEST_LOOP_API_KEY"):
        headers["Authorization"] = "Bearer " + os.environ["REQUEST_LOOP_API_KEY"]
    req = urllib.request.Request(url.rstrip("/") + "/v1/chat/completions", data=body, headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        doc = json.load(r)
        if not doc.get("choices"):
            raise ValueError("no choices in %r" % doc)


def healthy(url, timeout=2):
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/-/healthz", timeout=timeout) as r:
            return r.status == 200
    except Exception:  # noqa: BLE001 - anything but 200 is "not back yet"
        return False


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--stop", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--max-seconds", type=float, default=300)
    p.add_argument("--timeout", type=float, default=10)
    # An LLM answers up to its context length without it.
    p.add_argument("--max-tokens", type=int, default=16)
    p.add_argument("--pause", type=float, default=0.05)
    p.add_argument("--down-seconds", type=float, default=2)
    p.add_argument("urls", nargs="+")
    a = p.parse_args()
    stats = {u: {"ok": 0, "failed": 0} for u in a.urls}
    errors = []
    start = time.monotonic()
    down = {}  # url -> when to probe it again
    i = 0
    while not os.path.exists(a.stop) and time.monotonic() - start < a.max_seconds:
        now = time.monotonic()
        for url, again in list(down.items()):
            if now >= again:
                if healthy(url):
                    del down[url]
                else:
                    down[url] = now + a.down_seconds
        rotation = [u for u in a.urls if u not in down]
        if not rotation:
            stats.setdefault("no proxy", {"ok": 0, "failed": 0})["failed"] += 1
            time.sleep(0.2)
            continue
        url = rotation[i % len(rotation)]
        i += 1
        t = now - start
        try:
            one(url, a.model, a.timeout, a.max_tokens)
            stats[url]["ok"] += 1
        except Exception as e:  # every failure counts, whatever its kind
            stats[url]["failed"] += 1
            if not isinstance(e, urllib.error.HTTPError):
                down[url] = time.monotonic() + a.down_seconds
            if len(errors) < 20:
                errors.append({"t": round(t, 2), "url": url, "error": "%s: %s" % (type(e).__name__, e)})
        time.sleep(a.pause)
    ok = sum(s["ok"] for s in stats.values())
    failed = sum(s["failed"] for s in stats.values())
    print(json.dumps({"ok": ok, "failed": failed, "seconds": round(time.monotonic() - start, 1),
                      "by_url": stats, "errors": errors}))


if __name__ == "__main__":
    main()
