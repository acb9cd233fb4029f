// ldap_sync_cli: LdapDirectorySync from the command line, for tests/e2e/test_ldap_sync.py
// (a real slapd). Usage: ldap_sync_cli URL [SETTINGS_FILE]. Log lines go to stdout as
// "log LEVEL TEXT"; commands on stdin, one answer line each on stdout:
//   user ADDRESS   -> "user ADDRESS STATE HOME" | "user ADDRESS unknown" | "notloaded"
//   domain NAME    -> "domain NAME STATE SERVICES" | "domain NAME unknown" | "notloaded"
//   mta NAME       -> "mta NAME DEST,DEST" | "mta NAME unknown" | "notloaded"
//   status         -> "status connected=0|1 loaded=0|1 from_state=0|1 entries=N domains=N users=N mtas=N
//                      skipped=N refreshes=N publishes=N memory=BYTES cookie=C"
//   quit           -> stops the sync and exits 0
#include <cstdio>
#include <iostream>
#include <mutex>
#include <string>

#include <xproxy/base/file_loader.hpp>
#include <xproxy/ldap/ldap_directory.hpp>

using namespace xproxy;

namespace {
std::mutex out_mu;
void say(const std::string& line) {
    std::lock_guard<std::mutex> lock(out_mu);
    std::fputs((line + "\n").c_str(), stdout);
    std::fflush(stdout);
}
}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: ldap_sync_cli URL [SETTINGS_FILE]\n");
        return 2;
    }
    std::string text;
    if (argc > 2) {
        auto t = load_text_file(argv[2], kConfigFileRules);
        if (!t) {
            std::fprintf(stderr, "%s\n", t.error().c_str());
            return 2;
        }
        text = *t;
    }
    auto settings = parse_ldap_settings(argv[1], text);
    if (!settings) {
        std::fprintf(stderr, "%s\n", settings.error().c_str());
        return 2;
    }
    DirectoryCache cache;
    static const char* const kLevels[] = {"error", "warning", "info", "debug"};
    LdapDirectorySync sync(*settings, cache, [](LdapLogLevel level, const std::string& line) {
        say(std::string("log ") + kLevels[static_cast<int>(level)] + " " + line);
    });
    sync.start();
    std::string line;
    while (std::getline(std::cin, line)) {
        const std::size_t sp = line.find(' ');
        const std::string cmd = line.substr(0, sp), arg = sp == std::string::npos ? "" : line.substr(sp + 1);
        const auto dir = cache.get();
        if (cmd == "quit") break;
        if (cmd == "status") {
            const auto s = sync.status();
            say("status connected=" + std::to_string(s.connected) + " loaded=" + std::to_string(s.loaded) +
                " from_state=" + std::to_string(s.from_state) + " entries=" + std::to_string(s.entries) +
                " domains=" + std::to_string(s.domains) + " users=" + std::to_string(s.users) +
                " mtas=" + std::to_string(s.mtas) + " skipped=" + std::to_string(s.skipped) +
                " refreshes=" + std::to_string(s.refreshes) + " publishes=" + std::to_string(s.publishes) +
                " memory=" + std::to_string(dir->memory_bytes()) + " cookie=" + s.cookie);
            continue;
        }
        if (!dir->loaded()) {  // the cache's default: nothing published yet
            say("notloaded");
            continue;
        }
        if (cmd == "user") {
            const auto u = dir->find_address(arg);
            say(u ? "user " + arg + " " + std::string(to_string(u->state)) + " " +
                        (dir->home_of(*u).empty() ? std::string("-") : std::string(dir->home_of(*u)))
                  : "user " + arg + " unknown");
        } else if (cmd == "domain") {
            const auto d = dir->find_domain(arg);
            say(d ? "domain " + arg + " " + std::string(to_string(d->state)) + " " + d->services.to_string()
                  : "domain " + arg + " unknown");
        } else if (cmd == "mta") {
            const auto m = dir->find_mta(arg);
            std::string dests;
            if (m)
                for (const auto& e : m->destinations)
                    dests += (dests.empty() ? "" : ",") + Endpoint{e.address, e.port}.to_string();
            say(m ? "mta " + arg + " " + dests : "mta " + arg + " unknown");
        } else {
            say("error unknown command");
        }
    }
    sync.stop();
    return 0;
}
