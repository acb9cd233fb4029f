// fuzz_ldap_sync_codec: the RFC 4533 values an LDAP server sends (sync state control,
// sync info message, sync done control) decoded from arbitrary bytes: no crash or read
// past the input; every UUID accepted is 16 bytes; a cookie taken from the input is
// encoded into a sync request that is well-formed BER.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <xproxy/ldap/ldap_sync_codec.hpp>

using namespace xproxy;

namespace {
void check(bool ok) {
    if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    if (const auto s = decode_sync_state(bytes)) check(s->uuid.size() == 16);
    if (const auto i = decode_sync_info(bytes))
        for (const auto& u : i->uuids) check(u.size() == 16);
    (void)decode_sync_done(bytes);
    const std::string request = encode_sync_request(std::string(bytes.substr(0, 256)));
    check(request.size() >= 5 && static_cast<unsigned char>(request[0]) == 0x30);
    return 0;
}
