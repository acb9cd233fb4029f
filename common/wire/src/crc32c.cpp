// crc32c.cpp: CRC32C with the SSE4.2 crc32 instruction when the CPU has it (three
// interleaved chains joined with pclmulqdq when it has that too) and a slicing-by-8 table
// otherwise. All give identical results (tests check them against the RFC 3720 vectors and
// against each other).
#include <xproxy/wire/crc32c.hpp>

#include <array>
#include <cstring>

#include "proxy_internal.hpp"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace xproxy::pp {

namespace {

constexpr std::uint32_t kPoly = 0x82F63B78;  // Castagnoli polynomial, bit-reflected

using Tables = std::array<std::array<std::uint32_t, 256>, 8>;

constexpr Tables make_tables() {
    Tables t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
        std::uint32_t c = i;
        for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kPoly : c >> 1;
        t[0][i] = c;
    }
    for (std::size_t i = 0; i < 256; ++i)
        for (std::size_t s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFF];
    return t;
}

constexpr Tables kTables = make_tables();

std::uint32_t load_le32(const std::uint8_t* p) {
    return std::uint32_t{p[0]} | std::uint32_t{p[1]} << 8 | std::uint32_t{p[2]} << 16 | std::uint32_t{p[3]} << 24;
}

}  // namespace

std::uint32_t crc32c_portable(const std::uint8_t* data, std::size_t size, std::uint32_t crc) {
    std::uint32_t c = ~crc;
    while (size >= 8) {
        std::uint32_t lo = load_le32(data) ^ c;
        std::uint32_t hi = load_le32(data + 4);
        c = kTables[7][lo & 0xFF] ^ kTables[6][(lo >> 8) & 0xFF] ^ kTables[5][(lo >> 16) & 0xFF] ^
            kTables[4][lo >> 24] ^ kTables[3][hi & 0xFF] ^ kTables[2][(hi >> 8) & 0xFF] ^
            kTables[1][(hi >> 16) & 0xFF] ^ kTables[0][hi >> 24];
        data += 8;
        size -= 8;
    }
    while (size-- > 0) c = (c >> 8) ^ kTables[0][(c ^ *data++) & 0xFF];
    return ~c;
}

#if defined(__x86_64__)

