// wire_keyring.cpp: xproxy-wire subcommands that create a trace key ring and rotate its
// keys (doc/wire-formats.md, "Key ring"; doc/man/xproxy-wire.1).
//   keyring-create  FILE [--key-id ID] [--bytes N] [--owner USER] [--group GROUP] [--mode 0600|0400]
//                   [--if-missing]
//   keyring-add     FILE [--key-id ID] [--bytes N] [--first]      rotation step 1
//   keyring-promote FILE ID                                        rotation step 2
//   keyring-retire  FILE ID [--force]                              rotation step 3
//   keyring-list    FILE
//   keyring-import  FILE ID [--first]       the secret (base64:... or hex:...) on stdin
// The text is edited by keyring_edit.hpp (comments and spacing kept), the file is locked,
// written and replaced by keyring_file.hpp. No message contains a secret byte.
// Exit status: 0 done (or nothing to do), 1 refused or failed, 2 usage.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "keyring_edit.hpp"
#include "keyring_file.hpp"
#include "wire_command.hpp"
#include <xproxy/base/escape.hpp>
#include <xproxy/base/file_loader.hpp>
#include <xproxy/base/keyring.hpp>
#include <xproxy/base/text.hpp>

namespace {

using namespace xproxy;
using namespace xproxy::keyring_tool;

struct Args {
    std::vector<std::string> positional;
    std::map<std::string, std::string> values;
    std::set<std::string> flags;
    bool has(const std::string& name) const { return values.count(name) != 0 || flags.count(name) != 0; }
};

void say_error(const std::string& message) { std::fprintf(stderr, "xproxy-wire: %s\n", message.c_str()); }

int usage_error(const std::string& message, const char* usage) {
    say_error(message);
    std::fprintf(stderr, "usage: xproxy-wire %s\n", usage);
    return 2;
}

// Options are --NAME VALUE (`valued`) or --NAME (`flags`), anywhere among `npos`
// positional arguments; "--" ends the options.
bool parse_args(const std::vector<std::string_view>& args, const std::set<std::string>& valued,
                const std::set<std::string>& flags, std::size_t npos, const char* usage, Args& out, int& status) {
    bool options = true;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string a(args[i]);
        if (options && a == "--") {
            options = false;
        } else if (options && a.size() > 2 && a.rfind("--", 0) == 0) {
            const std::string name = a.substr(2);
            if (flags.count(name)) {
                out.flags.insert(name);
            } else if (valued.count(name) && i + 1 < args.size()) {
                out.values[name] = std::string(args[++i]);
            } else {
                status = usage_error("unknown or incomplete option '" + escape(a) + "'", usage);
                return false;
            }
        } else {
            out.positional.push_back(a);
        }
    }
    if (out.positional.size() != npos) {
        status = usage_error(npos == 1 ? "expected FILE" : "expected FILE and a key ID", usage);
        return false;
    }
    return true;
}

// --bytes N: 16..128, 32 by default.
std::optional<std::size_t> secret_size(const Args& a, const char* usage, int& status) {
    const auto it = a.values.find("bytes");
    if (it == a.values.end()) return kDefaultSecretBytes;
    const auto n = parse_decimal<std::size_t>(it->second, KeyRing::kMaxSecret);
    if (!n || *n < KeyRing::kMinSecret) {
        status = usage_error("--bytes is a number of bytes from 16 to 128", usage);
        return std::nullopt;
    }
    return n;
}

// --key-id ID, checked; empty when not given.
std::optional<std::string> key_id_option(const Args& a, const char* usage, int& status) {
    const auto it = a.values.find("key-id");
    if (it == a.values.end()) return std::string();
    if (!KeyRing::valid_id(it->second)) {
        status = usage_error(
            "--key-id '" + escape(it->second.substr(0, 64)) + "': a key id is 1-32 characters of A-Z a-z 0-9 . _ -",
            usage);
        return std::nullopt;
    }
    return it->second;
}

bool valid_id_argument(const std::string& id, const char* usage, int& status) {
    if (KeyRing::valid_id(id)) return true;
    status = usage_error("'" + escape(id.substr(0, 64)) + "' is not a key id (1-32 characters of A-Z a-z 0-9 . _ -)",
                         usage);
    return false;
}

