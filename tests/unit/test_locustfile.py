"""locustfile.py: reading a streamed chat completion into the figures LLM users read.

The streams below follow what vLLM (through Ray Serve LLM) sends: a role chunk,
content chunks (Serve may batch several tokens into one), a finish chunk, a
usage chunk with stream_options.include_usage, then [DONE]."""
from __future__ import annotations

import json
import os
import sys
import types

import pytest
from conftest import ROOT

# The locustfile imports locust at module level; the controller's venv has none.
sys.modules.setdefault("locust", types.SimpleNamespace(HttpUser=object, constant=lambda s: s, task=lambda f: f))
os.environ.setdefault("LOADTEST_MODEL", "unit")
sys.path.insert(0, os.path.join(ROOT, "roles", "ray_loadtest", "files"))
import locustfile  # noqa: E402


def sse(*chunks, done=True):
    lines = []
    for chunk in chunks:
        lines += [b"data: " + json.dumps(chunk).encode(), b""]
    return lines + ([b"data: [DONE]", b""] if done else [])


def content(text):
    return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}


FINISH = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}
ROLE = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}


def clock(*times):
    it = iter(times)
    return lambda: next(it)


def test_a_stream_gives_first_and_last_token_times_and_the_usage_tokens():
    usage = {"object": "chat.completion.chunk", "choices": [], "usage": {"completion_tokens": 8}}
    figures, why = locustfile.read_stream(sse(ROLE, content("a b"), content(" c"), content(" d"), FINISH, usage),
                                          clock=clock(10.2, 10.5, 10.8))
    assert why is None
    assert figures == {"first": 10.2, "last": 10.8, "chunks": 3, "output_tokens": 8, "finish_reason": "length"}
    row = locustfile.llm_row(10.0, 11.0, figures)
    # ttft 200 ms; 600 ms for the 7 tokens after the first; latency 1 s.
    assert row[1:] == [1000.0, 200.0, 85.71, 8]


def test_without_usage_the_content_chunks_count_as_tokens():
    figures, why = locustfile.read_stream(sse(content("x"), content("y"), FINISH), clock=clock(1.0, 1.1))
    assert why is None and figures["output_tokens"] == 2
    assert locustfile.llm_row(0.5, 1.2, figures)[3] == 100.0


def test_one_token_has_no_inter_token_latency():
    figures, _ = locustfile.read_stream(sse(content("x"), FINISH), clock=clock(1.0))
    assert locustfile.llm_row(0.9, 1.0, figures)[2:] == [100.0, None, 1]


@pytest.mark.parametrize(("lines", "why"), [
    (sse(content("x"), FINISH, done=False), "ended without [DONE]"),
    (sse(content("x")), "no finish reason"),
    ([b"data: {not json"], "not JSON in the stream"),
    (sse({"error": {"message": "boom"}}), "error in the stream"),
])
def test_a_broken_stream_is_a_failure_that_says_why(lines, why):
    figures, reason = locustfile.read_stream(lines, clock=clock(1.0, 1.1, 1.2))
    assert figures is None and why in reason


def test_rows_go_to_the_csv_with_a_header(tmp_path):
    rows = locustfile._Rows(str(tmp_path / "llm.csv"))
    rows.add([1.0, 2.0, 3.0, 4.0, 5])
    rows.file.flush()
    assert (tmp_path / "llm.csv").read_text().splitlines() == [",".join(locustfile.LLM_COLUMNS), "1.0,2.0,3.0,4.0,5"]


def test_llm_columns_are_the_drivers():
    # The locustfile runs alone under Locust, so it keeps a copy of the columns the report reads from the driver.
    import loadtest_driver
    assert locustfile.LLM_COLUMNS == loadtest_driver.LLM_COLUMNS


def test_the_client_checks_certificates_unless_told_not_to(monkeypatch):
    for verify in (True, False):
        monkeypatch.setattr(locustfile, "VERIFY_TLS", verify)
        user = locustfile.ChatCompletionsUser.__new__(locustfile.ChatCompletionsUser)
        user.host, user.client = "https://gateway:8000", types.SimpleNamespace(verify=None)
        user.on_start()
        assert user.client.verify is verify
