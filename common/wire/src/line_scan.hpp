// line_scan.hpp: the vector search for the next CR or LF shared by the DATA decoder and
// the DATA form scan (internal to the wire layer).
#pragma once

#include <cstddef>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace xproxy::smtp::detail {

// The first CR or LF in [p+i, p+end), or end.
inline std::size_t find_line_end(const char* p, std::size_t i, std::size_t end) {
#if defined(__SSE2__)
    const __m128i cr = _mm_set1_epi8('\r');
    const __m128i lf = _mm_set1_epi8('\n');
    for (; end - i >= 16; i += 16) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
        const unsigned hits = static_cast<unsigned>(
            _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, cr), _mm_cmpeq_epi8(v, lf))));
        if (hits != 0) return i + static_cast<std::size_t>(__builtin_ctz(hits));
    }
#endif
    while (i < end && p[i] != '\r' && p[i] != '\n') ++i;
    return i;
}

}  // namespace xproxy::smtp::detail
