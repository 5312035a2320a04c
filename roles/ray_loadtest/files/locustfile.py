"""Locust user for an OpenAI-compatible chat-completions endpoint, streaming.

Started by loadtest_driver.py, which passes the settings through the
environment:

  LOADTEST_MODEL       model id sent in the body (required)
  LOADTEST_PROMPTS     JSON list of prompts; one is picked at random per request
                       (default: ["Hello"])
  LOADTEST_MAX_TOKENS  max_tokens sent in the body (default: 32)
  LOADTEST_WAIT_S      seconds each user waits between requests (default: 0)
  LOADTEST_TIMEOUT_S   per-request timeout in seconds (default: 120)
  LOADTEST_API_KEY     sent as `Authorization: Bearer ...` when set
  LOADTEST_VERIFY_TLS  0: do not check an https host's certificate (default: 1)
  LOADTEST_LLM_CSV     where to write one row per successful request with the
                       figures LLM users read (LLM_COLUMNS); unset: nowhere

The host (`--host`) is the application's base URL including its route
prefix, e.g. http://127.0.0.1:8000/slow; requests go to
{host}/v1/chat/completions with "stream": true, as chat clients send them.
Locust's own statistics time the whole answer, to its last chunk. A request
counts as a failure unless the answer is HTTP 200 with a server-sent event
stream of chat.completion.chunk objects that ends with [DONE] and reports a
finish reason.

Per request it also measures, from the stream: the time to the first token
(the first chunk with content), the inter-token latency (the time from the
first to the last content chunk, divided by the output tokens after the
first; Serve may put several tokens in one chunk), and the output tokens
(the usage the server reports, else the content chunks).
"""

import csv
import json
import os
import random
import time

from locust import HttpUser, constant, task

PATH = "/v1/chat/completions"
LLM_COLUMNS = ["time", "latency_ms", "ttft_ms", "itl_ms", "output_tokens"]


def _prompts():
    raw = os.environ.get("LOADTEST_PROMPTS", "")
    if not raw:
        return ["Hello"]
    prompts = json.loads(raw)
    if isinstance(prompts, str):
        prompts = [prompts]
    if not isinstance(prompts, list) or not prompts:
        raise ValueError("LOADTEST_PROMPTS must be a non-empty JSON list of prompts")
    return [str(p) for p in prompts]


MODEL = os.environ.get("LOADTEST_MODEL", "")
if not MODEL:
    raise ValueError("LOADTEST_MODEL is not set")
PROMPTS = _prompts()
MAX_TOKENS = int(os.environ.get("LOADTEST_MAX_TOKENS", "32"))
WAIT_S = float(os.environ.get("LOADTEST_WAIT_S") or 0)
TIMEOUT_S = float(os.environ.get("LOADTEST_TIMEOUT_S") or 120)
API_KEY = os.environ.get("LOADTEST_API_KEY", "")
VERIFY_TLS = os.environ.get("LOADTEST_VERIFY_TLS", "1") != "0"
if not VERIFY_TLS:
    # One warning per request would fill locust.log.
    import urllib3

    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
LLM_CSV = os.environ.get("LOADTEST_LLM_CSV", "")


def read_stream(lines, clock=time.monotonic):
    """Figures of one streamed chat completion, from its lines as they arrive.

    Returns (figures, None) or (None, why it is not a valid stream). figures:
    first and last content times (clock values), content chunks, output
    tokens (usage, else chunks), finish reason.
    """
    first = last = None
    chunks, usage, finish, done = 0, None, None, False
    for raw in lines:
        line = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        if not line.startswith("data:"):
            continue  # blank separators, comments, event names
        data = line[5:].strip()
        if data == "[DONE]":
            done = True
            break
        try:
            chunk = json.loads(data)
        except ValueError:
            return None, f"not JSON in the stream: {data[:200]}"
        if not isinstance(chunk, dict) or "error" in chunk:
            return None, f"error in the stream: {data[:200]}"
        if chunk.get("usage"):
            usage = chunk["usage"].get("completion_tokens")
        for choice in chunk.get("choices") or []:
            if (choice.get("delta") or {}).get("content"):
                now = clock()
                first = now if first is None else first
                last = now
                chunks += 1
            finish = choice.get("finish_reason") or finish
    if not done:
        return None, "the stream ended without [DONE]"
    if finish is None:
        return None, "the stream reported no finish reason"
    tokens = usage if isinstance(usage, int) and usage > 0 else chunks
    return {"first": first, "last": last, "chunks": chunks, "output_tokens": tokens, "finish_reason": finish}, None


def llm_row(start, end, figures):
    """One LLM_COLUMNS row (times in ms) of a request that began at start and ended at end."""
    ttft = None if figures["first"] is None else (figures["first"] - start) * 1000
    tokens = figures["output_tokens"]
    itl = None
    if figures["first"] is not None and tokens > 1:
        itl = (figures["last"] - figures["first"]) * 1000 / (tokens - 1)
    return [round(time.time(), 3), round((end - start) * 1000, 1),
            None if ttft is None else round(ttft, 1), None if itl is None else round(itl, 2), tokens]


class _Rows:
    """The LLM CSV, opened on first use (each Locust process writes its own)."""

    def __init__(self, path):
        self.path, self.writer, self.file, self.count = path, None, None, 0

    def add(self, row):
        if not self.path:
            return
        if self.writer is None:
            self.file = open(self.path, "w", newline="")
            self.writer = csv.writer(self.file)
            self.writer.writerow(LLM_COLUMNS)
        self.writer.writerow(row)
        self.count += 1
        if self.count % 20 == 0:
            self.file.flush()


ROWS = _Rows(LLM_CSV)


class ChatCompletionsUser(HttpUser):
    wait_time = constant(WAIT_S)

    def on_start(self):
        # Build the URL ourselves: a trailing slash on --host must not
        # turn /slow/v1/... into /slow//v1/...
        self.url = (self.host or "").rstrip("/") + PATH
        self.headers = {"Authorization": f"Bearer {API_KEY}"} if API_KEY else {}
        self.client.verify = VERIFY_TLS

    def on_stop(self):
        if ROWS.file is not None:
            ROWS.file.flush()

    @task
    def chat(self):
        body = {
            "model": MODEL,
            "messages": [{"role": "user", "content": random.choice(PROMPTS)}],
            "max_tokens": MAX_TOKENS,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        start = time.monotonic()
        with self.client.post(self.url, json=body, headers=self.headers, name=PATH, stream=True,
                              timeout=TIMEOUT_S, catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {(resp.text or '')[:200]}")
                return
            try:
                figures, why = read_stream(resp.iter_lines())
            except Exception as exc:  # noqa: BLE001 - a broken stream is a failed request
                figures, why = None, f"the stream broke: {exc!r}"
            end = time.monotonic()
            # Locust stops its clock when the headers arrive; time the whole answer.
            resp.request_meta["response_time"] = (end - start) * 1000
            if why is not None:
                resp.failure(why)
                return
            resp.success()
            ROWS.add(llm_row(start, end, figures))
