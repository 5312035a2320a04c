"""A tiny OpenAI-compatible Serve application for CPU-only clusters.

An example of shipping your own application, and the tests' stand-in for
the vLLM engine where no GPU exists, so that the serving path (code
shipping, deploy, autoscaling, the OpenAI client) is proven end to end.
It answers /v1/models and /v1/chat/completions by echoing the last user
message, after an optional delay that makes load visible to the
autoscaler; with "stream": true, word by word as server-sent events, the
way vLLM streams.
"""

import asyncio
import time
import uuid

import json

from fastapi import FastAPI, HTTPException
from fastapi.responses import StreamingResponse
from ray import serve

api = FastAPI()


@serve.deployment(ray_actor_options={"num_cpus": 0.5})
@serve.ingress(api)
class OpenAIEcho:
    def __init__(self, model_id: str = "echo", delay_s: float = 0.0):
        self.model_id = model_id
        self.delay_s = float(delay_s)
        self.created = int(time.time())

    @api.get("/v1/models")
    def models(self):
        return {
            "object": "list",
            "data": [{"id": self.model_id, "object": "model",
                      "created": self.created, "owned_by": "ray-compose"}],
        }

    @api.post("/v1/chat/completions")
    async def chat(self, body: dict):
        if body.get("model") != self.model_id:
            raise HTTPException(404, f"model {body.get('model')!r} not found; "
                                     f"this endpoint serves {self.model_id!r}")
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        messages = body.get("messages") or []
        prompt = str(messages[-1].get("content", "")) if messages else ""
        text = f"echo: {prompt}"
        if body.get("stream"):
            return StreamingResponse(self.stream(text, len(prompt.split())), media_type="text/event-stream")
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model_id,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }],
            "usage": {"prompt_tokens": len(prompt.split()),
                      "completion_tokens": len(text.split()),
                      "total_tokens": len(prompt.split()) + len(text.split())},
        }


    async def stream(self, text: str, prompt_tokens: int):
        """The answer as chat.completion.chunk events, one word each, then usage and [DONE]."""
        cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        words = text.split(" ")

        def event(choices, usage=None):
            chunk = {"id": cid, "object": "chat.completion.chunk", "created": created,
                     "model": self.model_id, "choices": choices}
            if usage is not None:
                chunk["usage"] = usage
            return f"data: {json.dumps(chunk)}\n\n"

        yield event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        for i, word in enumerate(words):
            yield event([{"index": 0, "delta": {"content": word if i == 0 else " " + word}, "finish_reason": None}])
            await asyncio.sleep(0)
        yield event([{"index": 0, "delta": {}, "finish_reason": "stop"}])
        yield event([], {"prompt_tokens": prompt_tokens, "completion_tokens": len(words),
                         "total_tokens": prompt_tokens + len(words)})
        yield "data: [DONE]\n\n"


def app_builder(args: dict):
    """Serve application builder: `import_path: openai_echo:app_builder`."""
    return OpenAIEcho.bind(model_id=args.get("model_id", "echo"),
                           delay_s=args.get("delay_s", 0.0))
