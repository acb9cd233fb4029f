// sasl.cpp: the PLAIN and LOGIN mechanisms, server side (sasl.hpp).
#include <xproxy/wire/sasl.hpp>

#include <xproxy/base/base64.hpp>
#include <xproxy/base/invariant.hpp>
#include <xproxy/base/text.hpp>

namespace xproxy::sasl {

namespace {

constexpr std::string_view kControls("\0\r\n", 3);
constexpr std::string_view kUsernameChallenge = "VXNlcm5hbWU6";  // "Username:"
constexpr std::string_view kPasswordChallenge = "UGFzc3dvcmQ6";  // "Password:"

Step challenge(std::string_view b64) {
    Step s;
    s.kind = Step::challenge;
    s.challenge_b64 = b64;
    return s;
}

Step fail(Step::Kind kind, std::string_view reason) {
    Step s;
    s.kind = kind;
    s.reason = reason;
    return s;
}

// Why a decoded field is refused (one of the reasons given), or nullptr.
const char* field_error(std::string_view value, bool may_be_empty, const char* empty_reason, const char* long_reason,
                        const char* control_reason) {
    if (value.empty() && !may_be_empty) return empty_reason;
    if (value.size() > kMaxField) return long_reason;
    if (value.find_first_of(kControls) != std::string_view::npos) return control_reason;
    return nullptr;
}

// The first checks of every response: "*" cancels (only after a challenge), anything but
// strict base64 of at most `max_decoded` bytes is refused. nullopt: decode it.
std::optional<Step> check_response(std::string_view b64, bool after_challenge, std::size_t max_decoded) {
    if (after_challenge && b64 == "*") return fail(Step::cancelled, "client cancelled the exchange");
    if (!base64_valid(b64)) return fail(Step::bad_encoding, "response is not base64");
    if (b64.size() > base64_encoded_size(max_decoded)) return fail(Step::bad_credentials, "response is too long");
    return std::nullopt;
}

// RFC 4954 section 4: an initial response of zero length is sent as "=".
std::string_view initial(std::string_view b64) { return b64 == "=" ? std::string_view() : b64; }

class Plain final : public Mechanism {
public:
    std::string_view name() const override { return "PLAIN"; }
    Credentials::Kind kind() const override { return Credentials::Kind::password; }

    Step start(std::optional<std::string_view> initial_response_b64) override {
        XPROXY_INVARIANT(state_ == State::initial);
        if (!initial_response_b64) {
            state_ = State::waiting;
            return challenge("");  // RFC 4616 section 2: an empty challenge asks for the message
        }
        return response(initial(*initial_response_b64), false);
    }

    Step next(std::string_view client_line) override {
        XPROXY_INVARIANT(state_ == State::waiting);
        return response(client_line, true);
    }

private:
    enum class State : std::uint8_t { initial, waiting, finished };

    // message = [authzid] NUL authcid NUL passwd (RFC 4616 section 2)
    Step response(std::string_view b64, bool after_challenge) {
        state_ = State::finished;
        if (auto refused = check_response(b64, after_challenge, 3 * kMaxField + 2)) return std::move(*refused);
        SecretBytes message;  // holds the password: decoded and split in place
        base64_decode(b64, message);
        const std::string_view m = message.view();
        const std::size_t nul1 = m.find('\0');
        const std::size_t nul2 = nul1 == std::string_view::npos ? nul1 : m.find('\0', nul1 + 1);
        if (nul2 == std::string_view::npos) return fail(Step::bad_credentials, "PLAIN message without two NULs");
        if (m.find('\0', nul2 + 1) != std::string_view::npos)
            return fail(Step::bad_credentials, "PLAIN message with more than two NULs");
        const std::string_view authzid = m.substr(0, nul1), authcid = m.substr(nul1 + 1, nul2 - nul1 - 1),
                               passwd = m.substr(nul2 + 1);
        const char* why = field_error(authzid, true, nullptr, "PLAIN authzid is too long",
                                      "PLAIN authzid has a CR or LF");
        if (!why)
            why = field_error(authcid, false, "PLAIN authcid is empty", "PLAIN authcid is too long",
                              "PLAIN authcid has a CR or LF");
        if (!why)
            why = field_error(passwd, false, "PLAIN password is empty", "PLAIN password is too long",
                              "PLAIN password has a CR or LF");
        if (why) return fail(Step::bad_credentials, why);
        Step s;
        s.kind = Step::done;
        s.credentials.kind = Credentials::Kind::password;
        s.credentials.authzid = authzid;
        s.credentials.authcid = authcid;
        s.credentials.secret.assign(passwd.data(), passwd.size());
        return s;
    }

    State state_ = State::initial;
};

class Login final : public Mechanism {
public:
    std::string_view name() const override { return "LOGIN"; }
    Credentials::Kind kind() const override { return Credentials::Kind::password; }

    Step start(std::optional<std::string_view> initial_response_b64) override {
        XPROXY_INVARIANT(state_ == State::initial);
        if (!initial_response_b64) {
            state_ = State::want_user;
            return challenge(kUsernameChallenge);
        }
        return user(initial(*initial_response_b64), false);
    }

    Step next(std::string_view client_line) override {
        if (state_ == State::want_user) return user(client_line, true);
        XPROXY_INVARIANT(state_ == State::want_password);
        return password(client_line);
    }

private:
    enum class State : std::uint8_t { initial, want_user, want_password, finished };

    Step user(std::string_view b64, bool after_challenge) {
        state_ = State::finished;
        if (auto refused = check_response(b64, after_challenge, kMaxField)) return std::move(*refused);
        auto name = base64_decode(b64);
        if (const char* why = field_error(*name, false, "LOGIN user name is empty", "LOGIN user name is too long",
                                          "LOGIN user name has a NUL, CR or LF"))
            return fail(Step::bad_credentials, why);
        user_ = std::move(*name);
        state_ = State::want_password;
        return challenge(kPasswordChallenge);
    }

    Step password(std::string_view b64) {
        state_ = State::finished;
        if (auto refused = check_response(b64, true, kMaxField)) return std::move(*refused);
        Step s;
        base64_decode(b64, s.credentials.secret);
        if (const char* why = field_error(s.credentials.secret.view(), false, "LOGIN password is empty",
                                          "LOGIN password is too long", "LOGIN password has a NUL, CR or LF"))
            return fail(Step::bad_credentials, why);
        s.kind = Step::done;
        s.credentials.kind = Credentials::Kind::password;
        s.credentials.authcid = std::move(user_);
        return s;
    }

    State state_ = State::initial;
    std::string user_;
};

}  // namespace

std::unique_ptr<Mechanism> make_mechanism(std::string_view name) {
    if (iequals(name, "PLAIN")) return std::make_unique<Plain>();
    if (iequals(name, "LOGIN")) return std::make_unique<Login>();
    return nullptr;
}

}  // namespace xproxy::sasl
