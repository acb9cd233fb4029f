// daemon_options_test: the daemons' command line and config file (xproxy/daemon/
// options.hpp). Every error that comes from the file names it and the line
// ("FILE:LINE: why", exit status 2): a line that is not "name = value", an unknown name, a
// value the option's type refuses, a second value of a single-valued option. What the
// file accepted before still works: comments, blank lines, white space, values with
// spaces, repeatable options adding up, the command line winning over the file. The
// OptionOrigins filled on the way name the line of each value in force.
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <xproxy/daemon/options.hpp>

namespace {

namespace po = boost::program_options;
using xproxy::daemon::OptionOrigins;

// A config file in a directory of its own, removed at the end.
class ConfigFile {
public:
    explicit ConfigFile(const std::string& text) {
        char dir[] = "/tmp/xproxy-options-XXXXXX";
        EXPECT_NE(mkdtemp(dir), nullptr);
        dir_ = dir;
        path_ = dir_ + "/test.conf";
        std::ofstream(path_) << text;
    }
    ~ConfigFile() {
        unlink(path_.c_str());
        rmdir(dir_.c_str());
    }
    ConfigFile(const ConfigFile&) = delete;
    ConfigFile& operator=(const ConfigFile&) = delete;
    const std::string& path() const { return path_; }

private:
    std::string dir_, path_;
};

// The options of a small daemon, in the shapes the real ones use.
struct Settings {
    std::string config, mode, signer;
    unsigned timeout = 30;
    bool keep = false;
    std::vector<std::string> policies;
};

po::options_description describe(Settings& s) {
    po::options_description d("test options");
    d.add_options()("help,h", "help")("version", "version")("config,c", po::value(&s.config), "config file")(
        "mode,m", po::value(&s.mode), "mode")("signer", po::value(&s.signer), "signer")(
        "timeout", po::value(&s.timeout)->default_value(30), "seconds")("keep", po::bool_switch(&s.keep), "keep")(
        "policy,p", po::value(&s.policies)->composing(), "policies");
    return d;
}

struct Loaded {
    bool ok = false;
    int exit_code = -1;
    std::string error;
    Settings settings;
    OptionOrigins origins;
};

Loaded load(std::vector<std::string> args, const ConfigFile& file) {
    Loaded out;
    args.insert(args.begin(), {"--config", file.path()});
    auto desc = describe(out.settings);
    po::variables_map vm;
    out.ok = xproxy::daemon::load_options(args, desc, vm, "xproxy-test", "[options]", "1.0", out.exit_code, &out.error,
                                          true, &out.origins);
    return out;
}

TEST(LoadOptions, FileErrorsNameFileAndLine) {
    struct Row {
        const char* text;
        std::vector<std::string> args;
        const char* want_error;  // after "PATH:"
    };
    const Row rows[] = {
        {"# a comment\n\nbogus\n", {}, "3: invalid line 'bogus' (want: name = value)"},
        {"mode = inject\n  = value\n", {}, "2: invalid line '= value' (want: name = value)"},
        {"mode = inject\nnosuch = 1\n", {}, "2: unknown option 'nosuch'"},
        {"mode = inject\n\ntimeout = abc # seconds\n", {}, "3: the argument ('abc') for option 'timeout' is invalid"},
        {"keep = maybe\n",
         {},
         "1: the argument ('maybe') for option 'keep' is invalid. Valid choices are 'on|off', 'yes|no', '1|0' and "
         "'true|false'"},
        {"mode = inject\n# again:\nmode = verify\n",
         {},
         "3: option 'mode' cannot be specified more than once (first on line 1)"},
        {"keep = yes\nkeep = no\n", {}, "2: option 'keep' cannot be specified more than once (first on line 1)"},
        // Boost's sections prefix the names after them: no option is called that.
        {"[milter]\nmode = inject\n", {}, "2: unknown option 'milter.mode'"},
        // The command line's own value does not excuse an unknown name in the file.
        {"nosuch = 1\n", {"--mode", "inject"}, "1: unknown option 'nosuch'"},
    };
    for (const auto& r : rows) {
        ConfigFile file(r.text);
        auto got = load(r.args, file);
        EXPECT_FALSE(got.ok) << r.text;
        EXPECT_EQ(got.exit_code, 2) << r.text;
        EXPECT_EQ(got.error, file.path() + ":" + r.want_error) << r.text;
    }
}

// A file's bytes reach stderr and the log only escaped: no terminal escape, no line break.
TEST(LoadOptions, FileBytesInErrorsAreEscaped) {
    ConfigFile bad_line("\x1b[2J\xff\n");
    auto got = load({}, bad_line);
    EXPECT_EQ(got.error, bad_line.path() + ":1: invalid line '\\x1b[2J\\xff' (want: name = value)");
    ConfigFile bad_name("mode\x07x = inject\n");
    got = load({}, bad_name);
    EXPECT_EQ(got.error, bad_name.path() + ":1: unknown option 'mode\\x07x'");
    ConfigFile bad_value("timeout = 1\r\x1b\n");
    got = load({}, bad_value);
    EXPECT_EQ(got.error.find('\x1b'), std::string::npos) << got.error;
    EXPECT_NE(got.error.find("\\x1b"), std::string::npos) << got.error;
}

TEST(LoadOptions, ErrorIsPrintedWithTheProgramName) {
    ConfigFile file("mode = inject\nnosuch = 1\n");
    Settings s;
    auto desc = describe(s);
    po::variables_map vm;
    int code = -1;
    testing::internal::CaptureStderr();
    EXPECT_FALSE(xproxy::daemon::load_options({"--config", file.path()}, desc, vm, "xproxy-test", "", "", code));
    EXPECT_EQ(testing::internal::GetCapturedStderr(), "xproxy-test: " + file.path() + ":2: unknown option 'nosuch'\n");
    EXPECT_EQ(code, 2);
}

TEST(LoadOptions, CommentsBlankLinesAndSpacesAsBefore) {
    ConfigFile file(
        "# xproxy test\n\n   \n  signer =  a b  c   # trailing comment\n\tmode=inject\ntimeout = 5\n"
        "keep = true\n");
    auto got = load({}, file);
    ASSERT_TRUE(got.ok) << got.error;
    EXPECT_EQ(got.settings.signer, "a b  c");
    EXPECT_EQ(got.settings.mode, "inject");
    EXPECT_EQ(got.settings.timeout, 5u);
    EXPECT_TRUE(got.settings.keep);
    EXPECT_EQ(got.origins.where("signer"), file.path() + ":4");
    EXPECT_EQ(got.origins.where("mode"), file.path() + ":5");
    EXPECT_EQ(got.origins.where("timeout"), file.path() + ":6");
}

TEST(LoadOptions, CommandLineWinsOverTheFile) {
    // Single-valued options from the command line stay, even where the file repeats them;
    // the file's other lines still count.
    ConfigFile file("mode = inject\nmode = verify\ntimeout = 5\nkeep = no\n");
    auto got = load({"--mode", "verify", "--keep", "--timeout", "7"}, file);
    ASSERT_TRUE(got.ok) << got.error;
    EXPECT_EQ(got.settings.mode, "verify");
    EXPECT_EQ(got.settings.timeout, 7u);
    EXPECT_TRUE(got.settings.keep);
    EXPECT_EQ(got.origins.where("mode"), "");
    EXPECT_EQ(got.origins.where("timeout"), "");
    EXPECT_EQ(got.origins.locate("mode", "--mode must be inject or verify"), "--mode must be inject or verify");

    // A default value is not the command line's: the file sets it.
    ConfigFile timeout_only("timeout = 9\n");
    auto nine = load({}, timeout_only);
    ASSERT_TRUE(nine.ok) << nine.error;
    EXPECT_EQ(nine.settings.timeout, 9u);
}

TEST(LoadOptions, RepeatableOptionsAddUpWithTheirLines) {
    ConfigFile file("policy = inject\n# more\npolicy = vdomains,deposit\n");
    auto got = load({"--policy", "risk"}, file);
    ASSERT_TRUE(got.ok) << got.error;
    EXPECT_EQ(got.settings.policies, (std::vector<std::string>{"risk", "inject", "vdomains,deposit"}));
    EXPECT_EQ(got.origins.where("policy"), file.path() + ":1");
    EXPECT_EQ(got.origins.where("policy", "deposit"), file.path() + ":3");
    EXPECT_EQ(got.origins.where("policy", "risk"), "");  // the command line's
    EXPECT_EQ(got.origins.locate("policy", "--policy: bad", "vdomains"), file.path() + ":3: --policy: bad");
}

// A later check's message quotes the file's value: escaped like the parser's own errors.
TEST(LoadOptions, LocatedMessagesEscapeTheFilesBytes) {
    ConfigFile file("policy = x\x1b[2J\n");
    auto got = load({}, file);
    ASSERT_TRUE(got.ok) << got.error;
    EXPECT_EQ(got.origins.locate("policy", "--policy: x\x1b[2J is not a policy", "x\x1b[2J"),
              file.path() + ":1: --policy: x\\x1b[2J is not a policy");
}

TEST(LoadOptions, UnreadableFileAsBefore) {
    std::string path;
    {
        ConfigFile file("");
        path = file.path();
    }
    Settings s;
    auto desc = describe(s);
    po::variables_map vm;
    int code = -1;
    std::string error;
    EXPECT_FALSE(xproxy::daemon::load_options({"--config", path}, desc, vm, "xproxy-test", "", "", code, &error, true));
    EXPECT_EQ(error, "cannot read config file " + path);
    EXPECT_EQ(code, 2);
}

}  // namespace
