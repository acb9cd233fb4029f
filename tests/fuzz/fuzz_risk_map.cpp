// fuzz_risk_map: RiskMap::parse on arbitrary text, checking its promises: no crash or
// read past the text; a refusal names the line; in an accepted map, every word of the
// input used as a client address or as a sender domain classifies without crashing,
// into one of the map's own classes.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <xproxy/policy/risk_map.hpp>

using namespace xproxy;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

void check_match(const RiskMap& m, const std::optional<RiskMatch>& r) {
    if (!r) return;
    const auto& cls = m.classes();
    check(!cls.empty() && r->risk_class >= &cls.front() && r->risk_class <= &cls.back());
    check(!r->matched.empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const auto m = RiskMap::parse(text);
    if (!m) {
        check(m.error().starts_with("line "));
        return 0;
    }
    std::size_t i = 0, words = 0;
    while (i < text.size() && words < 64) {
        while (i < text.size() && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n')) ++i;
        std::size_t j = i;
        while (j < text.size() && text[j] != ' ' && text[j] != '\t' && text[j] != '\n') ++j;
        const std::string_view w = text.substr(i, j - i);
        const std::size_t slash = w.find('/');
        const auto addr = IpAddress::parse(w.substr(0, slash));
        check_match(*m, m->classify(addr, std::string("x@") + std::string(w)));
        check_match(*m, m->classify(addr, ""));
        ++words;
        i = j;
    }
    return 0;
}
