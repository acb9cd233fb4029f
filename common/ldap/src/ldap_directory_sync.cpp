// ldap_directory_sync.cpp: the sync thread of LdapDirectorySync (ldap_directory.hpp):
// connect, bind, one persistent search with the RFC 4533 Sync Request control, and the
// messages it returns applied to the model; whole directories built from the model go
// into the cache.
//
// Refresh (RFC 4533 3.4): the server sends changed entries (add), unchanged ones as
// "present" (one by one or in syncIdSet batches) and/or deleted ones (delete, or
// syncIdSet with refreshDeletes). The end of a present phase (a refreshPresent message)
// means every entry not mentioned since the refresh began is gone: the model keeps only
// those. Then persist: each change as it happens.
#include <fcntl.h>
#include <ldap.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <unordered_set>
#include <vector>

#include <xproxy/base/escape.hpp>
#include <xproxy/base/file_loader.hpp>
#include <xproxy/ldap/ldap_directory.hpp>
#include <xproxy/ldap/ldap_sync_codec.hpp>

namespace xproxy {

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kQuiet = std::chrono::milliseconds(50);     // a batch ends 50 ms after its last change
constexpr auto kMaxHold = std::chrono::milliseconds(200);  // ... or 200 ms after its first
constexpr auto kSaveEvery = std::chrono::seconds(2);
constexpr std::uint64_t kMaxStateFile = std::uint64_t{1} << 32;

struct LdapCloser {
    void operator()(LDAP* ld) const { ldap_unbind_ext_s(ld, nullptr, nullptr); }
};
using LdapPtr = std::unique_ptr<LDAP, LdapCloser>;
struct MsgFree {
    void operator()(LDAPMessage* m) const { ldap_msgfree(m); }
};
struct ControlsFree {
    void operator()(LDAPControl** c) const { ldap_controls_free(c); }
};
struct MemFree {
    void operator()(void* p) const { ldap_memfree(p); }
};

std::string ldap_error(LDAP* ld, int rc) {
    std::string out = ldap_err2string(rc);
    char* diag = nullptr;
    if (ld && ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag) == LDAP_OPT_SUCCESS && diag) {
        if (*diag) out += " (" + escape(diag, 200) + ")";
        ldap_memfree(diag);
    }
    return out;
}

std::int64_t unix_now() { return static_cast<std::int64_t>(std::time(nullptr)); }

const char* state_name(SyncState s) {
    switch (s) {
        case SyncState::present: return "present";
        case SyncState::add: return "add";
        case SyncState::modify: return "modify";
        case SyncState::remove: return "delete";
    }
    return "?";
}

std::string show_dn(std::string_view dn) { return escape(dn, 300); }

}  // namespace

LdapDirectorySync::LdapDirectorySync(LdapSettings settings, DirectoryCache& cache, LdapLogFn log)
    : settings_(std::move(settings)), cache_(cache), log_(std::move(log)) {}

LdapDirectorySync::~LdapDirectorySync() { stop(); }

void LdapDirectorySync::log(LdapLogLevel level, const std::string& line) const {
    if (log_) log_(level, line);
}

bool LdapDirectorySync::stopping() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stopping_;
}

LdapDirectorySync::Status LdapDirectorySync::status() const {
    std::lock_guard<std::mutex> lock(mu_);
    return status_;
}

bool LdapDirectorySync::wait_connected(std::chrono::milliseconds timeout) const {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return status_.refreshes > 0 || stopping_; }) && status_.refreshes > 0;
}

Expected<SecretBytes> read_bind_password(const std::string& path, FileRefusal* refusal) {
    auto pw = load_secret_file(path, FileRules{4095, kSecretGroupRead, false, true}, refusal);
    if (!pw) return pw;
    std::size_t n = pw->size();
    while (n > 0 && (pw->view()[n - 1] == '\n' || pw->view()[n - 1] == '\r')) --n;
    pw->truncate(n);
    if (pw->empty()) return Failure{path + " is empty"};
    return pw;
}

void LdapDirectorySync::start() {
    if (thread_.joinable()) return;
    if (!settings_.bind_dn.empty()) {
        auto pw = read_bind_password(settings_.bind_pw_file, nullptr);
        if (pw) password_ = std::move(*pw);  // else: the sync thread says why, and retries
    }
    {
        std::lock_guard<std::mutex> lock(mu_);
        stopping_ = false;
    }
    if (!settings_.state_file.empty()) load_state();
    thread_ = std::thread([this] { run(); });
}

