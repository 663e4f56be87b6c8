#include "kernels/decode_shaped.h"

namespace herd::kernels {
namespace {

thread_local bool g_decode_shaped = false;

}  // namespace

DecodeShaped::DecodeShaped(bool on) : before_(g_decode_shaped) {
  g_decode_shaped = before_ || on;
}

DecodeShaped::~DecodeShaped() {
  g_decode_shaped = before_;
}

bool decode_shaped() {
  return g_decode_shaped;
}

}  // namespace herd::kernels
