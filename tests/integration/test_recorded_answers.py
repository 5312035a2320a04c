"""The recorded Ray dashboard answers still look like what a live Ray returns.

The unit tests feed the modules answers recorded from Ray 2.60 (tests/unit/fixtures/recorded). Nothing
else notices when Ray, after an upgrade, answers differently: the unit tests would keep passing on answers
Ray no longer gives. This test fetches the same endpoints from the live cluster of the default inventory
(scripts/test.sh's `cluster` stage: three nodes, echo-cpu RUNNING) and compares keys and types, not values.
"""
from __future__ import annotations

import json
import urllib.request
from urllib.parse import urlencode

import pytest

from helpers import DASHBOARD, ROOT, TOKEN_FILE

pytestmark = pytest.mark.usefixtures("live_cluster")
RECORDED = ROOT / "tests/unit/fixtures/recorded"
# The query of module_utils/ray_dashboard.py's alive_nodes().
NODES = "/api/v0/nodes?" + urlencode([("filter_keys", "state"), ("filter_predicates", "="),
                                      ("filter_values", "ALIVE"), ("limit", 10000)])
SERVE = "/api/serve/applications/"
# Dicts keyed by names (applications, deployments, node ids, resources, labels, user args), not by fields:
# their values are merged into one shape, shown in paths as the placeholder.
MAPS = {"applications": "<app>", "deployments": "<deployment>", "proxies": "<node_id>", "nodes": "<deployment>",
        "resources_total": "<resource>", "required_resources": "<resource>", "labels": "<label>",
        "env_vars": "<var>", "args": "<arg>", "policy_kwargs": "<kwarg>", "request_router_kwargs": "<kwarg>"}


def fetch(path: str):
    request = urllib.request.Request(DASHBOARD + path, headers={
        "Authorization": "Bearer " + TOKEN_FILE.read_text().strip(), "User-Agent": "ray-compose-tests"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)


def merge(a, b):
    """One shape that covers both: null gives way to anything, dicts unite their keys, other clashes join types."""
    if a == b or b == "null":
        return a
    if a == "null":
        return b
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: merge(a[k], b[k]) if k in a and k in b else a.get(k, b.get(k)) for k in {**a, **b}}
    if isinstance(a, list) and isinstance(b, list):
        return [merge(a[0], b[0])] if a and b else a or b
    return "|".join(sorted(set(kind(a).split("|")) | set(kind(b).split("|"))))


def shape(value, key: str = ""):
    """The structure of a JSON value: dict -> {key: shape}, a dict under a MAPS key -> {placeholder: merged shape
    of its values}, list -> [merged shape of the items] ([] when empty), scalars -> "str", "number" (int and
    float alike), "bool" or "null"."""
    if isinstance(value, dict):
        if key in MAPS:
            merged = "null"
            for item in value.values():
                merged = merge(merged, shape(item))
            return {MAPS[key]: merged} if value else {}
        return {k: shape(v, k) for k, v in value.items()}
    if isinstance(value, list):
        merged = "null"
        for item in value:
            merged = merge(merged, shape(item))
        return [merged] if value else []
    if value is None:
        return "null"
    return {bool: "bool", int: "number", float: "number", str: "str"}[type(value)]


def kind(s) -> str:
    return "object" if isinstance(s, dict) else "list" if isinstance(s, list) else s


def differences(recorded, live, path: str = "") -> tuple[list[str], list[str]]:
    """(breaks, additions) between two shapes, as paths. Breaks: a recorded key missing live, or a changed type.
    Additions: keys only live. null is compatible with any type either way: Ray leaves optional fields null."""
    breaks, additions = [], []
    if recorded == "null" or live == "null":
        pass
    elif isinstance(recorded, dict) and isinstance(live, dict):
        for k in recorded.keys() - live.keys():
            breaks.append(f"{path}{k}: recorded {kind(recorded[k])}, live missing")
        for k in live.keys() - recorded.keys():
            additions.append(f"{path}{k}: live {kind(live[k])}, not recorded")
        for k in recorded.keys() & live.keys():
            sub = differences(recorded[k], live[k], f"{path}{k}.")
            breaks += sub[0]
            additions += sub[1]
    elif isinstance(recorded, list) and isinstance(live, list):
        if recorded and live:  # an empty list on either side says nothing about its items
            return differences(recorded[0], live[0], path[:-1] + "[].")
    elif kind(recorded) != kind(live) and not set(kind(live).split("|")) <= set(kind(recorded).split("|")):
        breaks.append(f"{path[:-1] or '(answer)'}: recorded {kind(recorded)}, live {kind(live)}")
    return sorted(breaks), sorted(additions)


def running_only(answer: dict) -> dict:
    apps = {name: app for name, app in answer["applications"].items() if app.get("status") == "RUNNING"}
    assert apps, f"no RUNNING Serve application live (run serve.yml -e model=echo-cpu first): {answer['applications']}"
    return dict(answer, applications=apps)


@pytest.mark.parametrize("fixture, path", [("ray-2.60.0-nodes-alive.json", NODES),
                                           ("ray-2.60.0-serve-running.json", SERVE)], ids=["nodes", "serve"])
def test_recorded_answer_matches_live_ray(fixture, path):
    recorded = json.loads((RECORDED / fixture).read_text())
    live = running_only(fetch(path)) if path == SERVE else fetch(path)
    breaks, additions = differences(shape(recorded), shape(live))
    if additions:
        print(f"{fixture}: live Ray has fields the record lacks (not a break):\n  " + "\n  ".join(additions))
    assert not breaks, (
        f"tests/unit/fixtures/recorded/{fixture} is stale: live Ray answers GET {path} differently\n  "
        + "\n  ".join(breaks) + "\nRe-record it from a live cluster: curl -s -H \"Authorization: Bearer $(cat "
        f"{TOKEN_FILE})\" '{DASHBOARD}{path}' | python3 -m json.tool --indent 1 > {RECORDED.relative_to(ROOT)}/"
        f"{fixture} (a new name if Ray's version changed), then fix the unit tests that read it.")
