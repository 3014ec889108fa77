"""Writes a tiny random-weight llama-architecture GGUF for engine tests.

The vocabulary is printable ASCII with a GPT-2-style byte-level BPE (so every generated token
decodes to valid UTF-8) and the chat template is ChatML. llama.cpp's llama-server loads it in
well under a second; the text is gibberish, the engine behaviour (tokenisation, batching, KV
cache, streaming, usage) is real. Needs the PyPI packages `gguf` and `numpy`.

Usage: make_tiny_gguf.py OUT [n_embd]
"""
import sys

import gguf
import numpy as np


def main() -> None:
    out = sys.argv[1] if len(sys.argv) > 1 else "tiny-llama.gguf"
    n_embd = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    n_layer, n_head, n_kv, n_ff, ctx = 2, 4, 2, 128, 4096
    rng = np.random.default_rng(0)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    chars = [chr(c) for c in range(33, 127)] + ["\u0120", "\u010a"]  # byte-level space and newline
    words = ["\u0120the", "\u0120a", "\u0120hello", "\u0120world", "\u0120gateway", "\u0120token",
             "\u0120stream", "\u0120test", "\u0120llama", "\u0120model"]
    tokens = specials + chars
    merges = []
    for w in words:
        acc = w[0]
        for ch in w[1:]:
            merges.append(f"{acc} {ch}")
            acc += ch
            if acc not in tokens:
                tokens.append(acc)
    ttype = [gguf.TokenType.CONTROL] * len(specials) + [gguf.TokenType.NORMAL] * (len(tokens) - len(specials))

    w = gguf.GGUFWriter(out, "llama")
    w.add_name("tiny-random-llama")
    w.add_context_length(ctx)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_rope_dimension_count(n_embd // n_head)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_vocab_size(len(tokens))
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(ttype)
    w.add_token_merges(merges)
    w.add_bos_token_id(0)
    w.add_eos_token_id(2)
    w.add_add_bos_token(False)
    w.add_chat_template(
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
        "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    )

    def rand(name, *shape, scale=0.02):
        w.add_tensor(name, (rng.standard_normal(shape) * scale).astype(np.float32))

    hd = n_embd // n_head
    rand("token_embd.weight", len(tokens), n_embd, scale=1.0)
    w.add_tensor("output_norm.weight", np.ones(n_embd, np.float32))
    rand("output.weight", len(tokens), n_embd, scale=1.0)
    for i in range(n_layer):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(n_embd, np.float32))
        rand(f"blk.{i}.attn_q.weight", n_head * hd, n_embd)
        rand(f"blk.{i}.attn_k.weight", n_kv * hd, n_embd)
        rand(f"blk.{i}.attn_v.weight", n_kv * hd, n_embd)
        rand(f"blk.{i}.attn_output.weight", n_embd, n_head * hd)
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(n_embd, np.float32))
        rand(f"blk.{i}.ffn_gate.weight", n_ff, n_embd)
        rand(f"blk.{i}.ffn_up.weight", n_ff, n_embd)
        rand(f"blk.{i}.ffn_down.weight", n_embd, n_ff)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(out, "vocab", len(tokens), "merges", len(merges))


if __name__ == "__main__":
    main()
