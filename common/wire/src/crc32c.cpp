// crc32c.cpp: CRC32C with the SSE4.2 crc32 instruction when the CPU has it and a
// slicing-by-8 table otherwise. Both give identical results (tests check them against
// the RFC 3720 vectors and against each other).
#include <xproxy/wire/crc32c.hpp>

#include <array>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
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

__attribute__((target("sse4.2"))) std::uint32_t crc32c_hardware(const std::uint8_t* data, std::size_t size,
                                                                std::uint32_t crc) {
    std::uint64_t c = ~crc;
    while (size >= 8) {
        std::uint64_t v;
        std::memcpy(&v, data, 8);
        c = _mm_crc32_u64(c, v);
        data += 8;
        size -= 8;
    }
    auto c32 = static_cast<std::uint32_t>(c);
    if (size >= 4) {
        std::uint32_t v;
        std::memcpy(&v, data, 4);
        c32 = _mm_crc32_u32(c32, v);
        data += 4;
        size -= 4;
    }
    while (size-- > 0) c32 = _mm_crc32_u8(c32, *data++);
    return ~c32;
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

}  // namespace xproxy::pp