std::string describe(const KeyRingText& ring) {
    const auto keys = ring.keys();
    return std::to_string(keys.size()) + (keys.size() == 1 ? " key" : " keys") + ", '" + keys.front().id + "' signs";
}

std::string where_text(const KeyRingText& ring, std::string_view id) {
    for (const auto& k : ring.keys())
        if (k.id == id)
            return k.position == 1 ? "as the signing (first) key"
                                   : "as key " + std::to_string(k.position) + " (it verifies; it signs once promoted)";
    return {};
}

// What an edit did: `changed` false leaves the file as it is.
struct Outcome {
    bool changed = true;
    std::string message;
};
using Edit = std::function<Expected<Outcome>(KeyRingText&)>;

// Lock, read and validate FILE, edit it in memory, check the result with the daemons'
// parser, replace FILE. Status 0 or 1.
int modify(const std::string& file, const Edit& edit) {
    auto locked = LockedKeyRing::lock(file);
    if (!locked) {
        say_error(locked.error());
        return 1;
    }
    const std::string& path = locked->path();
    auto ring = [&]() -> Expected<KeyRingText> {
        const auto text = read_key_ring_text(path, true);
        if (!text) return Failure{text.error()};
        auto parsed = KeyRingText::parse(text->view());
        if (!parsed) return Failure{"key ring " + path + ": " + parsed.error()};
        return parsed;
    }();
    if (!ring) {
        say_error(ring.error() + "; not modified");
        return 1;
    }
    auto outcome = edit(*ring);
    if (!outcome) {
        say_error("key ring " + path + ": " + outcome.error() + "; not modified");
        return 1;
    }
    if (outcome->changed) {
        const SecretBytes text = ring->render();
        if (const auto check = KeyRing::parse(text.view()); !check) {
            say_error("key ring " + path + ": the edited text does not parse (" + check.error() + "); not modified");
            return 1;
        }
        if (text.size() > KeyRing::kMaxFileSize) {
            say_error("key ring " + path + ": would grow beyond 1 MiB, which the daemons refuse; not modified");
            return 1;
        }
        if (auto r = locked->replace(text); !r) {
            say_error("key ring " + path + ": " + r.error() + "; not modified");
            return 1;
        }
    }
    std::printf("%s\n", outcome->message.c_str());
    return 0;
}

constexpr const char* kCreateUsage =
    "keyring-create FILE [--key-id ID] [--bytes N] [--owner USER] [--group GROUP] [--mode 0600|0400] [--if-missing]";

int keyring_create(const std::vector<std::string_view>& argv) {
    Args a;
    int status = 0;
    if (!parse_args(argv, {"key-id", "bytes", "owner", "group", "mode"}, {"if-missing"}, 1, kCreateUsage, a, status))
        return status;
    const auto bytes = secret_size(a, kCreateUsage, status);
    if (!bytes) return status;
    const auto given_id = key_id_option(a, kCreateUsage, status);
    if (!given_id) return status;
    FileIdentity id{::geteuid(), ::getegid(), 0600};
    if (a.values.count("mode")) {
        const auto mode = parse_key_ring_mode(a.values["mode"]);
        if (!mode) return usage_error(mode.error(), kCreateUsage);
        id.mode = *mode;
    }
    if (a.values.count("owner")) {
        const auto uid = lookup_user(a.values["owner"]);
        if (!uid) {
            say_error("--owner: " + escape(uid.error()));
            return 1;
        }
        id.uid = *uid;
    }
    if (a.values.count("group")) {
        const auto gid = lookup_group(a.values["group"]);
        if (!gid) {
            say_error("--group: " + escape(gid.error()));
            return 1;
        }
        id.gid = *gid;
    }
    const std::string& file = a.positional[0];
    const bool if_missing = a.flags.count("if-missing") != 0;
    auto exists = [&]() {
        if (if_missing) {
            std::printf("key ring %s exists; left as it is\n", escape(file).c_str());
            // Left as it is, but a key ring the daemons would refuse is worth a word.
            if (const auto ring = KeyRing::load_file(file); !ring) say_error("warning: " + ring.error());
            return 0;
        }
        say_error("key ring " + escape(file) +
                  " exists; not replaced (keyring-add adds a key to it, --if-missing accepts it as it is)");
        return 1;
    };
    if (path_exists(file)) return exists();

    KeyRingText ring = KeyRingText::fresh();
    const std::string key_id = given_id->empty() ? default_key_id(std::time(nullptr)) : *given_id;
    auto secret = random_secret(*bytes);
    if (!secret) {
        say_error(secret.error());
        return 1;
    }
    if (auto added = ring.add(key_id, encode_secret(*secret), Where::first); !added) {
        say_error(added.error());
        return 1;
    }
    const SecretBytes text = ring.render();
    if (const auto check = KeyRing::parse(text.view()); !check) {
        say_error("the new key ring does not parse (" + check.error() + ")");
        return 1;
    }
    const auto created = create_new_file(file, text, id);
    if (!created) {
        say_error("key ring " + escape(file) + ": " + created.error() + "; not created");
        return 1;
    }
    if (*created == CreateOutcome::exists) return exists();
    std::printf("created key ring %s: key '%s' (%zu bytes) signs; owner %s, group %s, mode %s\n", escape(file).c_str(),
                key_id.c_str(), *bytes, user_name(id.uid).c_str(), group_name(id.gid).c_str(),
                mode_octal(id.mode).c_str());
    return 0;
}

