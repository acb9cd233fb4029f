// depositd_inject_driver: SmtpInjector from the command line, for
// tests/e2e/test_depositd_inject.py (a real Postfix). Injects one message file and
// prints the result as key=value lines (outcome, code, enhanced, stage, queue_id, text);
// with --count N it injects it N times, --parallel P at a time, and prints the rate.
// Usage: depositd_inject_driver --mta SPEC --client ADDR --port N [--helo NAME]
//        [--login ID] --from ADDR --rcpt ADDR... --message FILE [--trace-header FILE]
//        [--helo-name NAME] [--timeout SECONDS] [--count N] [--parallel P]
// Exit status: 0 accepted, 1 tempfail, 2 permfail, 3 usage.
#include <utility>  // before Boost.Asio 1.74's awaitable.hpp, which uses std::exchange

#include <boost/asio.hpp>
#include <chrono>
#include <cstdio>
#include <exception>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>

#include <xproxy/base/text.hpp>

#include "smtp_injector.hpp"

using namespace xproxy;
using namespace xproxy::depositd;
namespace asio = boost::asio;

namespace {

int usage(const char* why) {
    std::fprintf(stderr, "depositd_inject_driver: %s\n", why);
    return 3;
}

bool read_file(const std::string& path, std::string& out) {
    std::ifstream f(path, std::ios::binary);
    if (!f) return false;
    out.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    return true;
}

const char* name(InjectOutcome o) {
    switch (o) {
        case InjectOutcome::accepted: return "accepted";
        case InjectOutcome::tempfail: return "tempfail";
        case InjectOutcome::permfail: return "permfail";
    }
    return "?";
}

}  // namespace

namespace {

int run(int argc, char** argv) {
    InjectorConfig cfg;
    InjectRequest req;
    std::string message, message_file, trace_file, client;
    std::uint16_t port = 0;
    unsigned count = 1, parallel = 1;
    for (int i = 1; i < argc; ++i) {
        const std::string k = argv[i];
        if (i + 1 >= argc) return usage(("missing value for " + k).c_str());
        const std::string v = argv[++i];
        if (k == "--mta") cfg.mta = v;
        else if (k == "--client") client = v;
        else if (k == "--port") port = parse_decimal<std::uint16_t>(v).value_or(0);
        else if (k == "--helo") req.source.helo = v;
        else if (k == "--login") req.source.login = v;
        else if (k == "--from") req.sender = v;
        else if (k == "--rcpt") req.recipients.push_back(v);
        else if (k == "--message") message_file = v;
        else if (k == "--trace-header") trace_file = v;
        else if (k == "--helo-name") cfg.helo_name = v;
        else if (k == "--timeout")
            cfg.command_timeout = cfg.data_timeout = std::chrono::seconds(parse_decimal<unsigned>(v).value_or(10));
        else if (k == "--count") count = parse_decimal<unsigned>(v).value_or(1);
        else if (k == "--parallel") parallel = parse_decimal<unsigned>(v).value_or(1);
        else return usage(("unknown option " + k).c_str());
    }
    const auto ip = IpAddress::parse(client);
    if (!ip || message_file.empty()) return usage("--client ADDR and --message FILE are required");
    req.source.client = Endpoint{*ip, port};
    if (!read_file(message_file, message)) return usage("cannot read the message file");
    if (!trace_file.empty() && !read_file(trace_file, req.trace_header)) return usage("cannot read the trace header");
    req.message = message;

    asio::io_context ioc;
    const SmtpInjector inj(cfg);
    InjectResult last;
    unsigned started = 0, accepted = 0;
    auto worker = [&]() -> asio::awaitable<void> {
        while (started < count) {
            ++started;
            InjectResult r = co_await inj.inject(ioc.get_executor(), req);
            if (r.outcome == InjectOutcome::accepted) ++accepted;
            last = std::move(r);
        }
    };
    const auto t0 = std::chrono::steady_clock::now();
    for (unsigned p = 0; p < parallel && p < count; ++p) asio::co_spawn(ioc, worker(), asio::detached);
    ioc.run();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("outcome=%s\ncode=%d\nenhanced=%s\nstage=%s\nqueue_id=%s\ntext=%s\n", name(last.outcome), last.code,
                last.enhanced.c_str(), last.stage.c_str(), last.queue_id.c_str(), last.text.c_str());
    if (count > 1) std::printf("accepted=%u\nseconds=%.3f\nrate=%.1f\n", accepted, secs, count / secs);
    return last.outcome == InjectOutcome::accepted ? 0 : last.outcome == InjectOutcome::tempfail ? 1 : 2;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "depositd_inject_driver: %s\n", e.what());
        return 3;
    }
}
