#!/usr/bin/env python3
"""Make a tiny random-weight checkpoint of the Qwen3 architecture, for tests.

    make-test-checkpoint.py [--full-size] OUT_DIR

It writes what vLLM loads for `Qwen3ForCausalLM`, with no hub and in seconds:
config.json and generation_config.json, model.safetensors (random bf16
weights, about 0.3 MB) and a byte-level BPE tokenizer trained here, with
Qwen's special tokens and a Qwen3-style chat template. It answers with
random tokens, which is all a test of serving needs.

Needs numpy and tokenizers (both in the vllm-cpu image):
    docker run --rm -i -v OUT_DIR:/out -u 1000 IMAGE python - /out < scripts/make-test-checkpoint.py

The shapes are the smallest that vLLM's CPU attention takes: head_dim 32
(16 fails), 4 query and 2 key/value heads. With --full-size they are the real
Qwen3-0.6B's (28 layers, hidden 1024, vocab padded to 151936: 0.6 B
parameters, 1.2 GB, about a minute), so that a benchmark computes per token
what the real model would. The same inputs always give the same files.
"""
import json
import os
import struct
import sys

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>",
           "<tool_call>", "</tool_call>"]
# Qwen3's chat turns: system/user/assistant in <|im_start|>role ... <|im_end|>,
# and the thinking switch (enable_thinking=False gives an empty <think> block).
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + (message['content'] if message['content'] is string else '') + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}"
)
SHAPE = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32}
# Qwen/Qwen3-0.6B's config.json.
FULL_SHAPE = {"hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 28,
              "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128}
FULL_VOCAB = 151936


def corpus():
    """Deterministic English-like text, enough for a few hundred merges."""
    words = ("the a cluster node worker head replica model request token stream serve ray vllm "
             "hello world say in five words quick brown fox jumps over lazy dog what is how are you "
             "one two three four five six seven eight nine ten answer question test load scale up down "
             "latency throughput memory cpu gpu engine batch prompt output input first time").split()
    rng = np.random.default_rng(0)
    for _ in range(4000):
        yield " ".join(words[i] for i in rng.integers(0, len(words), 12)) + "."


def tokenizer(out):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1024, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus(), trainer)
    tok.save(os.path.join(out, "tokenizer.json"))
    ids = {t: tok.token_to_id(t) for t in SPECIAL}
    added = {str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                      "single_word": False, "special": True} for t, i in ids.items()}
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 40960,
                   "bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
                   "unk_token": None, "clean_up_tokenization_spaces": False, "add_bos_token": False,
                   "added_tokens_decoder": added, "chat_template": CHAT_TEMPLATE}, f, indent=2)
    return tok.get_vocab_size(), ids


def bf16(array):
    """float32 -> bfloat16 bytes (round to nearest even), as safetensors stores them."""
    bits = np.ascontiguousarray(array, dtype=np.float32).view(np.uint32)
    bits = bits + 0x7FFF + ((bits >> 16) & 1)
    return (bits >> 16).astype("<u2").tobytes()


def weights(out, vocab):
    h, i, hd = SHAPE["hidden_size"], SHAPE["intermediate_size"], SHAPE["head_dim"]
    q, kv = SHAPE["num_attention_heads"] * hd, SHAPE["num_key_value_heads"] * hd
    shapes = {"model.embed_tokens.weight": (vocab, h), "model.norm.weight": (h,)}
    for n in range(SHAPE["num_hidden_layers"]):
        p = f"model.layers.{n}."
        shapes.update({p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,),
                       p + "self_attn.q_proj.weight": (q, h), p + "self_attn.k_proj.weight": (kv, h),
                       p + "self_attn.v_proj.weight": (kv, h), p + "self_attn.o_proj.weight": (h, q),
                       p + "self_attn.q_norm.weight": (hd,), p + "self_attn.k_norm.weight": (hd,),
                       p + "mlp.gate_proj.weight": (i, h), p + "mlp.up_proj.weight": (i, h),
                       p + "mlp.down_proj.weight": (h, i)})
    rng = np.random.default_rng(1)
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name in sorted(shapes):
        size = 2 * int(np.prod(shapes[name]))
        header[name] = {"dtype": "BF16", "shape": list(shapes[name]), "data_offsets": [offset, offset + size]}
        offset += size
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    with open(os.path.join(out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head)
        # One tensor at a time: the full size would not fit twice in a small machine's memory.
        for name in sorted(shapes):
            shape = shapes[name]
            # Norms start at one, everything else small and random.
            f.write(bf16(np.ones(shape) if len(shape) == 1
                         else rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)))


def main():
    args = sys.argv[1:]
    full = "--full-size" in args
    args = [a for a in args if a != "--full-size"]
    if len(args) != 1:
        sys.exit(__doc__)
    out = args[0]
    if full:
        SHAPE.update(FULL_SHAPE)
    os.makedirs(out, exist_ok=True)
    tokens, ids = tokenizer(out)
    # Padded like real checkpoints; >= the tokenizer's size.
    vocab = FULL_VOCAB if full else -(-tokens // 64) * 64
    config = {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", **SHAPE,
              "vocab_size": vocab, "max_position_embeddings": 40960, "rope_theta": 1000000,
              "rms_norm_eps": 1e-06, "hidden_act": "silu", "attention_bias": False,
              "attention_dropout": 0.0, "tie_word_embeddings": True, "torch_dtype": "bfloat16",
              "use_cache": True, "use_sliding_window": False, "sliding_window": None,
              "max_window_layers": SHAPE["num_hidden_layers"], "initializer_range": 0.02,
              "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"]}
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(out, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": ids["<|endoftext|>"], "eos_token_id": [ids["<|im_end|>"], ids["<|endoftext|>"]],
                   "pad_token_id": ids["<|endoftext|>"]}, f, indent=2)
    weights(out, vocab)
    print(f"{out}: {'full-size' if full else 'tiny'} Qwen3 checkpoint, vocab {vocab} ({tokens} tokens), "
          f"{os.path.getsize(os.path.join(out, 'model.safetensors'))} bytes of weights")


if __name__ == "__main__":
    main()
