// config.cpp: parse the XPROXY_* settings. Any error makes the shim inert (closed
// default: nothing is trusted when the configuration cannot be understood).
#include "config.hpp"

#include <cstring>
#include <fstream>
#include <map>

#include <xproxy/base/text.hpp>

namespace xproxy::preload {

namespace {

bool parse_bool(const std::string& s, bool& out) {
    if (s == "1" || s == "yes" || s == "true" || s == "on") out = true;
    else if (s == "0" || s == "no" || s == "false" || s == "off") out = false;
    else return false;
    return true;
}

}  // namespace

bool Config::manages_port(std::uint16_t port) const {
    if (ports.empty()) return true;
    for (auto p : ports)
        if (p == port) return true;
    return false;
}

Config load_config(const char* (*lookup)(const char*)) {
    Config c;
    std::map<std::string, std::string> vars;
    const char* names[] = {"XPROXY_TRUSTED",     "XPROXY_PORTS",         "XPROXY_TIMEOUT_MS",  "XPROXY_REQUIRE",
                           "XPROXY_GETSOCKNAME", "XPROXY_HMAC_KEY_FILE", "XPROXY_HMAC_WINDOW", "XPROXY_LOG",
                           "XPROXY_LOG_LEVEL",   "XPROXY_LOG_SUMMARY"};
    if (const char* file = lookup("XPROXY_CONFIG"); file && *file) {
        std::ifstream in(file);
        if (!in) c.errors.push_back(std::string("cannot read XPROXY_CONFIG ") + file);
        std::string line;
        int lineno = 0;
        while (std::getline(in, line)) {
            ++lineno;
            line = std::string(trim(line));
            if (line.empty() || line[0] == '#') continue;
            auto eq = line.find('=');
            if (eq == std::string::npos) {
                c.errors.push_back(std::string(file) + ":" + std::to_string(lineno) + ": expected NAME=value");
                continue;
            }
            const std::string_view l = line;
            vars[std::string(trim(l.substr(0, eq)))] = trim(l.substr(eq + 1));
        }
    }
    for (const char* n : names)  // the environment overrides the file
        if (const char* v = lookup(n)) vars[n] = trim(v);

    for (const auto& [name, value] : vars) {
        bool known = false;
        for (const char* n : names) known = known || name == n;
        if (!known) c.errors.push_back("unknown setting " + name);
    }
    if (auto it = vars.find("XPROXY_TRUSTED"); it != vars.end()) {
        auto set = CidrSet::parse(it->second);
        if (set) c.trusted = *set;
        else c.errors.push_back("XPROXY_TRUSTED: " + set.error());
    }
    if (auto it = vars.find("XPROXY_PORTS"); it != vars.end()) {
        std::string list = it->second;
        for (auto& ch : list)
            if (ch == ',') ch = ' ';
        std::size_t i = 0;
        while (i < list.size()) {
            auto j = list.find(' ', i);
            auto item = list.substr(i, j == std::string::npos ? std::string::npos : j - i);
            if (!item.empty()) {
                const auto port = parse_decimal<std::uint16_t>(item);
                if (port && *port >= 1) c.ports.push_back(*port);
                else c.errors.push_back("XPROXY_PORTS: bad port '" + item + "'");
            }
            if (j == std::string::npos) break;
            i = j + 1;
        }
    }
    if (auto it = vars.find("XPROXY_TIMEOUT_MS"); it != vars.end()) {
        const auto v = parse_decimal<unsigned>(it->second, 600000);
        if (v && *v >= 1) c.timeout_ms = static_cast<int>(*v);
        else c.errors.push_back("XPROXY_TIMEOUT_MS: expected 1..600000");
    }
    if (auto it = vars.find("XPROXY_REQUIRE"); it != vars.end() && !parse_bool(it->second, c.require))
        c.errors.push_back("XPROXY_REQUIRE: expected 0 or 1");
    if (auto it = vars.find("XPROXY_GETSOCKNAME");
        it != vars.end() && !parse_bool(it->second, c.getsockname_destination))
        c.errors.push_back("XPROXY_GETSOCKNAME: expected 0 or 1");
    if (auto it = vars.find("XPROXY_HMAC_KEY_FILE"); it != vars.end() && !it->second.empty()) {
        auto key = read_secret_file(it->second, kMinHmacKeySize);
        if (key) c.hmac_key = std::move(*key);
        else c.errors.push_back("XPROXY_HMAC_KEY_FILE " + key.error());
    }
    if (auto it = vars.find("XPROXY_HMAC_WINDOW"); it != vars.end()) {
        const auto v = parse_decimal<unsigned>(it->second, 600);
        if (v && *v >= 1) c.hmac_window = static_cast<int>(*v);
        else c.errors.push_back("XPROXY_HMAC_WINDOW: expected 1..600 (seconds)");
    }
    if (auto it = vars.find("XPROXY_LOG"); it != vars.end()) {
        if (it->second == "syslog") c.log = Config::Log::syslog;
        else if (it->second == "stderr") c.log = Config::Log::stderr_;
        else if (it->second == "off") c.log = Config::Log::off;
        else if (it->second.rfind("file:/", 0) == 0) {
            c.log = Config::Log::file;
            c.log_file = it->second.substr(5);
        } else c.errors.push_back("XPROXY_LOG: expected syslog, stderr, file:/PATH or off");
    }
    if (auto it = vars.find("XPROXY_LOG_LEVEL"); it != vars.end()) {
        const char* levels[] = {"error", "warning", "info", "debug"};
        int found = -1;
        for (int i = 0; i < 4; ++i)
            if (it->second == levels[i]) found = i;
        if (found < 0) c.errors.push_back("XPROXY_LOG_LEVEL: expected error, warning, info or debug");
        else c.log_level = found;
    }
    if (auto it = vars.find("XPROXY_LOG_SUMMARY"); it != vars.end()) {
        const auto v = parse_decimal<unsigned>(it->second, 86400);
        if (v && *v >= 1) c.log_summary_s = static_cast<int>(*v);
        else c.errors.push_back("XPROXY_LOG_SUMMARY: expected 1..86400 (seconds)");
    }
    return c;
}

}  // namespace xproxy::preload
