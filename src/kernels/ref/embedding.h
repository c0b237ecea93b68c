// Token embedding lookup, scalar reference (fp32 and fp64).
//
// table [vocab, dim]; tokens must already be validated (< vocab): out-of-range
// ids are a bug here and hit CHECK. Backward scatters rows in token order, so
// repeated tokens accumulate deterministically. Forward is threaded; backward
// runs on the caller's thread.
#pragma once

#include <cstdint>

namespace tern::ref {

// out[n, dim] = table[tokens[i], :]
template <typename T>
void embedding_forward(T* out, const T* table, const int32_t* tokens, int64_t n, int64_t vocab,
                       int64_t dim);

// dtable[tokens[i], :] += dout[i, :]
template <typename T>
void embedding_backward(T* dtable, const T* dout, const int32_t* tokens, int64_t n, int64_t vocab,
                        int64_t dim);

}  // namespace tern::ref