constexpr const char* kAddUsage = "keyring-add FILE [--key-id ID] [--bytes N] [--first]";

int keyring_add(const std::vector<std::string_view>& argv) {
    Args a;
    int status = 0;
    if (!parse_args(argv, {"key-id", "bytes"}, {"first"}, 1, kAddUsage, a, status)) return status;
    const auto bytes = secret_size(a, kAddUsage, status);
    if (!bytes) return status;
    const auto given_id = key_id_option(a, kAddUsage, status);
    if (!given_id) return status;
    const Where where = a.flags.count("first") ? Where::first : Where::second;
    return modify(a.positional[0], [&](KeyRingText& ring) -> Expected<Outcome> {
        // A default id taken already (a second key the same day) gets a -2, -3 ... suffix.
        const std::string id = given_id->empty() ? ring.unused_id(default_key_id(std::time(nullptr))) : *given_id;
        auto secret = random_secret(*bytes);
        if (!secret) return Failure{secret.error()};
        if (auto added = ring.add(id, encode_secret(*secret), where); !added) return Failure{added.error()};
        return Outcome{true, "added key '" + id + "' (" + std::to_string(*bytes) + " bytes) " + where_text(ring, id) +
                                 "; " + describe(ring)};
    });
}

constexpr const char* kPromoteUsage = "keyring-promote FILE ID";

int keyring_promote(const std::vector<std::string_view>& argv) {
    Args a;
    int status = 0;
    if (!parse_args(argv, {}, {}, 2, kPromoteUsage, a, status)) return status;
    const std::string id = a.positional[1];
    if (!valid_id_argument(id, kPromoteUsage, status)) return status;
    return modify(a.positional[0], [&](KeyRingText& ring) -> Expected<Outcome> {
        const auto moved = ring.promote(id);
        if (!moved) return Failure{moved.error()};
        if (!*moved) return Outcome{false, "key '" + id + "' signs already; " + describe(ring) + "; file unchanged"};
        return Outcome{true, "key '" + id + "' now signs; " + describe(ring)};
    });
}

constexpr const char* kRetireUsage = "keyring-retire FILE ID [--force]";

int keyring_retire(const std::vector<std::string_view>& argv) {
    Args a;
    int status = 0;
    if (!parse_args(argv, {}, {"force"}, 2, kRetireUsage, a, status)) return status;
    const std::string id = a.positional[1];
    if (!valid_id_argument(id, kRetireUsage, status)) return status;
    const bool force = a.flags.count("force") != 0;
    return modify(a.positional[0], [&](KeyRingText& ring) -> Expected<Outcome> {
        if (auto r = ring.retire(id, force); !r) return Failure{r.error()};
        return Outcome{true, "removed key '" + id + "'; " + describe(ring)};
    });
}

constexpr const char* kImportUsage = "keyring-import FILE ID [--first] < SECRET";

