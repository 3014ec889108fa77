"""Writes a sentence-transformers BERT (config.json + model.safetensors, as
scripts/install-embeddings.sh installs all-MiniLM-L6-v2) as an ONNX graph for onnxruntime, with the
weights unchanged (f32): token ids and attention mask in, each text's mean-pooled, unit-length
vector out, as sentence-transformers and tollgate's candle path (src/cache/local.rs) compute it.
Built from the weights with the `onnx` package (no torch).

    python scripts/export-onnx.py MODEL_DIR OUT.onnx
"""
import json
import sys

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh
from safetensors.numpy import load_file

src, out = sys.argv[1], sys.argv[2]
cfg = json.load(open(f"{src}/config.json"))
if cfg.get("hidden_act", "gelu") != "gelu" or cfg.get("position_embedding_type", "absolute") != "absolute":
    sys.exit(f"{src}: only BERT with GELU and absolute positions is supported")
weights = load_file(f"{src}/model.safetensors")
prefix = "" if "embeddings.word_embeddings.weight" in weights else "bert."
hidden, heads = cfg["hidden_size"], cfg["num_attention_heads"]
eps = cfg["layer_norm_eps"]
inits, nodes = [], []


def const(name, arr):
    inits.append(nh.from_array(np.asarray(arr), name))
    return name


def op(kind, inputs, **attrs):
    name = f"{kind}_{len(nodes)}"
    nodes.append(h.make_node(kind, inputs, [name], **attrs))
    return name


def w(key):
    return weights[prefix + key].astype(np.float32)


def layer_norm(x, key):
    return op("LayerNormalization", [x, const(key + ".w", w(key + ".weight")), const(key + ".b", w(key + ".bias"))],
              axis=-1, epsilon=eps)


def dense(x, key):
    return op("Add", [op("MatMul", [x, const(key + ".wt", w(key + ".weight").T.copy())]), const(key + ".b", w(key + ".bias"))])


ids, mask = "input_ids", "attention_mask"
tokens = op("Squeeze", [op("Shape", [ids], start=1, end=2), const("axis0", np.array([0], np.int64))])
positions = op("Range", [const("zero", np.array(0, np.int64)), tokens, const("one", np.array(1, np.int64))])
x = op("Add", [op("Gather", [const("words", w("embeddings.word_embeddings.weight")), ids]),
               op("Gather", [const("positions", w("embeddings.position_embeddings.weight")), positions])])
x = op("Add", [x, const("segment0", w("embeddings.token_type_embeddings.weight")[0])])
x = layer_norm(x, "embeddings.LayerNorm")
maskf = op("Cast", [mask], to=T.FLOAT)
# 0 on real tokens, -1e9 on padding, broadcast over heads and queries (as src/cache/local.rs).
pad = op("Unsqueeze", [op("Mul", [op("Sub", [maskf, const("onef", np.array(1.0, np.float32))]),
                                  const("big", np.array(1e9, np.float32))]), const("axes12", np.array([1, 2], np.int64))])
split = const("split_heads", np.array([0, -1, heads, hidden // heads], np.int64))
join = const("join_heads", np.array([0, -1, hidden], np.int64))
scale = const("scale", np.array(np.sqrt(hidden // heads), np.float32))
half, root2 = const("half", np.array(0.5, np.float32)), const("root2", np.array(np.sqrt(2.0), np.float32))
for i in range(cfg["num_hidden_layers"]):
    key = f"encoder.layer.{i}."

    def by_head(t):
        return op("Transpose", [op("Reshape", [t, split])], perm=[0, 2, 1, 3])

    q, k, v = (by_head(dense(x, key + "attention.self." + n)) for n in ("query", "key", "value"))
    scores = op("Div", [op("MatMul", [q, op("Transpose", [k], perm=[0, 1, 3, 2])]), scale])
    probs = op("Softmax", [op("Add", [scores, pad])], axis=-1)
    context = op("Reshape", [op("Transpose", [op("MatMul", [probs, v])], perm=[0, 2, 1, 3]), join])
    x = layer_norm(op("Add", [dense(context, key + "attention.output.dense"), x]), key + "attention.output.LayerNorm")
    up = dense(x, key + "intermediate.dense")
    # GELU with erf, as BERT's "gelu".
    up = op("Mul", [op("Mul", [up, half]), op("Add", [op("Erf", [op("Div", [up, root2])]), const(f"one{i}", np.array(1.0, np.float32))])])
    x = layer_norm(op("Add", [dense(up, key + "output.dense"), x]), key + "output.LayerNorm")
m = op("Unsqueeze", [maskf, const("axis2", np.array([2], np.int64))])
axis1 = const("axis1", np.array([1], np.int64))
pooled = op("Div", [op("ReduceSum", [op("Mul", [x, m]), axis1], keepdims=0), op("ReduceSum", [m, axis1], keepdims=0)])
nodes.append(h.make_node("LpNormalization", [pooled], ["embedding"], axis=-1, p=2))
graph = h.make_graph(
    nodes, "sentence_embedding",
    [h.make_tensor_value_info(ids, T.INT64, ["batch", "tokens"]), h.make_tensor_value_info(mask, T.INT64, ["batch", "tokens"])],
    [h.make_tensor_value_info("embedding", T.FLOAT, ["batch", hidden])], inits)
model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, out)
