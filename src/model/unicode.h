// UTF-8 helpers and GPT-2's byte-level alphabet, shared by the tokenizers.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace herd::model {

// Length of the UTF-8 sequence that starts with `lead` (1 for a stray continuation or an
// invalid lead byte, so that malformed text still advances one byte at a time).
std::size_t utf8_sequence_length(unsigned char lead);

// Decodes the code point at text[pos] and advances pos; U+FFFD for malformed or truncated input.
char32_t next_codepoint(std::string_view text, std::size_t& pos);

void append_utf8(std::string& out, char32_t codepoint);

// Whether `text` is well-formed UTF-8 (no stray, truncated or overlong sequences, no surrogates).
bool is_valid_utf8(std::string_view text);

// GPT-2 byte-level BPE (openai/gpt-2 encoder.py bytes_to_unicode): every byte gets a printable
// code point, so that merges never meet control characters or spaces. Printable Latin-1 bytes
// map to themselves; the 68 others go to U+0100.. in byte order.
char32_t byte_to_unicode(std::uint8_t byte);
// Inverse of byte_to_unicode; -1 when the code point is not in the byte-level alphabet.
int unicode_to_byte(char32_t codepoint);

// Every byte of `bytes` as its byte-level character, UTF-8 encoded.
std::string byte_level_encode(std::string_view bytes);
// Inverse of byte_level_encode. Characters outside the alphabet are kept as they are (added
// tokens of some vocabularies are stored as plain text).
std::string byte_level_decode(std::string_view text);

}  // namespace herd::model