// The secret on stdin: "base64:..." or "hex:...", white space around it ignored.
Expected<SecretBytes> read_secret_spec() {
    constexpr std::size_t kMax = 4096;
    SecretBytes buf;
    char* dst = buf.prepare(kMax + 1);
    std::size_t got = 0;
    while (got <= kMax) {
        const ssize_t n = ::read(STDIN_FILENO, dst + got, kMax + 1 - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Failure{"cannot read the secret from standard input"};
        if (n == 0) break;
        got += static_cast<std::size_t>(n);
    }
    if (got > kMax) return Failure{"the secret on standard input is longer than 4096 characters"};
    buf.truncate(got);
    const std::string_view spec = trim(buf.view(), " \t\r\n");
    if (spec.empty()) return Failure{"no secret on standard input (expected base64:... or hex:...)"};
    SecretBytes out;
    out.assign(spec.data(), spec.size());
    return out;
}

int keyring_import(const std::vector<std::string_view>& argv) {
    Args a;
    int status = 0;
    if (!parse_args(argv, {}, {"first"}, 2, kImportUsage, a, status)) return status;
    const std::string id = a.positional[1];
    if (!valid_id_argument(id, kImportUsage, status)) return status;
    const auto spec = read_secret_spec();
    if (!spec) {
        say_error(spec.error());
        return 1;
    }
    const Where where = a.flags.count("first") ? Where::first : Where::second;
    return modify(a.positional[0], [&](KeyRingText& ring) -> Expected<Outcome> {
        if (auto added = ring.add(id, *spec, where); !added) return Failure{added.error()};
        std::size_t bytes = 0;
        for (const auto& k : ring.keys())
            if (k.id == id) bytes = k.bytes;
        return Outcome{true, "imported key '" + id + "' (" + std::to_string(bytes) + " bytes) " + where_text(ring, id) +
                                 "; " + describe(ring)};
    });
}

constexpr const char* kListUsage = "keyring-list FILE";

int keyring_list(const std::vector<std::string_view>& argv) {
    Args a;
    int status = 0;
    if (!parse_args(argv, {}, {}, 1, kListUsage, a, status)) return status;
    const std::string& file = a.positional[0];
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0) {
        say_error("key ring " + escape(file) + ": cannot open: " + std::strerror(errno));
        return 1;
    }
    const auto text = read_key_ring_text(file, false);
    if (!text) {
        say_error(text.error());
        return 1;
    }
    const auto ring = KeyRingText::parse(text->view());
    if (!ring) {
        say_error("key ring " + escape(file) + ": " + ring.error());
        return 1;
    }
    const unsigned mode = static_cast<unsigned>(st.st_mode & 07777);
    std::printf("# key ring %s: owner %s, group %s, mode %s\n", escape(file).c_str(), user_name(st.st_uid).c_str(),
                group_name(st.st_gid).c_str(), mode_octal(mode).c_str());
    for (const auto& k : ring->keys())
        std::printf("%zu %s %zu%s\n", k.position, k.id.c_str(), k.bytes, k.position == 1 ? " signing" : "");
    if ((mode & 077) != 0)
        say_error("warning: key ring " + escape(file) + " has mode " + mode_octal(mode) +
                  ": group or others may access its secrets, and the daemons refuse it (chmod 600 " + escape(file) +
                  ")");
    return 0;
}

const xproxy::wire::Registrar create_cmd(
    {"keyring-create",
     "keyring-create FILE [--key-id ID] [--bytes N] [--owner USER] [--group GROUP] [--mode 0600|0400] "
     "[--if-missing] - create a key ring with one random key",
     keyring_create});
const xproxy::wire::Registrar add_cmd(
    {"keyring-add",
     "keyring-add FILE [--key-id ID] [--bytes N] [--first] - add a random key as the second (or first) key",
     keyring_add});
const xproxy::wire::Registrar promote_cmd({"keyring-promote",
                                           "keyring-promote FILE ID - make key ID the first key: it signs",
                                           keyring_promote});
const xproxy::wire::Registrar retire_cmd(
    {"keyring-retire", "keyring-retire FILE ID [--force] - remove key ID (--force: even the signing key)",
     keyring_retire});
const xproxy::wire::Registrar list_cmd({"keyring-list",
                                        "keyring-list FILE - list position, id and size of every key, never a secret",
                                        keyring_list});
const xproxy::wire::Registrar import_cmd(
    {"keyring-import",
     "keyring-import FILE ID [--first] - add the secret read from stdin (base64:... or hex:...) as the second (or "
     "first) key",
     keyring_import});

}  // namespace