void LdapDirectorySync::stop() {
    {
        std::lock_guard<std::mutex> lock(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void LdapDirectorySync::publish() {
    LdapModel::Counts c;
    Directory d = model_.build(c, [&](const std::string& dn, const std::string& why) {
        log(LdapLogLevel::warning, "ldap: skipped " + show_dn(dn) + ": " + escape(why, 300));
    });
    cache_.replace(std::make_shared<const Directory>(std::move(d)));
    state_dirty_ = true;
    std::lock_guard<std::mutex> lock(mu_);
    status_.loaded = true;
    status_.entries = c.entries;
    status_.domains = c.domains;
    status_.users = c.users;
    status_.mtas = c.mtas;
    status_.skipped = c.skipped;
    status_.last_change_unix = unix_now();
    status_.publishes++;
    status_.cookie = cookie_ ? escape(*cookie_, 200) : std::string();
}

void LdapDirectorySync::load_state() {
    const std::string& path = settings_.state_file;
    FileRefusal refusal;
    auto text = load_text_file(path, FileRules{kMaxStateFile, kSecretOwnerOnly, false, true}, &refusal);
    if (!text) {
        if (refusal.reason == FileRefusal::Reason::open && refusal.sys_errno == ENOENT)
            log(LdapLogLevel::info, "ldap: no state file " + escape(path, 200) + " yet: full refresh");
        else log(LdapLogLevel::warning, "ldap: ignoring the state file: " + text.error() + ": full refresh");
        return;
    }
    LdapModel loaded;
    auto st = loaded.parse_state(*text);
    if (!st) {
        log(LdapLogLevel::warning,
            "ldap: ignoring the state file " + escape(path, 200) + ": " + st.error() + ": full refresh");
        return;
    }
    const std::string source = settings_.display() + " " + settings_.schema.fingerprint();
    if (st->source != source) {
        log(LdapLogLevel::warning, "ldap: ignoring the state file " + escape(path, 200) +
                                       ": it was written for another server, base or schema mapping: full refresh");
        return;
    }
    model_ = std::move(loaded);
    cookie_ = st->cookie;
    publish();
    state_dirty_ = false;
    {
        std::lock_guard<std::mutex> lock(mu_);
        status_.from_state = true;
    }
    log(LdapLogLevel::info, "ldap: using state file " + escape(path, 200) + " (" + std::to_string(model_.size()) +
                                " entries, cookie " + (cookie_ ? escape(*cookie_, 200) : std::string("none")) + ")");
}

void LdapDirectorySync::save_state() {
    state_dirty_ = false;
    last_save_ = Clock::now();
    if (settings_.state_file.empty()) return;
    const std::string& path = settings_.state_file;
    const std::string tmp = path + ".tmp";
    const std::string text = model_.serialize(settings_.display() + " " + settings_.schema.fingerprint(), cookie_);
    ::unlink(tmp.c_str());
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    auto fail = [&](const char* what) {
        const int e = errno;
        log(LdapLogLevel::warning,
            "ldap: cannot write the state file " + escape(tmp, 200) + ": " + what + ": " + std::strerror(e));
    };
    if (fd < 0) return fail("open");
    std::size_t off = 0;
    while (off < text.size()) {
        const ssize_t n = ::write(fd, text.data() + off, text.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            fail("write");
            ::close(fd);
            ::unlink(tmp.c_str());
            return;
        }
        off += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0) {
        fail("fsync");
        ::close(fd);
        ::unlink(tmp.c_str());
        return;
    }
    ::close(fd);
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        fail("rename");
        ::unlink(tmp.c_str());
    }
}

void LdapDirectorySync::run() {
    unsigned backoff = 1;
    while (!stopping()) {
        const std::string why = session(backoff);
        if (state_dirty_) save_state();
        {
            std::lock_guard<std::mutex> lock(mu_);
            status_.connected = false;
            status_.last_error = why;
        }
        if (stopping()) break;
        log(LdapLogLevel::warning,
            "ldap: connection lost: " + why + "; reconnecting in " + std::to_string(backoff) + " s");
        {
            std::unique_lock<std::mutex> lock(mu_);
            cv_.wait_for(lock, std::chrono::seconds(backoff), [&] { return stopping_; });
        }
        backoff = std::min(backoff * 2, settings_.reconnect_max);
    }
    if (state_dirty_) save_state();
}

// One connection: returns why it ended.
std::string LdapDirectorySync::session(unsigned& backoff) {
    const LdapSettings& s = settings_;
    LDAP* raw = nullptr;
    int rc = ldap_initialize(&raw, s.server_uri.c_str());
    if (rc != LDAP_SUCCESS) return "ldap_initialize: " + std::string(ldap_err2string(rc));
    LdapPtr ld(raw);
    const int v3 = LDAP_VERSION3;
    ldap_set_option(ld.get(), LDAP_OPT_PROTOCOL_VERSION, &v3);
    ldap_set_option(ld.get(), LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
    timeval tv{static_cast<time_t>(s.timeout), 0};
    ldap_set_option(ld.get(), LDAP_OPT_NETWORK_TIMEOUT, &tv);
    ldap_set_option(ld.get(), LDAP_OPT_TIMEOUT, &tv);
    if (s.scheme == LdapScheme::ldaps || s.start_tls) {
        const int demand = LDAP_OPT_X_TLS_DEMAND;
        ldap_set_option(ld.get(), LDAP_OPT_X_TLS_REQUIRE_CERT, &demand);
        if (!s.tls_ca_file.empty()) ldap_set_option(ld.get(), LDAP_OPT_X_TLS_CACERTFILE, s.tls_ca_file.c_str());
        if (!s.tls_cert_file.empty()) ldap_set_option(ld.get(), LDAP_OPT_X_TLS_CERTFILE, s.tls_cert_file.c_str());
        if (!s.tls_key_file.empty()) ldap_set_option(ld.get(), LDAP_OPT_X_TLS_KEYFILE, s.tls_key_file.c_str());
        const int server = 0;  // a client context of this connection's own, with the options above
        rc = ldap_set_option(ld.get(), LDAP_OPT_X_TLS_NEWCTX, &server);
        if (rc != LDAP_OPT_SUCCESS) return "TLS set-up: " + ldap_error(ld.get(), rc);
    }
    if (s.start_tls) {
        rc = ldap_start_tls_s(ld.get(), nullptr, nullptr);
        if (rc != LDAP_SUCCESS) return "StartTLS: " + ldap_error(ld.get(), rc);
    }
    if (!s.bind_dn.empty()) {
        // Read at each connection (a new password needs no restart); a daemon that dropped
        // the privileges to read it keeps using the copy read at start().
        FileRefusal refusal;
        auto fresh = read_bind_password(s.bind_pw_file, &refusal);
        if (fresh) {
            std::lock_guard<std::mutex> lock(mu_);
            password_ = std::move(*fresh);
        } else if (!(refusal.reason == FileRefusal::Reason::open && refusal.sys_errno == EACCES &&
                     !password_.empty())) {
            return "bind password: " + fresh.error();
        }
        SecretBytes pw;
        {
            std::lock_guard<std::mutex> lock(mu_);
            pw.assign(password_.view().data(), password_.size());
        }
        berval cred{static_cast<ber_len_t>(pw.size()),
                    const_cast<char*>(
                        pw.view().data())};  // NOLINT(cppcoreguidelines-pro-type-const-cast): libldap reads it only
        rc = ldap_sasl_bind_s(ld.get(), s.bind_dn.c_str(), LDAP_SASL_SIMPLE, &cred, nullptr, nullptr, nullptr);
        pw.wipe();
        if (rc != LDAP_SUCCESS) return "bind as " + escape(s.bind_dn, 200) + ": " + ldap_error(ld.get(), rc);
    } else if (s.sasl_external) {
        // EXTERNAL takes its identity from the connection (ldapi:// peer credentials or the
        // TLS client certificate): nothing to answer, no authorisation identity asked for.
        rc = ldap_sasl_interactive_bind_s(
            ld.get(), nullptr, "EXTERNAL", nullptr, nullptr, LDAP_SASL_QUIET,
            [](LDAP*, unsigned, void*, void*) { return LDAP_SUCCESS; }, nullptr);
        if (rc != LDAP_SUCCESS) return "SASL EXTERNAL bind: " + ldap_error(ld.get(), rc);
    }

    const std::vector<std::string> attr_names = s.schema.attributes();
    std::vector<char*> attrs;
    attrs.reserve(attr_names.size() + 1);
    for (const auto& a : attr_names)
        attrs.push_back(const_cast<char*>(a.c_str()));  // NOLINT(cppcoreguidelines-pro-type-const-cast): read only
    attrs.push_back(nullptr);
    const std::string filter = s.schema.filter();

    for (;;) {  // one search; again after e-syncRefreshRequired
        const std::string request = encode_sync_request(cookie_);
        if (request.empty()) return "cannot encode the sync request";
        LDAPControl control{};
        control.ldctl_oid = const_cast<char*>(
            LDAP_CONTROL_SYNC);  // NOLINT(cppcoreguidelines-pro-type-const-cast): read only
        control.ldctl_value = berval{
            static_cast<ber_len_t>(request.size()),
            const_cast<char*>(request.data())};  // NOLINT(cppcoreguidelines-pro-type-const-cast): read only
        control.ldctl_iscritical = 1;
        LDAPControl* controls[] = {&control, nullptr};
        int msgid = 0;
        rc = ldap_search_ext(ld.get(), s.base_dn.c_str(), LDAP_SCOPE_SUBTREE, filter.c_str(), attrs.data(), 0, controls,
                             nullptr, nullptr, 0, &msgid);
        if (rc != LDAP_SUCCESS) return "search: " + ldap_error(ld.get(), rc);

        const auto refresh_began = Clock::now();
        bool refreshing = true;
        std::size_t received = 0;                 // entries with attributes during the refresh
        std::unordered_set<std::string> present;  // entries mentioned in this refresh
        bool dirty = false;
        Clock::time_point first_change{}, last_change{};
        auto changed = [&] {
            const auto now = Clock::now();
            if (!dirty) first_change = now;
            last_change = now;
            dirty = true;
        };
        auto refresh_done = [&] {
            refreshing = false;
            present.clear();
            publish();
            dirty = false;
            save_state();
            backoff = 1;
            const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - refresh_began).count();
            Status st;
            {
                std::lock_guard<std::mutex> lock(mu_);
                status_.connected = true;
                status_.from_state = false;
                status_.last_error.clear();
                status_.refreshes++;
                st = status_;
            }
            cv_.notify_all();
            log(LdapLogLevel::info, "ldap: connected to " + s.display() + ", refresh: " + std::to_string(st.entries) +
                                        " entries (" + std::to_string(st.domains) + " domains, " +
                                        std::to_string(st.users) + " users, " + std::to_string(st.mtas) + " mtas, " +
                                        std::to_string(st.skipped) + " skipped) in " + std::to_string(ms) + " ms, " +
                                        std::to_string(received) + " changed entries received");
        };

        while (!stopping()) {
            if (dirty && !refreshing) {
                const auto now = Clock::now();
                if (now - last_change >= kQuiet || now - first_change >= kMaxHold) {
                    publish();
                    dirty = false;
                }
            }
            if (state_dirty_ && !refreshing && Clock::now() - last_save_ >= kSaveEvery) save_state();
            timeval wait{0, dirty ? 10000 : 250000};
            LDAPMessage* msg_raw = nullptr;
            rc = ldap_result(ld.get(), msgid, LDAP_MSG_ONE, &wait, &msg_raw);
            if (rc == 0) continue;
            if (rc < 0) {
                int err = LDAP_OTHER;
                ldap_get_option(ld.get(), LDAP_OPT_RESULT_CODE, &err);
                return ldap_error(ld.get(), err);
            }
            std::unique_ptr<LDAPMessage, MsgFree> msg(msg_raw);
            const int type = ldap_msgtype(msg.get());
            if (type == LDAP_RES_SEARCH_ENTRY) {
                LDAPControl** ctrls_raw = nullptr;
                ldap_get_entry_controls(ld.get(), msg.get(), &ctrls_raw);
                std::unique_ptr<LDAPControl*, ControlsFree> ctrls(ctrls_raw);
                std::optional<SyncStateValue> sv;
                for (LDAPControl** c = ctrls.get(); c && *c; ++c)
                    if (std::strcmp((*c)->ldctl_oid, LDAP_CONTROL_SYNC_STATE) == 0)
                        sv = decode_sync_state(std::string_view((*c)->ldctl_value.bv_val, (*c)->ldctl_value.bv_len));
                if (!sv) return "the server sent an entry without a valid sync state control";
                if (sv->cookie) cookie_ = sv->cookie;
                std::unique_ptr<char, MemFree> dn_raw(ldap_get_dn(ld.get(), msg.get()));
                std::string dn = dn_raw ? dn_raw.get() : "";
                if (sv->state == SyncState::present) {
                    if (refreshing) present.insert(sv->uuid);
                    continue;
                }
                if (sv->state == SyncState::remove) {
                    if (model_.erase(sv->uuid)) changed();
                    log(refreshing ? LdapLogLevel::debug : LdapLogLevel::info, "ldap: change: delete " + show_dn(dn));
                    continue;
                }
                LdapAttributes attributes;
                BerElement* ber = nullptr;
                for (char* a = ldap_first_attribute(ld.get(), msg.get(), &ber); a;
                     a = ldap_next_attribute(ld.get(), msg.get(), ber)) {
                    std::vector<std::string> values;
                    berval** vals = ldap_get_values_len(ld.get(), msg.get(), a);
                    for (berval** v = vals; v && *v; ++v) values.emplace_back((*v)->bv_val, (*v)->bv_len);
                    ldap_value_free_len(vals);
                    attributes.emplace_back(a, std::move(values));
                    ldap_memfree(a);
                }
                if (ber) ber_free(ber, 0);
                if (refreshing) {
                    present.insert(sv->uuid);
                    ++received;
                }
                const bool had = model_.contains(sv->uuid);
                if (model_.upsert(sv->uuid, dn, s.schema, attributes) || had) changed();
                log(refreshing ? LdapLogLevel::debug : LdapLogLevel::info,
                    std::string("ldap: change: ") + state_name(sv->state) + " " + show_dn(dn));
            } else if (type == LDAP_RES_INTERMEDIATE) {
                char* oid_raw = nullptr;
                berval* data_raw = nullptr;
                rc = ldap_parse_intermediate(ld.get(), msg.get(), &oid_raw, &data_raw, nullptr, 0);
                std::unique_ptr<char, MemFree> oid(oid_raw);
                std::unique_ptr<berval, decltype(&ber_bvfree)> data(data_raw, &ber_bvfree);
                if (rc != LDAP_SUCCESS || !oid || std::strcmp(oid.get(), LDAP_SYNC_INFO) != 0) continue;
                const auto info = decode_sync_info(data ? std::string_view(data->bv_val, data->bv_len)
                                                        : std::string_view());
                if (!info) return "the server sent a malformed sync info message";
                if (info->cookie) cookie_ = info->cookie;
                switch (info->kind) {
                    case SyncInfoValue::Kind::new_cookie: state_dirty_ = true; break;
                    case SyncInfoValue::Kind::refresh_present:
                        if (refreshing && model_.retain(present) > 0) changed();
                        present.clear();
                        if (refreshing && info->refresh_done) refresh_done();
                        break;
                    case SyncInfoValue::Kind::refresh_delete:
                        if (refreshing && info->refresh_done) refresh_done();
                        break;
                    case SyncInfoValue::Kind::id_set:
                        for (const auto& uuid : info->uuids) {
                            if (info->refresh_deletes) {
                                if (model_.erase(uuid)) changed();
                            } else if (refreshing) {
                                present.insert(uuid);
                            }
                        }
                        break;
                }
            } else if (type == LDAP_RES_SEARCH_RESULT) {
                int code = LDAP_OTHER;
                char* text_raw = nullptr;
                LDAPControl** ctrls_raw = nullptr;
                ldap_parse_result(ld.get(), msg.get(), &code, nullptr, &text_raw, nullptr, &ctrls_raw, 0);
                std::unique_ptr<char, MemFree> text(text_raw);
                std::unique_ptr<LDAPControl*, ControlsFree> ctrls(ctrls_raw);
                for (LDAPControl** c = ctrls.get(); c && *c; ++c)
                    if (std::strcmp((*c)->ldctl_oid, LDAP_CONTROL_SYNC_DONE) == 0)
                        if (auto done = decode_sync_done(
                                std::string_view((*c)->ldctl_value.bv_val, (*c)->ldctl_value.bv_len));
                            done && done->cookie)
                            cookie_ = done->cookie;
                if (dirty && !refreshing) publish();
                if (code == LDAP_SYNC_REFRESH_REQUIRED) {
                    log(LdapLogLevel::warning,
                        "ldap: the server no longer knows our sync cookie (e-syncRefreshRequired): full refresh");
                    cookie_.reset();
                    break;  // a new search on this connection
                }
                return "the server ended the sync: " + std::string(ldap_err2string(code)) +
                       (text && *text ? " (" + escape(text.get(), 200) + ")" : std::string());
            }
        }
        if (stopping()) {
            if (dirty && !refreshing) publish();
            ldap_abandon_ext(ld.get(), msgid, nullptr, nullptr);
            return "stopped";
        }
    }
}

}  // namespace xproxy
