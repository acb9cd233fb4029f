// crc32c.hpp: CRC32C (Castagnoli, RFC 3720 / RFC 4960 appendix B), the checksum of the
// PROXY v2 PP2_TYPE_CRC32C TLV. crc32c("123456789") == 0xE3069283.
//
// The `crc` argument continues a previous result, so crc32c(b, crc32c(a)) equals the CRC
// of a followed by b (pass 0 to start). crc32c() uses the SSE4.2 instruction when the CPU
// has it (checked once at run time) and a slicing-by-8 table otherwise; both are exported
// so that tests and benchmarks can check each against the other.
#pragma once

#include <cstddef>
#include <cstdint>

namespace xproxy::pp {

std::uint32_t crc32c(const std::uint8_t* data, std::size_t size, std::uint32_t crc = 0);

// The table implementation, on any CPU.
std::uint32_t crc32c_portable(const std::uint8_t* data, std::size_t size, std::uint32_t crc = 0);

// True when crc32c_hardware() may be called (x86-64 with SSE4.2).
bool crc32c_hardware_available();
// The SSE4.2 implementation (three interleaved chains when the CPU also has pclmulqdq);
// only call it when crc32c_hardware_available().
std::uint32_t crc32c_hardware(const std::uint8_t* data, std::size_t size, std::uint32_t crc = 0);

}  // namespace xproxy::pp
