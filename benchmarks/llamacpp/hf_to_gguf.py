#!/usr/bin/env python3
"""Writes a llama-architecture GGUF (F16) from the folder `qvlm synth --bench NAME` writes, with llama.cpp's own
gguf-py (put <llama.cpp>/gguf-py on PYTHONPATH).

The input is a Hugging Face LlamaForCausalLM folder: config.json and one FP16 model.safetensors. Tensors are read
through a memory map and written one at a time (a 13.5 GB model needs a few hundred MB of memory), renamed to
llama.cpp's names, q_proj/k_proj rows permuted from HF's rotate-half RoPE layout to llama.cpp's interleaved one (as
convert_hf_to_gguf.py does), RMSNorm weights as F32 (as convert_hf_to_gguf.py writes 1-D tensors). The tokenizer
is minimal but complete for llama.cpp's SPM loader: <unk>, <s>, </s>, the 256 byte tokens and filler pieces up to
vocab_size (llama-bench feeds random token ids and never tokenizes text).

Usage: hf_to_gguf.py HF_DIR OUT.gguf
"""
import json
import os
import struct
import sys
from pathlib import Path

import numpy as np

try:
    import gguf
except ImportError:
    sys.exit("hf_to_gguf.py: error: gguf-py not found: put <llama.cpp checkout>/gguf-py on PYTHONPATH")


def fail(msg):
    print(f"hf_to_gguf.py: error: {msg}", file=sys.stderr)
    sys.exit(2)


def read_safetensors(path):
    """{name: read-only numpy memmap} of an FP16 safetensors file."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if n > 100_000_000:
            fail(f"{path}: header of {n} bytes is not a safetensors header")
        header = json.loads(f.read(n))
    base = 8 + n
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if t["dtype"] != "F16":
            fail(f"{path}: tensor {name} is {t['dtype']}, expected F16")
        a, b = t["data_offsets"]
        shape = tuple(t["shape"])
        if b - a != 2 * int(np.prod(shape)):
            fail(f"{path}: tensor {name}: {b - a} bytes for shape {shape}")
        out[name] = np.memmap(path, dtype=np.float16, mode="r", offset=base + a, shape=shape)
    return out


def permute(w, n_head):
    # HF rotate-half rows (two halves per head) -> llama.cpp interleaved pairs, as convert_hf_to_gguf.py's permute
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def main():
    if len(sys.argv) != 3:
        fail("usage: hf_to_gguf.py HF_DIR OUT.gguf")
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    try:
        cfg = json.loads((src / "config.json").read_text())
    except (OSError, ValueError) as e:
        fail(f"{src / 'config.json'}: {e}")
    if cfg.get("model_type") != "llama":
        fail(f"{src / 'config.json'}: model_type {cfg.get('model_type')!r}, expected 'llama'")
    H, L = cfg["hidden_size"], cfg["num_hidden_layers"]
    nh, nkv, V = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["vocab_size"]
    hd = cfg.get("head_dim", H // nh)
    st = read_safetensors(src / "model.safetensors")

    names = [("token_embd.weight", "model.embed_tokens.weight", None)]
    for i in range(L):
        p, q = f"blk.{i}.", f"model.layers.{i}."
        names += [
            (p + "attn_norm.weight", q + "input_layernorm.weight", None),
            (p + "attn_q.weight", q + "self_attn.q_proj.weight", nh),
            (p + "attn_k.weight", q + "self_attn.k_proj.weight", nkv),
            (p + "attn_v.weight", q + "self_attn.v_proj.weight", None),
            (p + "attn_output.weight", q + "self_attn.o_proj.weight", None),
            (p + "ffn_norm.weight", q + "post_attention_layernorm.weight", None),
            (p + "ffn_gate.weight", q + "mlp.gate_proj.weight", None),
            (p + "ffn_up.weight", q + "mlp.up_proj.weight", None),
            (p + "ffn_down.weight", q + "mlp.down_proj.weight", None),
        ]
    names += [("output_norm.weight", "model.norm.weight", None), ("output.weight", "lm_head.weight", None)]
    for _, hf, _ in names:
        if hf not in st:
            fail(f"{src / 'model.safetensors'}: no tensor {hf}")

    tmp = out.with_name(out.name + ".tmp")
    w = gguf.GGUFWriter(tmp, "llama")
    w.add_name(f"qvlm synthetic {src.name}")
    w.add_context_length(cfg.get("max_position_embeddings", 2048))
    w.add_embedding_length(H)
    w.add_block_count(L)
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_rope_dimension_count(hd)
    w.add_head_count(nh)
    w.add_head_count_kv(nkv)
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_freq_base(cfg.get("rope_theta", 10000.0))
    w.add_vocab_size(V)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    # minimal SPM vocabulary: control tokens, byte fallback tokens (the loader looks up <0x0A>), filler pieces
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL] + [gguf.TokenType.BYTE] * 256
    if V < len(tokens):
        fail(f"vocab_size {V} is smaller than the {len(tokens)} special and byte tokens")
    tokens += [f"\u2581t{i}" for i in range(V - len(tokens))]
    types += [gguf.TokenType.NORMAL] * (V - len(types))
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * 3 + [0.0] * 256 + [-float(i) for i in range(V - 259)])
    w.add_token_types(types)
    w.add_bos_token_id(cfg.get("bos_token_id", 1))
    w.add_eos_token_id(cfg.get("eos_token_id", 2))
    w.add_unk_token_id(0)

    total = 0
    for gg, hf, _ in names:
        a = st[hf]
        dt = np.float32 if a.ndim == 1 else np.float16
        nbytes = a.size * np.dtype(dt).itemsize
        w.add_tensor_info(gg, a.shape, np.dtype(dt), nbytes)
        total += nbytes
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for k, (gg, hf, heads) in enumerate(names):
        a = st[hf]
        if a.ndim == 1:
            a = np.asarray(a, dtype=np.float32)
        elif heads is not None:
            a = permute(np.asarray(a), heads)
        else:
            a = np.asarray(a)  # still the memory map: tofile streams it from the page cache
        w.write_tensor_data(a)
        if k % 20 == 0:
            print(f"  {out.name}: {k + 1}/{len(names)} tensors", file=sys.stderr, flush=True)
    w.close()
    os.replace(tmp, out)
    print(f"wrote {out}: {total / 1e9:.2f} GB of F16 tensors", file=sys.stderr)


if __name__ == "__main__":
    main()
