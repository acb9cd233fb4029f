// startup.cpp: the shared start-up steps; see startup.hpp.
#include <xproxy/daemon/startup.hpp>

#include <cstdio>

#include <xproxy/daemon/access.hpp>
#include <xproxy/daemon/options.hpp>

namespace xproxy::daemon {

int Startup::fail(const std::string& message) const {
    std::fprintf(stderr, "%s: %s\n", program_, message.c_str());
    return 1;
}

bool Startup::log_options(const std::string& sink_text, const std::string& level_text) {
    return parse_log_options(sink_text, level_text, sink_, level_, program_);
}

Expected<ListenPlan> plan_listeners(const std::vector<std::string>& listen, const AccessOptions& access,
                                    const OptionOrigins& origins) {
    ListenPlan plan;
    for (const auto& text : listen) {
        auto spec = parse_listen(text);
        if (!spec) return Failure{origins.locate("listen", spec.error(), text)};
        if (spec->kind == ListenSpec::Kind::unix_) {
            if (auto group = check_socket_group(access.socket_group, spec->path); !group)
                return Failure{origins.locate("socket-group", group.error())};
        }
        plan.specs.push_back(std::move(*spec));
    }
    if (!parse_socket_mode(access.socket_mode, plan.socket_mode))
        return Failure{origins.locate("socket-mode", "--socket-mode must be octal, e.g. 0660")};
    if (auto mode = check_socket_mode(plan.socket_mode); !mode)
        return Failure{origins.locate("socket-mode", mode.error())};
    // A daemon that signs is a signing oracle for whoever reaches it: a TCP listener
    // serves only the MTAs in --allow-peers, and none without it (checked again on the
    // opened sockets, which covers fd: and systemd).
    auto allow = CidrSet::parse(access.allow_peers);
    if (!allow) return Failure{origins.locate("allow-peers", "--allow-peers: " + allow.error())};
    plan.allow_peers = *allow;
    for (const auto& spec : plan.specs) {
        if (spec.kind == ListenSpec::Kind::inet && plan.allow_peers.empty())
            return Failure{origins.locate(
                "listen",
                "TCP listener " + spec.text +
                    " would serve nobody: add --allow-peers CIDR naming the MTA's address (an address of this "
                    "host lets every local user in), or listen on unix:PATH",
                spec.text)};
    }
    plan.socket_group = access.socket_group;
    plan.user = access.user;
    return plan;
}

Expected<void> check_socket_directories(const ListenPlan& plan) {
    for (const auto& spec : plan.specs) {
        if (spec.kind != ListenSpec::Kind::unix_) continue;
        if (auto dir = check_socket_directory(spec.path); !dir) return dir;
    }
    return {};
}

Expected<std::vector<UniqueFd>> open_planned(const ListenPlan& plan) {
    if (auto dirs = check_socket_directories(plan); !dirs) return Failure{dirs.error()};
    std::vector<UniqueFd> out;
    for (const auto& spec : plan.specs) {
        auto fds = open_listeners(spec, plan.socket_mode);
        if (!fds) return Failure{fds.error()};
        if (spec.kind == ListenSpec::Kind::unix_) {
            auto given = set_socket_access(spec.path, plan.user, plan.socket_group, plan.socket_mode);
            if (!given) return Failure{given.error()};
        }
        for (auto& fd : *fds) out.push_back(std::move(fd));
    }
    const auto fds = raw_fds(out);
    if (auto inet = check_inet_allowed(fds, plan.allow_peers, "--allow-peers"); !inet) return Failure{inet.error()};
    if (auto unix_ = check_unix_listeners(fds); !unix_) return Failure{unix_.error()};
    return out;
}

}  // namespace xproxy::daemon
