"""Print this host's memory and the size of a model's weights, as JSON.

python3 host_memory.py MODEL_SOURCE -> {"mem_total": bytes, "weights": bytes}
A model source that is not a local directory (a Hugging Face id) weighs 0.
Symbolic links are followed: Hugging Face caches link to blobs.
"""
import json
import os
import sys

with open("/proc/meminfo") as meminfo:
    fields = dict(line.split(":", 1) for line in meminfo)
mem_total = int(fields["MemTotal"].split()[0]) * 1024
weights = 0
if os.path.isdir(sys.argv[1]):
    for root, _, files in os.walk(sys.argv[1], followlinks=True):
        for name in files:
            try:
                weights += os.stat(os.path.join(root, name)).st_size
            except OSError:
                pass
print(json.dumps({"mem_total": mem_total, "weights": weights}))
