"""Ray Serve LLM hooks of ray-compose (LLMConfig.callback_config.callback_class).

SkipEmptyNodeInit: Serve LLM starts every replica with one task per node of
its placement group that "downloads" the model (ray.llm's initialize_node).
Without a cloud mirror (a path on the hosts, or a Hugging Face id, which vLLM
fetches itself) the task only returns the model id, yet it costs a new
worker process that imports torch and vLLM: 4-14 s of a replica's start on
a CPU core. This callback skips it then, and keeps it for cloud sources.

Ray 2.60 has the callback interface (LLMConfig.callback_config) only under
ray.llm._internal; the pinned Ray is what this file is written against.
"""

import os

import torch
from ray.llm._internal.common.callbacks.base import CallbackBase
from ray.llm._internal.common.utils.cloud_utils import is_remote_path


class SkipEmptyNodeInit(CallbackBase):
    def on_before_node_init(self) -> None:
        engine_config = self.llm_config.get_engine_config()
        if engine_config.mirror_config is None and not is_remote_path(engine_config.actual_hf_model_id):
            # What the skipped task would have done besides returning the model id.
            os.makedirs(os.path.join(torch.hub._get_torch_home(), "kernels"), exist_ok=True)
            self.ctx.run_init_node = False
