"""Talk to a Serve endpoint with the official OpenAI client, as a user would.

    python openai_check.py BASE_URL MODEL

Lists the models, asks for one chat completion and prints a JSON line with
what came back. Exits non-zero when the model is not listed or the answer is
empty.
"""

import json
import sys

from openai import OpenAI


def main():
    base_url, model = sys.argv[1], sys.argv[2]
    client = OpenAI(base_url=base_url, api_key="unused", timeout=60, max_retries=2)
    models = sorted(m.id for m in client.models.list())
    answer = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "ping from the e2e test"}], max_tokens=16)
    content = answer.choices[0].message.content or ""
    print(json.dumps({"models": models, "content": content, "model": answer.model}))
    if model not in models or not content:
        sys.exit(f"expected {model!r} in {models} and a non-empty answer, got {content!r}")


if __name__ == "__main__":
    main()