namespace {

// Moving a CRC register over zero bytes is a multiplication by a power of x modulo the
// polynomial; pclmulqdq multiplies and the crc32 instruction reduces. With A and K as
// 32-bit reflected polynomials, crc32(0, clmul(A, K)) = A * K * x^33, so K = x^(64 l - 33)
// moves A over l zero qwords. kShift[l] holds that K for l = 1..2 * kMaxStream.
constexpr std::size_t kMaxStream = 128;  // qwords per stream in one 3-way block (1 KiB)

constexpr std::uint32_t times_x(std::uint32_t a) { return (a & 1) ? (a >> 1) ^ kPoly : a >> 1; }

constexpr std::array<std::uint32_t, 2 * kMaxStream + 1> kShift = [] {
    std::array<std::uint32_t, 2 * kMaxStream + 1> k{};
    std::uint32_t x = 1u << 31;  // x^0
    for (int i = 0; i < 31; ++i) x = times_x(x);
    k[1] = x;
    for (std::size_t l = 2; l < k.size(); ++l) {
        for (int i = 0; i < 64; ++i) x = times_x(x);
        k[l] = x;
    }
    return k;
}();

// Before dynamic initialisation these read false, which selects slower paths that give the
// same results.
const bool g_sse42 = (__builtin_cpu_init(), __builtin_cpu_supports("sse4.2"));
const bool g_clmul = g_sse42 && __builtin_cpu_supports("pclmul");

std::uint64_t load64(const std::uint8_t* p) {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}

// The register moved over data[0..size) (no pre/post inversion), one chain of crc32
// instructions: 3 cycles per qword of latency.
[[gnu::always_inline]] __attribute__((target("sse4.2"))) inline std::uint32_t run_serial(const std::uint8_t* data,
                                                                                         std::size_t size,
                                                                                         std::uint32_t reg) {
    std::uint64_t c = reg;
    for (; size >= 8; data += 8, size -= 8) c = _mm_crc32_u64(c, load64(data));
    auto c32 = static_cast<std::uint32_t>(c);
    if (size & 4) {
        std::uint32_t v;
        std::memcpy(&v, data, 4);
        c32 = _mm_crc32_u32(c32, v);
        data += 4;
    }
    if (size & 2) {
        std::uint16_t v;
        std::memcpy(&v, data, 2);
        c32 = _mm_crc32_u16(c32, v);
        data += 2;
    }
    if (size & 1) c32 = _mm_crc32_u8(c32, *data);
    return c32;
}

__attribute__((target("sse4.2,pclmul"))) inline std::uint32_t shift(std::uint32_t reg, std::uint32_t k) {
    const __m128i p = _mm_clmulepi64_si128(_mm_cvtsi32_si128(static_cast<int>(reg)),
                                           _mm_cvtsi32_si128(static_cast<int>(k)), 0);
    return static_cast<std::uint32_t>(_mm_crc32_u64(0, static_cast<std::uint64_t>(_mm_cvtsi128_si64(p))));
}

// As run_serial, but three independent chains over consecutive thirds of each block,
// joined with shift(): a header of 170 bytes takes about 30 cycles instead of 65.
[[gnu::always_inline]] __attribute__((target("sse4.2,pclmul"))) inline std::uint32_t run_3way(const std::uint8_t* data,
                                                                                              std::size_t size,
                                                                                              std::uint32_t reg) {
    std::size_t q = size / 8;
    while (q >= 6) {
        const std::size_t l = q / 3 < kMaxStream ? q / 3 : kMaxStream;
        std::uint64_t a = reg, b = 0, c = 0;
        const std::uint8_t* const end = data + 8 * l;
        for (const std::uint8_t* p = data; p != end; p += 8) {
            a = _mm_crc32_u64(a, load64(p));
            b = _mm_crc32_u64(b, load64(p + 8 * l));
            c = _mm_crc32_u64(c, load64(p + 16 * l));
        }
        reg = shift(static_cast<std::uint32_t>(a), kShift[2 * l]) ^ shift(static_cast<std::uint32_t>(b), kShift[l]) ^
              static_cast<std::uint32_t>(c);
        data += 24 * l;
        size -= 24 * l;
        q -= 3 * l;
    }
    return run_serial(data, size, reg);
}

__attribute__((target("sse4.2,pclmul"))) std::uint32_t header_crc_clmul(const std::uint8_t* header, std::size_t total,
                                                                        std::size_t crc_value) {
    std::uint32_t reg = run_3way(header, crc_value, ~0u);
    reg = _mm_crc32_u32(reg, 0);  // the CRC32C value itself, read as zero
    const std::size_t rest = total - crc_value - 4;
    return ~(rest == 0 ? reg : run_3way(header + crc_value + 4, rest, reg));  // usually the last TLV
}

__attribute__((target("sse4.2,pclmul"))) std::uint32_t crc32c_clmul(const std::uint8_t* data, std::size_t size,
                                                                    std::uint32_t crc) {
    return ~run_3way(data, size, ~crc);
}

}  // namespace

__attribute__((target("sse4.2"))) std::uint32_t crc32c_hardware(const std::uint8_t* data, std::size_t size,
                                                                std::uint32_t crc) {
    if (g_clmul) return crc32c_clmul(data, size, crc);
    return ~run_serial(data, size, ~crc);
}

bool crc32c_hardware_available() {
    static const bool has = __builtin_cpu_supports("sse4.2");
    return has;
}

#else

std::uint32_t crc32c_hardware(const std::uint8_t* data, std::size_t size, std::uint32_t crc) {
    return crc32c_portable(data, size, crc);
}

bool crc32c_hardware_available() { return false; }

#endif

std::uint32_t crc32c(const std::uint8_t* data, std::size_t size, std::uint32_t crc) {
    static const auto impl = crc32c_hardware_available() ? &crc32c_hardware : &crc32c_portable;
    return impl(data, size, crc);
}

namespace detail {

std::uint32_t header_crc(const std::uint8_t* header, std::size_t total, std::size_t crc_value) {
#if defined(__x86_64__)
    if (g_clmul) return header_crc_clmul(header, total, crc_value);
#endif
    static constexpr std::uint8_t kZero[4] = {};
    std::uint32_t c = crc32c(header, crc_value);
    c = crc32c(kZero, sizeof kZero, c);
    return crc32c(header + crc_value + 4, total - crc_value - 4, c);
}

}  // namespace detail

}  // namespace xproxy::pp
