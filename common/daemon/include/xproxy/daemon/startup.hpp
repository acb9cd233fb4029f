// startup.hpp: the start-up sequence every xproxy daemon follows (CODING.md, rule 10):
// parse options, --check-config, open listeners, access checks, drop privileges, run.
//
// A daemon's main() reads as that sequence; the steps shared by all of them are here:
//   Startup        the program's name on every start-up error ("PROGRAM: what", exit
//                  status 1), --log/--log-level, the log switched on after
//                  --check-config;
//   plan_listeners the checks --check-config runs on --listen and its access options
//                  (socket group and mode, --allow-peers, no TCP listener without it);
//   open_planned   after --check-config: the sockets' directories, the listeners opened
//                  and given to the MTA's group, the opened set checked again (which
//                  covers fd: and systemd).
// Every check names the option at fault; nothing here exits.
#pragma once

#include <string>
#include <vector>

#include <xproxy/base/ip.hpp>
#include <xproxy/base/result.hpp>
#include <xproxy/base/unique_fd.hpp>
#include <xproxy/daemon/listen.hpp>
#include <xproxy/daemon/log.hpp>
#include <xproxy/daemon/option_origins.hpp>

namespace xproxy::daemon {

class Startup {
public:
    explicit Startup(const char* program) : program_(program) {}
    const char* program() const { return program_; }

    // "PROGRAM: message" on stderr; returns 1, the exit status of a bad configuration.
    int fail(const std::string& message) const;

    // --log and --log-level; false after printing why (exit status 2).
    bool log_options(const std::string& sink_text, const std::string& level_text);
    log::Sink sink() const { return sink_; }
    // Configures the log (and with it the panic sink): after --check-config, which only
    // prints.
    void start_log() const { log::init(program_, sink_, level_); }

private:
    const char* program_;
    log::Sink sink_ = log::Sink::syslog;
    log::Level level_ = log::Level::info;
};

// The listener options shared by the daemons that serve an MTA (policyd, milter).
struct AccessOptions {
    std::string socket_mode;   // --socket-mode, octal
    std::string socket_group;  // --socket-group
    std::string allow_peers;   // --allow-peers, CIDR list
    std::string user;          // --user: a unix socket is given to it
};

// The listeners, checked.
struct ListenPlan {
    std::vector<ListenSpec> specs;
    unsigned socket_mode = 0660;
    std::string socket_group;
    std::string user;
    CidrSet allow_peers;
};

// The checks of --check-config, in this order: every spec parses and the group of a
// unix socket exists; --socket-mode is octal and grants "other" nothing; --allow-peers
// parses; no TCP listener without it. A failure names the config file line of the option
// at fault when `origins` knows it.
Expected<ListenPlan> plan_listeners(const std::vector<std::string>& listen, const AccessOptions& access,
                                    const OptionOrigins& origins = {});

// Not in --check-config (the directory may not exist before the service starts): the
// directory of every unix socket is root's.
Expected<void> check_socket_directories(const ListenPlan& plan);

// check_socket_directories(), then every listener opened (a unix socket with the plan's
// mode, given to the user and the group), then the opened set checked: no TCP listener
// without --allow-peers, no inherited unix socket open to every local user.
Expected<std::vector<UniqueFd>> open_planned(const ListenPlan& plan);

}  // namespace xproxy::daemon
