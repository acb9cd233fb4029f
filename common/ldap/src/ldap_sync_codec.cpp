// ldap_sync_codec.cpp: RFC 4533 values with liblber (ldap_sync_codec.hpp). ber_init()
// copies the input into a BerElement of its own.
#include <lber.h>
#include <ldap.h>

#include <xproxy/ldap/ldap_sync_codec.hpp>

namespace xproxy {

namespace {

constexpr std::size_t kUuidSize = 16;

// A BerElement over a private copy of `value`.
class Reader {
public:
    explicit Reader(std::string_view value) : bytes_(value) {
        if (bytes_.empty()) return;  // liblber has no buffer to read then: refuse up front
        berval bv{static_cast<ber_len_t>(bytes_.size()), bytes_.data()};
        ber_ = ber_init(&bv);
    }
    ~Reader() {
        if (ber_) ber_free(ber_, 1);
    }
    Reader(const Reader&) = delete;
    Reader& operator=(const Reader&) = delete;
    bool ok() const { return ber_ != nullptr; }
    BerElement* ber() { return ber_; }
    ber_tag_t peek() {
        ber_len_t len = 0;
        return ber_peek_tag(ber(), &len);
    }
    bool octets(std::string& out) {
        berval bv{};
        if (ber_scanf(ber(), "m", &bv) == LBER_ERROR) return false;
        out.assign(bv.bv_val ? bv.bv_val : "", bv.bv_len);
        return true;
    }
    bool boolean(bool& out) {
        ber_int_t b = 0;
        if (ber_scanf(ber(), "b", &b) == LBER_ERROR) return false;
        out = b != 0;
        return true;
    }
    bool open() { return ber_scanf(ber(), "{") != LBER_ERROR; }
    bool close() { return ber_scanf(ber(), "}") != LBER_ERROR; }
    // Nothing left after the value.
    bool at_end() {
        ber_len_t len = 0;
        return ber_peek_tag(ber(), &len) == LBER_DEFAULT;
    }
    bool optional_cookie(std::optional<std::string>& cookie) {
        if (peek() != LDAP_TAG_SYNC_COOKIE) return true;
        std::string c;
        if (!octets(c)) return false;
        cookie = std::move(c);
        return true;
    }

private:
    std::string bytes_;
    BerElement* ber_ = nullptr;
};

}  // namespace

std::optional<SyncStateValue> decode_sync_state(std::string_view value) {
    Reader r(value);
    if (!r.ok()) return std::nullopt;
    SyncStateValue out;
    ber_int_t state = -1;
    if (!r.open()) return std::nullopt;
    if (ber_scanf(r.ber(), "e", &state) == LBER_ERROR || state < 0 || state > 3) return std::nullopt;
    out.state = static_cast<SyncState>(state);
    if (!r.octets(out.uuid) || out.uuid.size() != kUuidSize) return std::nullopt;
    if (!r.optional_cookie(out.cookie) || !r.close() || !r.at_end()) return std::nullopt;
    return out;
}

std::optional<SyncInfoValue> decode_sync_info(std::string_view value) {
    Reader r(value);
    if (!r.ok()) return std::nullopt;
    SyncInfoValue out;
    const ber_tag_t tag = r.peek();
    if (tag == LDAP_TAG_SYNC_NEW_COOKIE) {
        std::string c;
        if (!r.octets(c) || !r.at_end()) return std::nullopt;
        out.kind = SyncInfoValue::Kind::new_cookie;
        out.cookie = std::move(c);
        return out;
    }
    if (tag == LDAP_TAG_SYNC_REFRESH_DELETE || tag == LDAP_TAG_SYNC_REFRESH_PRESENT) {
        out.kind = tag == LDAP_TAG_SYNC_REFRESH_DELETE ? SyncInfoValue::Kind::refresh_delete
                                                       : SyncInfoValue::Kind::refresh_present;
        if (!r.open() || !r.optional_cookie(out.cookie)) return std::nullopt;
        if (r.peek() == LDAP_TAG_REFRESHDONE && !r.boolean(out.refresh_done)) return std::nullopt;
        if (!r.close() || !r.at_end()) return std::nullopt;
        return out;
    }
    if (tag == LDAP_TAG_SYNC_ID_SET) {
        out.kind = SyncInfoValue::Kind::id_set;
        if (!r.open() || !r.optional_cookie(out.cookie)) return std::nullopt;
        if (r.peek() == LDAP_TAG_REFRESHDELETES && !r.boolean(out.refresh_deletes)) return std::nullopt;
        ber_len_t len = 0;
        char* last = nullptr;
        if (r.peek() != LBER_SET) return std::nullopt;
        for (ber_tag_t t = ber_first_element(r.ber(), &len, &last); t != LBER_DEFAULT;
             t = ber_next_element(r.ber(), &len, last)) {
            std::string uuid;
            if (t != LBER_OCTETSTRING || !r.octets(uuid) || uuid.size() != kUuidSize) return std::nullopt;
            out.uuids.push_back(std::move(uuid));
        }
        if (!r.close() || !r.at_end()) return std::nullopt;
        return out;
    }
    return std::nullopt;
}

std::optional<SyncDoneValue> decode_sync_done(std::string_view value) {
    Reader r(value);
    if (!r.ok()) return std::nullopt;
    SyncDoneValue out;
    if (!r.open() || !r.optional_cookie(out.cookie)) return std::nullopt;
    if (r.peek() == LDAP_TAG_REFRESHDELETES && !r.boolean(out.refresh_deletes)) return std::nullopt;
    if (!r.close() || !r.at_end()) return std::nullopt;
    return out;
}

std::string encode_sync_request(const std::optional<std::string>& cookie) {
    BerElement* ber = ber_alloc_t(LBER_USE_DER);
    if (!ber) return {};
    int rc = 0;
    if (cookie) {
        berval c{
            static_cast<ber_len_t>(cookie->size()),
            const_cast<char*>(cookie->data())};  // NOLINT(cppcoreguidelines-pro-type-const-cast): liblber reads it only
        rc = ber_printf(ber, "{eO}", static_cast<ber_int_t>(LDAP_SYNC_REFRESH_AND_PERSIST), &c);
    } else {
        rc = ber_printf(ber, "{e}", static_cast<ber_int_t>(LDAP_SYNC_REFRESH_AND_PERSIST));
    }
    std::string out;
    berval flat{};
    if (rc >= 0 && ber_flatten2(ber, &flat, 0) == 0) out.assign(flat.bv_val, flat.bv_len);
    ber_free(ber, 1);
    return out;
}

}  // namespace xproxy
