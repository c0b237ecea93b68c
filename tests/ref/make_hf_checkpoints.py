#!/usr/bin/python3
"""Writes tiny synthetic Hugging Face checkpoints for tern's converter tests.

Each checkpoint copies the tensor names, dtypes, shapes, packing and config.json keys of a real
model family (see tests/fixtures/hf/README.md for the facts and where they come from) at toy
sizes, so the converter can be tested without downloading gigabytes:

  bitnet_2b4t_packed  microsoft/bitnet-b1.58-2B-4T       BitNetForCausalLM, uint8 packed ternary
  bitnet_2b4t_bf16    microsoft/bitnet-b1.58-2B-4T-bf16  BitNetForCausalLM, bf16 latent weights
  1bitllm             1bitLLM/bitnet_b1_58-large         BitnetForCausalLM, fp16 latent weights
  llama               LlamaForCausalLM                   fp32, untied lm_head, two shards + index

Next to each checkpoint, expected.safetensors holds what a correct converter must produce, as
fp32, under tern's (llama.cpp's GGUF) tensor names, in the same row-major [out, in] shapes as the
HF tensors (GGUF lists the same dims reversed, ne0 first). Every expected value is exact: bf16 and
fp16 widen to fp32 exactly and a ternary code times a bf16 scale is exact in fp32.

Only numpy and the standard library; safetensors files are written by hand (struct + json) the
way the safetensors library writes them: u64 little-endian header length, compact JSON header
starting with "__metadata__": {"format": "pt"}, padded with spaces to a multiple of 8 bytes,
tensors laid out back to back sorted by (element size descending, name).

Deterministic: fixed seeds, sorted JSON, so rerunning reproduces the committed bytes.

Usage: /usr/bin/python3 tests/ref/make_hf_checkpoints.py [--out tests/fixtures/hf] [--check]
"""

import argparse
import json
import os
import struct
import sys
import tempfile

import numpy as np

# ---------------------------------------------------------------------------------------------
# safetensors writing

_DTYPES = {
    np.dtype(np.float32): "F32",
    np.dtype(np.float16): "F16",
    np.dtype(np.uint8): "U8",
    np.dtype(np.uint16): "BF16",  # bf16 is carried as its raw 16-bit patterns
    np.dtype(np.float64): "F64",
    np.dtype(np.int8): "I8",
    np.dtype(np.int32): "I32",
    np.dtype(np.int64): "I64",
}


