"""Locust user for an OpenAI-compatible chat-completions endpoint.

Started by loadtest_driver.py, which passes the settings through the
environment:

  LOADTEST_MODEL       model id sent in the body (required)
  LOADTEST_PROMPTS     JSON list of prompts; one is picked at random per request
                       (default: ["Hello"])
  LOADTEST_MAX_TOKENS  max_tokens sent in the body (default: 32)
  LOADTEST_WAIT_S      seconds each user waits between requests (default: 0)
  LOADTEST_TIMEOUT_S   per-request timeout in seconds (default: 120)
  LOADTEST_API_KEY     sent as `Authorization: Bearer ...` when set

The host (`--host`) is the application's base URL including its route
prefix, e.g. http://127.0.0.1:8000/slow; requests go to
{host}/v1/chat/completions. A request counts as a failure unless the answer
is HTTP 200 with a JSON body that has choices[0].message.
"""

import json
import os
import random

from locust import HttpUser, constant, task

PATH = "/v1/chat/completions"


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


def check_answer(status_code, body_text):
    """Return None when the answer is a chat completion, else why it is not."""
    if status_code != 200:
        return f"HTTP {status_code}: {body_text[:200]}"
    try:
        body = json.loads(body_text)
        body["choices"][0]["message"]
    except (ValueError, KeyError, IndexError, TypeError):
        return f"HTTP 200 without choices[0].message: {body_text[:200]}"
    return None


class ChatCompletionsUser(HttpUser):
    wait_time = constant(WAIT_S)

    def on_start(self):
        # Build the URL ourselves: a trailing slash on --host must not
        # turn /slow/v1/... into /slow//v1/...
        self.url = (self.host or "").rstrip("/") + PATH
        self.headers = {"Authorization": f"Bearer {API_KEY}"} if API_KEY else {}

    @task
    def chat(self):
        body = {
            "model": MODEL,
            "messages": [{"role": "user", "content": random.choice(PROMPTS)}],
            "max_tokens": MAX_TOKENS,
            "stream": False,
        }
        with self.client.post(self.url, json=body, headers=self.headers, name=PATH,
                              timeout=TIMEOUT_S, catch_response=True) as resp:
            why = check_answer(resp.status_code, resp.text or "")
            if why is None:
                resp.success()
            else:
                resp.failure(why)
