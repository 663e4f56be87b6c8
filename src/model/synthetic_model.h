// Writes models with random weights and a real architecture: for tests (any size, any tensor
// type), benchmarks (a 1B-parameter Llama-3.2-shaped model) and the demo when no model is given.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "tensor/type.h"

namespace herd::gguf {
class Metadata;
}

namespace herd::model {

struct SyntheticSpec {
  std::string name = "synthetic-llama";
  int n_embd = 256;
  int n_layer = 2;
  int n_head = 4;
  int n_kv_head = 2;
  int n_ff = 768;
  int n_ctx = 2048;
  float rope_base = 10000.0f;
  // Type of every 2-D weight; 1-D norm weights stay F32 (as llama.cpp's quantizer does).
  tensor::Type type = tensor::Type::kF32;
  std::uint64_t seed = 1;
  // llama.cpp's Q4_K_M mix: Q4_K, with Q6_K for the output, and for attn_v / ffn_down in the
  // layers where llama.cpp spends more bits (first and last eighth, every third in between).
  bool q4_k_m_mix = false;
};

// Llama-3.2-1B's shape (embd 2048, 16 layers, 32 heads, 8 KV heads, ffn 8192).
SyntheticSpec llama_1b_spec(tensor::Type type);

// Progress: (tensors written, tensors total).
using SyntheticProgress = std::function<void(int, int)>;

// Writes a llama-architecture GGUF. The vocabulary is copied from `tokenizer_source`
// (tokenizer.* keys, e.g. stories260K's 512 tokens) when given, else a built-in byte-level
// SentencePiece vocabulary of 259 tokens is used. Throws herd::Error on I/O failure.
void write_synthetic_model(const SyntheticSpec& spec, const std::string& path,
                           const gguf::Metadata* tokenizer_source = nullptr,
                           const SyntheticProgress& progress = {});

}  // namespace herd::model