def safetensors_bytes(tensors, metadata=None):
    """tensors: dict name -> numpy array (uint16 means bf16 bits). Returns the file's bytes."""
    order = sorted(tensors, key=lambda n: (-tensors[n].dtype.itemsize, n))
    header = {}
    if metadata is None:
        metadata = {"format": "pt"}
    header["__metadata__"] = metadata
    offset = 0
    blobs = []
    for name in order:
        a = np.ascontiguousarray(tensors[name])
        data = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {
            "dtype": _DTYPES[a.dtype],
            "shape": list(a.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def write_bytes(path, data):
    with open(path, "wb") as f:
        f.write(data)


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


# ---------------------------------------------------------------------------------------------
# number formats

def bf16_bits(x):
    """fp32 -> bf16 bit patterns, round to nearest even (no NaNs in our data)."""
    u = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def bf16_to_f32(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


# ---------------------------------------------------------------------------------------------
# BitNet 2B-4T weight packing (transformers/integrations/bitnet.py, pack_weights/unpack_weights):
# a [rows, cols] ternary matrix becomes a [rows/4, cols] uint8 matrix. With P = rows/4, the
# unpacked row r = i*P + p lives in bits 2i..2i+1 of packed row p, as the code (value + 1), so
# codes 0, 1, 2 mean -1, 0, +1 (3 never occurs). Rows are split into four contiguous blocks,
# NOT interleaved.

def pack_ternary_rows(q):
    rows, cols = q.shape
    assert rows % 4 == 0
    p = rows // 4
    codes = (q + 1).astype(np.uint8)
    packed = np.zeros((p, cols), dtype=np.uint8)
    for i in range(4):
        packed |= codes[i * p:(i + 1) * p] << (2 * i)
    return packed


def unpack_ternary_rows(packed):
    p, cols = packed.shape
    out = np.empty((4 * p, cols), dtype=np.int8)
    for i in range(4):
        out[i * p:(i + 1) * p] = ((packed >> (2 * i)) & 3).astype(np.int8) - 1
    return out


# ---------------------------------------------------------------------------------------------
# Checkpoints

LINEARS = [  # (HF module, tern/GGUF name)
    ("self_attn.q_proj", "attn_q"),
    ("self_attn.k_proj", "attn_k"),
    ("self_attn.v_proj", "attn_v"),
    ("self_attn.o_proj", "attn_output"),
    ("mlp.gate_proj", "ffn_gate"),
    ("mlp.up_proj", "ffn_up"),
    ("mlp.down_proj", "ffn_down"),
]


def linear_shapes(c):
    head_dim = c["hidden_size"] // c["num_attention_heads"]
    q = c["num_attention_heads"] * head_dim
    kv = c["num_key_value_heads"] * head_dim
    h, f = c["hidden_size"], c["intermediate_size"]
    return {
        "self_attn.q_proj": (q, h),
        "self_attn.k_proj": (kv, h),
        "self_attn.v_proj": (kv, h),
        "self_attn.o_proj": (h, q),
        "mlp.gate_proj": (f, h),
        "mlp.up_proj": (f, h),
        "mlp.down_proj": (h, f),
    }


def norm_values(rng, n):
    return (1.0 + 0.25 * rng.standard_normal(n)).astype(np.float32)


BITNET_2B4T_CONFIG = {
    # Keys and values of microsoft/bitnet-b1.58-2B-4T's config.json, with toy sizes.
    "architectures": ["BitNetForCausalLM"],
    "auto_map": {
        "AutoConfig": "configuration_bitnet.BitNetConfig",
        "AutoModelForCausalLM": "modeling_bitnet.BitNetForCausalLM",
    },
    "bos_token_id": 98,
    "eos_token_id": 99,
    "hidden_act": "relu2",
    "hidden_size": 16,
    "initializer_range": 0.02,
    "intermediate_size": 32,
    "max_position_embeddings": 64,
    "model_type": "bitnet",
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-05,
    "rope_theta": 500000.0,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "use_cache": True,
    "vocab_size": 100,
}


def bitnet_2b4t(packed, seed):
    """Both 2B-4T variants. Returns (config, hf tensors, expected tensors)."""
    c = json.loads(json.dumps(BITNET_2B4T_CONFIG))
    if packed:
        c["quantization_config"] = {"linear_class": "autobitlinear", "quant_method": "bitnet",
                                    "quantization_mode": "offline"}
    else:
        c["quantization_config"] = {"linear_class": "autobitlinear", "quant_method": "bitnet",
                                    "quantization_mode": "online"}
    rng = np.random.default_rng(seed)
    hf, exp = {}, {}

    def bf16_param(name, values, tern_name):
        bits = bf16_bits(values)
        hf[name] = bits
        exp[tern_name] = bf16_to_f32(bits)

    bf16_param("model.embed_tokens.weight",
               rng.standard_normal((c["vocab_size"], c["hidden_size"])).astype(np.float32),
               "token_embd.weight")
    bf16_param("model.norm.weight", norm_values(rng, c["hidden_size"]), "output_norm.weight")
    shapes = linear_shapes(c)
    for layer in range(c["num_hidden_layers"]):
        pre, blk = f"model.layers.{layer}.", f"blk.{layer}."
        bf16_param(pre + "input_layernorm.weight", norm_values(rng, c["hidden_size"]),
                   blk + "attn_norm.weight")
        bf16_param(pre + "post_attention_layernorm.weight", norm_values(rng, c["hidden_size"]),
                   blk + "ffn_norm.weight")
        bf16_param(pre + "self_attn.attn_sub_norm.weight", norm_values(rng, c["hidden_size"]),
                   blk + "attn_sub_norm.weight")
        bf16_param(pre + "mlp.ffn_sub_norm.weight", norm_values(rng, c["intermediate_size"]),
                   blk + "ffn_sub_norm.weight")
        for module, tern in LINEARS:
            shape = shapes[module]
            if packed:
                q = rng.integers(-1, 2, size=shape).astype(np.int8)
                scale_bits = bf16_bits(np.array([rng.uniform(0.5, 3.0)], dtype=np.float32))
                hf[pre + module + ".weight"] = pack_ternary_rows(q)
                hf[pre + module + ".weight_scale"] = scale_bits
                assert np.array_equal(unpack_ternary_rows(hf[pre + module + ".weight"]), q)
                # AutoBitLinear (offline): y = (x W_codes^T) * weight_scale.
                exp[blk + tern + ".weight"] = q.astype(np.float32) * bf16_to_f32(scale_bits)[0]
            else:
                bf16_param(pre + module + ".weight",
                           rng.standard_normal(shape).astype(np.float32),
                           blk + tern + ".weight")
    return c, hf, exp


def onebitllm(seed):
    """1bitLLM/bitnet_b1_58-large layout: fp16 latent weights, sub-norms inner_attn_ln and
    ffn_layernorm, multi-head attention (kv heads = heads), SiLU, tied embeddings."""
    c = {
        "architectures": ["BitnetForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "hidden_size": 16,
        "initializer_range": 0.02,
        "input_bits": 8,
        "intermediate_size": 32,
        "max_position_embeddings": 64,
        "model_type": "llama",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 4,
        "pad_token_id": 100,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": None,
        "rope_theta": 10000.0,
        "tie_word_embeddings": True,
        "torch_dtype": "float16",
        "use_cache": True,
        "vocab_size": 102,
        "weight_bits": 1,
    }
    rng = np.random.default_rng(seed)
    hf, exp = {}, {}

    def f16_param(name, values, tern_name):
        h = np.asarray(values, dtype=np.float32).astype(np.float16)
        hf[name] = h
        exp[tern_name] = h.astype(np.float32)

    f16_param("model.embed_tokens.weight",
              rng.standard_normal((c["vocab_size"], c["hidden_size"])),
              "token_embd.weight")
    f16_param("model.norm.weight", norm_values(rng, c["hidden_size"]), "output_norm.weight")
    shapes = linear_shapes(c)
    for layer in range(c["num_hidden_layers"]):
        pre, blk = f"model.layers.{layer}.", f"blk.{layer}."
        f16_param(pre + "input_layernorm.weight", norm_values(rng, c["hidden_size"]),
                  blk + "attn_norm.weight")
        f16_param(pre + "post_attention_layernorm.weight", norm_values(rng, c["hidden_size"]),
                  blk + "ffn_norm.weight")
        f16_param(pre + "self_attn.inner_attn_ln.weight", norm_values(rng, c["hidden_size"]),
                  blk + "attn_sub_norm.weight")
        f16_param(pre + "mlp.ffn_layernorm.weight", norm_values(rng, c["intermediate_size"]),
                  blk + "ffn_sub_norm.weight")
        for module, tern in LINEARS:
            f16_param(pre + module + ".weight", 0.1 * rng.standard_normal(shapes[module]),
                      blk + tern + ".weight")
    return c, hf, exp


def llama(seed):
    """Plain LlamaForCausalLM: fp32, GQA, untied lm_head, no sub-norms."""
    c = {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "hidden_size": 16,
        "initializer_range": 0.02,
        "intermediate_size": 32,
        "max_position_embeddings": 64,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "use_cache": True,
        "vocab_size": 64,
    }
    rng = np.random.default_rng(seed)
    hf, exp = {}, {}

    def f32_param(name, values, tern_name):
        a = np.asarray(values, dtype=np.float32)
        hf[name] = a
        exp[tern_name] = a.copy()

    f32_param("model.embed_tokens.weight",
              rng.standard_normal((c["vocab_size"], c["hidden_size"])), "token_embd.weight")
    f32_param("model.norm.weight", norm_values(rng, c["hidden_size"]), "output_norm.weight")
    f32_param("lm_head.weight", 0.2 * rng.standard_normal((c["vocab_size"], c["hidden_size"])),
              "output.weight")
    shapes = linear_shapes(c)
    for layer in range(c["num_hidden_layers"]):
        pre, blk = f"model.layers.{layer}.", f"blk.{layer}."
        f32_param(pre + "input_layernorm.weight", norm_values(rng, c["hidden_size"]),
                  blk + "attn_norm.weight")
        f32_param(pre + "post_attention_layernorm.weight", norm_values(rng, c["hidden_size"]),
                  blk + "ffn_norm.weight")
        for module, tern in LINEARS:
            f32_param(pre + module + ".weight", 0.2 * rng.standard_normal(shapes[module]),
                      blk + tern + ".weight")
    return c, hf, exp


def write_checkpoint(root, name, config, hf, exp, shards=1):
    d = os.path.join(root, name)
    os.makedirs(d, exist_ok=True)
    write_json(os.path.join(d, "config.json"), config)
    if shards == 1:
        write_bytes(os.path.join(d, "model.safetensors"), safetensors_bytes(hf))
    else:
        # HF shards by cumulative size in module order; layer 0 + embeddings go to the first
        # shard, the rest to the second, like a real multi-file Llama checkpoint.
        names = sorted(hf)
        first = [n for n in names if n.startswith(("model.embed_tokens", "model.layers.0."))]
        parts = [first, [n for n in names if n not in first]]
        assert shards == 2
        weight_map, total = {}, 0
        for i, part in enumerate(parts):
            fname = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
            write_bytes(os.path.join(d, fname), safetensors_bytes({n: hf[n] for n in part}))
            for n in part:
                weight_map[n] = fname
                total += hf[n].nbytes
        write_json(os.path.join(d, "model.safetensors.index.json"),
                   {"metadata": {"total_size": total}, "weight_map": weight_map})
    write_bytes(os.path.join(d, "expected.safetensors"),
                safetensors_bytes(exp, metadata={"format": "tern-expected", "source": name}))


def generate(root):
    write_checkpoint(root, "bitnet_2b4t_packed", *bitnet_2b4t(packed=True, seed=2025))
    write_checkpoint(root, "bitnet_2b4t_bf16", *bitnet_2b4t(packed=False, seed=2026))
    write_checkpoint(root, "1bitllm", *onebitllm(seed=158))
    write_checkpoint(root, "llama", *llama(seed=7), shards=2)


def tree_bytes(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            if f == "README.md":
                continue
            p = os.path.join(dirpath, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = fh.read()
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default_out = os.path.normpath(os.path.join(here, "..", "fixtures", "hf"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=default_out)
    ap.add_argument("--check", action="store_true",
                    help="regenerate into a temporary directory and compare with --out")
    args = ap.parse_args()
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            generate(tmp)
            want, have = tree_bytes(tmp), tree_bytes(args.out)
            bad = sorted(set(want) ^ set(have)) + sorted(
                k for k in set(want) & set(have) if want[k] != have[k])
            if bad:
                print("differs: " + ", ".join(bad))
                return 1
            print(f"{len(want)} files match")
            return 0
    generate(args.out)
    total = sum(len(b) for b in tree_bytes(args.out).values())
    print(f"wrote {args.out} ({total} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
