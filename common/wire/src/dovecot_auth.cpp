// dovecot_auth.cpp: Dovecot auth protocol, client side: escaping, the handshake and AUTH
// encoders, the server line decoder (dovecot_auth.hpp).
#include <xproxy/wire/dovecot_auth.hpp>

#include <cstring>

#include <xproxy/base/base64.hpp>
#include <xproxy/base/text.hpp>

namespace xproxy::dovecot {

namespace {

constexpr char kEscape = '\001';

// The TAB-separated fields of a line, one after the other.
class Fields {
public:
    explicit Fields(std::string_view line) : rest_(line) {}
    bool more() const { return more_; }
    // The next field ("" when there is none: more() tells the difference).
    std::string_view next() {
        if (!more_) return {};
        const std::size_t tab = rest_.find('\t');
        const std::string_view field = rest_.substr(0, tab);
        if (tab == std::string_view::npos) more_ = false;
        else rest_.remove_prefix(tab + 1);
        return field;
    }

private:
    std::string_view rest_;
    bool more_ = true;
};

// Appends `s` at out[pos], returns the position after it.
std::size_t put(char* out, std::size_t pos, std::string_view s) {
    if (!s.empty()) std::memcpy(out + pos, s.data(), s.size());
    return pos + s.size();
}

// name=value or a flag, for every field left; false on a bad escape.
bool parse_params(Fields& fields, std::vector<std::pair<std::string, std::string>>& params) {
    while (fields.more()) {
        const std::string_view field = fields.next();
        if (field.empty()) continue;  // an empty field says nothing
        const std::size_t eq = field.find('=');
        std::pair<std::string, std::string> p;
        if (!tab_unescape(field.substr(0, eq), p.first)) return false;
        if (eq != std::string_view::npos && !tab_unescape(field.substr(eq + 1), p.second)) return false;
        params.push_back(std::move(p));
    }
    return true;
}

}  // namespace

std::string tab_escape(std::string_view raw) {
    std::string out;
    out.reserve(raw.size());
    for (char c : raw) {
        switch (c) {
            case '\0': out += "\0010"; break;
            case kEscape: out += "\0011"; break;
            case '\t': out += "\001t"; break;
            case '\r': out += "\001r"; break;
            case '\n': out += "\001n"; break;
            default: out += c;
        }
    }
    return out;
}

bool tab_unescape(std::string_view escaped, std::string& out) {
    out.clear();
    out.reserve(escaped.size());
    for (std::size_t i = 0; i < escaped.size(); ++i) {
        if (escaped[i] != kEscape) {
            out += escaped[i];
            continue;
        }
        if (++i == escaped.size()) return false;
        switch (escaped[i]) {
            case '0': out += '\0'; break;
            case '1': out += kEscape; break;
            case 't': out += '\t'; break;
            case 'r': out += '\r'; break;
            case 'n': out += '\n'; break;
            default: out += escaped[i];
        }
    }
    return true;
}

std::string encode_handshake(std::uint64_t pid) {
    return "VERSION\t" + std::to_string(kMajorVersion) + "\t" + std::to_string(kMinorVersion) + "\nCPID\t" +
           std::to_string(pid) + "\n";
}

bool encode_auth_plain(const AuthRequest& r, SecretBytes& out) {
    out.wipe();
    const std::string_view nul("\0", 1);
    if (r.id == 0 || r.authcid.empty() || r.password.empty() || r.authcid.find(nul) != std::string_view::npos ||
        r.password.find(nul) != std::string_view::npos)
        return false;
    // Everything before resp= holds nothing secret.
    std::string head = "AUTH\t" + std::to_string(r.id) + "\tPLAIN\tservice=" + tab_escape(r.service) +
                       "\tnologin\tno-penalty";
    if (r.tls) head += "\tsecured=tls";
    if (r.local) head += "\tlip=" + r.local->addr.to_string();
    if (r.remote) head += "\trip=" + r.remote->addr.to_string();
    if (r.local && r.local->port) head += "\tlport=" + std::to_string(r.local->port);
    if (r.remote && r.remote->port) head += "\trport=" + std::to_string(r.remote->port);
    head += "\tresp=";

    SecretBytes message;  // NUL authcid NUL password (RFC 4616, empty authzid)
    const std::size_t message_size = 2 + r.authcid.size() + r.password.size();
    char* m = message.prepare(message_size);
    std::size_t pos = put(m, 0, nul);
    pos = put(m, pos, r.authcid);
    pos = put(m, pos, nul);
    put(m, pos, r.password);

    char* line = out.prepare(head.size() + base64_encoded_size(message_size) + 1);
    pos = put(line, 0, head);
    pos += base64_encode(message.view(), line + pos);
    line[pos] = '\n';
    return true;
}

const std::string* ServerLine::param(std::string_view name) const {
    for (const auto& [k, v] : params)
        if (k == name) return &v;
    return nullptr;
}

DecodeResult ServerDecoder::decode(std::string_view in, ServerLine& out) {
    if (phase_ == Phase::broken) return DecodeResult::bad("the connection failed before");
    const std::size_t lf = in.find('\n');
    if (lf == std::string_view::npos) {
        if (in.size() > kMaxLine) {
            phase_ = Phase::broken;
            return DecodeResult::bad("line longer than 8192 bytes");
        }
        return DecodeResult::more();
    }
    auto bad = [&](std::string_view why) {
        phase_ = Phase::broken;
        return DecodeResult::bad(why);
    };
    if (lf > kMaxLine) return bad("line longer than 8192 bytes");
    const std::string_view line = in.substr(0, lf);
    if (line.find('\0') != std::string_view::npos) return bad("NUL byte in a line");
    out = ServerLine{};
    Fields f(line);
    const std::string_view cmd = f.next();
    using Kind = ServerLine::Kind;
    auto id = [&]() {
        out.id = parse_decimal<std::uint32_t>(f.next(), UINT32_MAX, LeadingZeros::forbidden).value_or(0);
        return out.id != 0;
    };
    bool ok = true;
    bool params = false;  // the fields left are optional parameters
    if (cmd == "VERSION") {
        out.kind = Kind::version;
        const auto major = f.more() ? parse_decimal<unsigned>(f.next()) : std::nullopt;
        const auto minor = f.more() ? parse_decimal<unsigned>(f.next()) : std::nullopt;
        ok = major && minor;
        out.major = major.value_or(0);
        out.minor = minor.value_or(0);
    } else if (cmd == "MECH" || cmd == "SPID" || cmd == "CUID" || cmd == "COOKIE") {
        out.kind = cmd == "MECH" ? Kind::mech : cmd == "SPID" ? Kind::spid : cmd == "CUID" ? Kind::cuid : Kind::cookie;
        ok = f.more() && tab_unescape(f.next(), out.word) && !out.word.empty();
        params = out.kind == Kind::mech;
    } else if (cmd == "DONE") {
        out.kind = Kind::done;
    } else if (cmd == "OK" || cmd == "FAIL") {
        out.kind = cmd == "OK" ? Kind::ok : Kind::fail;
        ok = f.more() && id();
        params = true;
    } else if (cmd == "CONT") {
        out.kind = Kind::cont;
        ok = f.more() && id() && f.more() && tab_unescape(f.next(), out.word);
    } else {
        out.kind = Kind::other;
        out.word = cmd;
    }
    if (!ok) return bad("malformed line");
    if (params && !parse_params(f, out.params)) return bad("bad escape in a parameter");
    return check_order(out, lf + 1);
}

DecodeResult ServerDecoder::check_order(const ServerLine& line, std::size_t consumed) {
    using Kind = ServerLine::Kind;
    auto bad = [&](std::string_view why) {
        phase_ = Phase::broken;
        return DecodeResult::bad(why);
    };
    switch (phase_) {
        case Phase::version:
            if (line.kind != Kind::version) return bad("the server did not start with VERSION");
            if (line.major != kMajorVersion) return bad("the server speaks another major version");
            phase_ = Phase::handshake;
            break;
        case Phase::handshake:
            if (line.kind == Kind::mech) {
                saw_mech_ = true;
                if (iequals(line.word, "PLAIN")) plain_ = true;
            } else if (line.kind == Kind::spid && !saw_mech_) {
                return bad("SPID before any MECH: this is the auth-master socket, not auth-client");
            } else if (line.kind == Kind::done) {
                if (!plain_) return bad("the server does not offer PLAIN");
                phase_ = Phase::requests;
            } else if (line.kind == Kind::version || line.kind == Kind::ok || line.kind == Kind::fail ||
                       line.kind == Kind::cont) {
                return bad("unexpected line in the handshake");
            }
            break;
        case Phase::requests:
            if (line.kind != Kind::ok && line.kind != Kind::fail && line.kind != Kind::cont && line.kind != Kind::other)
                return bad("handshake line after DONE");
            break;
        case Phase::broken: return bad("the connection failed before");
    }
    return DecodeResult::done(consumed);
}

}  // namespace xproxy::dovecot
