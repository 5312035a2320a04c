"""Talk to a Serve endpoint with the official OpenAI client, as a user would.

    python openai_check.py BASE_URL MODEL [--stream]

Lists the models, asks for one chat completion and, with --stream, streams
one more, timing its first token. Prints a JSON line with what came back.
Exits non-zero when the model is not listed, an answer is empty, or the
stream does not come in several chunks that end with a finish reason.

Both requests set vLLM's ignore_eos: two of the 512 token ids of CI's
random-weight checkpoint end an answer, so one can end after a few tokens
(a CI run got 4 of 24), which would make the token counts the tests assert
a matter of luck. The echo app ignores it.
"""

import json
import os
import sys
import time

from openai import OpenAI


def stream_chat(client, model):
    """Chunks, text, finish reason, time to first token (ms) and usage of one streamed chat."""
    start = time.monotonic()
    first, chunks, text, finish, usage = None, 0, "", None, None
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "stream from the e2e test"}], max_tokens=24,
        stream=True, stream_options={"include_usage": True}, extra_body={"ignore_eos": True})
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage.completion_tokens
        for choice in chunk.choices:
            if choice.delta.content:
                if first is None:
                    first = time.monotonic()
                chunks += 1
                text += choice.delta.content
            finish = choice.finish_reason or finish
    ttft = None if first is None else round((first - start) * 1000, 1)
    return {"chunks": chunks, "text": text, "finish_reason": finish, "ttft_ms": ttft, "completion_tokens": usage}


def main():
    base_url, model = sys.argv[1], sys.argv[2]
    # Through the gateway, the key from OPENAI_API_KEY, as the client itself reads it.
    client = OpenAI(base_url=base_url, api_key=os.environ.get("OPENAI_API_KEY") or "unused", timeout=60, max_retries=2)
    models = sorted(m.id for m in client.models.list())
    answer = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "ping from the e2e test"}], max_tokens=16,
        extra_body={"ignore_eos": True})
    content = answer.choices[0].message.content or ""
    result = {"models": models, "content": content, "model": answer.model}
    if "--stream" in sys.argv[3:]:
        result["stream"] = stream_chat(client, model)
    print(json.dumps(result))
    if model not in models or not content:
        sys.exit(f"expected {model!r} in {models} and a non-empty answer, got {content!r}")
    stream = result.get("stream")
    if stream is not None and (stream["chunks"] < 2 or not stream["text"] or stream["finish_reason"] is None):
        sys.exit(f"expected a stream of several chunks ending with a finish reason, got {stream}")


if __name__ == "__main__":
    main()
