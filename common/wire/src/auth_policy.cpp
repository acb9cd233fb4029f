// auth_policy.cpp: see auth_policy.hpp. The request is read with nlohmann-json's SAX
// interface: no DOM, nothing kept of the members it does not know, and the nesting
// depth bounded before anything deeper is looked at.
#include <xproxy/wire/auth_policy.hpp>

#include <nlohmann/json.hpp>

namespace xproxy::dovecot {

namespace {

using json = nlohmann::json;

// The SAX handler: every callback returns false to stop the parser at the first fault.
class RequestReader {
public:
    explicit RequestReader(AuthPolicyRequest& out) : out_(out) {}

    const char* fault() const { return fault_; }

    bool null() { return scalar(Kind::other); }
    bool boolean(bool v) {
        bool_value_ = v;
        return scalar(Kind::boolean);
    }
    bool number_integer(json::number_integer_t) { return scalar(Kind::other); }
    bool number_unsigned(json::number_unsigned_t) { return scalar(Kind::other); }
    bool number_float(json::number_float_t, const json::string_t&) { return scalar(Kind::other); }
    bool string(json::string_t& v) {
        string_value_ = &v;
        return scalar(Kind::string);
    }
    bool binary(json::binary_t&) { return fail("binary value"); }
    bool start_object(std::size_t) { return open(); }
    bool end_object() {
        --depth_;
        return true;
    }
    bool start_array(std::size_t) {
        if (depth_ == 0) return fail("not a JSON object");
        return open();
    }
    bool end_array() {
        --depth_;
        return true;
    }
    bool key(json::string_t& k) {
        if (depth_ == 1) member_ = member_of(k);
        return true;
    }
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) {
        return fail("malformed JSON");
    }

private:
    enum class Kind { string, boolean, other };
    enum class Member { none, login, master, protocol, remote, session_id, tls, success, policy_reject };

    static Member member_of(std::string_view k) {
        if (k == "login") return Member::login;
        if (k == "master") return Member::master;
        if (k == "protocol") return Member::protocol;
        if (k == "remote") return Member::remote;
        if (k == "session_id") return Member::session_id;
        if (k == "tls") return Member::tls;
        if (k == "success") return Member::success;
        if (k == "policy_reject") return Member::policy_reject;
        return Member::none;
    }

    bool fail(const char* why) {
        if (!fault_) fault_ = why;
        return false;
    }

    bool open() {
        if (depth_ == 0 && root_seen_) return fail("more than one JSON value");
        if (depth_ == 1 && member_ != Member::none) return fail("a known member is not a string or boolean");
        root_seen_ = true;
        if (++depth_ > kMaxAuthPolicyDepth) return fail("JSON nested too deeply");
        member_ = Member::none;
        return true;
    }

    bool scalar(Kind kind) {
        if (depth_ == 0) return fail("not a JSON object");
        if (depth_ > 1 || member_ == Member::none) return true;
        const Member m = member_;
        member_ = Member::none;
        const unsigned bit = 1u << static_cast<unsigned>(m);
        if (seen_ & bit) return fail("a known member appears twice");
        seen_ |= bit;
        switch (m) {
            case Member::login: out_.has_login = true; return text(kind, out_.login);
            case Member::master: return text(kind, out_.master);
            case Member::protocol: out_.has_protocol = true; return text(kind, out_.protocol);
            case Member::remote: return text(kind, out_.remote);
            case Member::session_id: return text(kind, out_.session_id);
            case Member::tls: return flag(kind, out_.tls);
            case Member::success: return flag(kind, out_.success.emplace());
            case Member::policy_reject: return flag(kind, out_.policy_reject.emplace());
            case Member::none: break;
        }
        return true;
    }

    bool text(Kind kind, std::string& to) {
        if (kind != Kind::string) return fail("a known member is not a string");
        if (string_value_->size() > kMaxAuthPolicyField) return fail("a member is too long");
        to = std::move(*string_value_);
        return true;
    }

    bool flag(Kind kind, bool& to) {
        if (kind != Kind::boolean) return fail("a known member is not a boolean");
        to = bool_value_;
        return true;
    }

    AuthPolicyRequest& out_;
    std::size_t depth_ = 0;
    bool root_seen_ = false;
    Member member_ = Member::none;
    unsigned seen_ = 0;
    bool bool_value_ = false;
    json::string_t* string_value_ = nullptr;
    const char* fault_ = nullptr;
};

}  // namespace

Expected<PolicyCommand> parse_policy_command(std::string_view target) {
    const auto q = target.find('?');
    if (q == std::string_view::npos) return Failure{"no command= in the request target"};
    std::string_view query = target.substr(q + 1);
    std::optional<PolicyCommand> found;
    while (!query.empty()) {
        const auto amp = query.find('&');
        const std::string_view param = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        if (param.substr(0, 8) != "command=") continue;
        if (found) return Failure{"command= appears twice in the request target"};
        const std::string_view value = param.substr(8);
        if (value == "allow") found = PolicyCommand::allow;
        else if (value == "report") found = PolicyCommand::report;
        else return Failure{"unknown command (want allow or report)"};
    }
    if (!found) return Failure{"no command= in the request target"};
    return *found;
}

Expected<AuthPolicyRequest> decode_auth_policy_request(std::string_view text) {
    AuthPolicyRequest out;
    RequestReader reader(out);
    const bool ok = json::sax_parse(text.begin(), text.end(), &reader, json::input_format_t::json, true);
    if (!ok || reader.fault()) return Failure{reader.fault() ? reader.fault() : "malformed JSON"};
    return out;
}

std::string encode_auth_policy_reply(int status, std::string_view msg) {
    json reply = json::object();
    reply["status"] = status;
    reply["msg"] = std::string(msg);
    return reply.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace xproxy::dovecot
