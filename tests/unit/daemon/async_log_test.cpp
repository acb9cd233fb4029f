// daemon_async_log_test: the asynchronous daemon log that xproxy-policyd switches on
// before serving (xproxy/daemon/log.hpp): a writer never waits for a stuck sink, lines
// keep their order, lines that find the queue full are dropped and counted, and
// stop_async() writes everything queued and returns to direct writing.
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <xproxy/daemon/log.hpp>

namespace {

using namespace xproxy;

// Points fd 2 at a small pipe that nobody reads until drain(): the log's writer thread
// blocks on it like on a syslog socket that does not keep up.
class StuckStderr {
public:
    StuckStderr() {
        EXPECT_EQ(pipe(fds_), 0);
        fcntl(fds_[1], F_SETPIPE_SZ, 4096);
        saved_ = dup(2);
        dup2(fds_[1], 2);
    }
    // Reads in the background from now on (the writer thread can go on).
    void start_draining() {
        reader_ = std::thread([this] {
            char buf[4096];
            ssize_t n;
            while ((n = read(fds_[0], buf, sizeof buf)) > 0) text_.append(buf, static_cast<std::size_t>(n));
        });
    }
    // Restores fd 2 and returns everything written to the pipe.
    std::string finish() {
        dup2(saved_, 2);
        close(saved_);
        close(fds_[1]);
        reader_.join();
        close(fds_[0]);
        return text_;
    }

private:
    int fds_[2] = {-1, -1};
    int saved_ = -1;
    std::thread reader_;
    std::string text_;
};

TEST(PolicydAsyncLog, StuckSinkNeverBlocksWritersKeepsOrderCountsDrops) {
    StuckStderr err;
    log::init("policyd_async_log_test", log::Sink::stderr_, log::Level::info);
    log::start_async(16);
    const int total = 5000;
    const std::string pad(80, 'x');
    // With nobody reading, the pipe (4 KiB), the line in the writer's hands and the queue
    // (16 lines) take well under 5000 lines of 100 bytes: most must be dropped, and none
    // of these calls may wait. A writer that blocks is only released by the reader: give
    // it a minute (a liveness bound, not a speed check), then drain either way.
    std::promise<void> done;
    auto finished = done.get_future();
    std::thread writer([&] {
        for (int i = 0; i < total; ++i) log::info("event=line n=%d pad=%s", i, pad.c_str());
        done.set_value();
    });
    EXPECT_EQ(finished.wait_for(std::chrono::seconds(60)), std::future_status::ready)
        << "a log call blocked on the stuck sink";
    err.start_draining();
    writer.join();
    log::stop_async();
    log::info("event=direct");  // after stop_async(): written at once
    std::string text = err.finish();

    std::istringstream in(text);
    std::string line;
    int last = -1, lines = 0;
    long dropped = 0;
    bool direct_last = false;
    const std::string numbered = ": info: event=line n=", drop = ": warning: event=log_dropped lines=";
    const std::string tail = " pad=" + pad;
    while (std::getline(in, line)) {
        direct_last = false;
        if (auto at = line.find(numbered); at != std::string::npos) {
            std::size_t digits = 0;
            int n = std::stoi(line.substr(at + numbered.size()), &digits);
            EXPECT_EQ(line.substr(at + numbered.size() + digits), tail) << line;
            EXPECT_GT(n, last) << line;
            last = n;
            ++lines;
        } else if (auto d = line.find(drop); d != std::string::npos) {
            dropped += std::stol(line.substr(d + drop.size()));
        } else if (line.find(": info: event=direct") != std::string::npos) {
            direct_last = true;
        } else {
            ADD_FAILURE() << "unexpected line: " << line;
        }
    }
    EXPECT_TRUE(direct_last);
    EXPECT_GT(dropped, 0);
    EXPECT_GT(lines, 0);
    EXPECT_EQ(lines + dropped, total);
}

TEST(PolicydAsyncLog, StopWithoutStartAndTwiceIsHarmless) {
    log::init("policyd_async_log_test", log::Sink::off, log::Level::info);
    log::stop_async();
    log::start_async(4);
    log::info("event=nothing");  // sink off: not even queued
    log::stop_async();
    log::stop_async();
    SUCCEED();
}

}  // namespace
