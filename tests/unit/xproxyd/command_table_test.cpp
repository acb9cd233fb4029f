// xproxyd_command_table_test: the front-side command table. Each row's flags are checked
// against every state that matters: a command its row does not allow now gets the same
// refusal the handlers gave before the table existed (upstream MTAs and the e2e tests
// read them), in the same order when several apply, and counts towards --max-errors
// only where it did.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "command_table.hpp"

using namespace xproxy;
using namespace xproxy::xproxyd;

namespace {

// The states a session can be in, as far as the rows care.
const FrontState kGreeted{};                                                    // before HELO/EHLO
const FrontState kHelo{.helo = true};                                           // after EHLO
const FrontState kMail{.helo = true, .transaction = true};                      // MAIL accepted
const FrontState kRcpt{.helo = true, .transaction = true, .recipients = true};  // and a RCPT
const FrontState kTlsOffered{.helo = true, .tls_offered = true};                // STARTTLS configured
const FrontState kTlsMail{.helo = true, .transaction = true, .tls_offered = true};
const FrontState kTlsDone{.helo = true, .tls_offered = true, .tls = true};  // after STARTTLS
// A mode=submission listener: before TLS, after it, after AUTH, in a transaction.
const FrontState kSub{.helo = true, .tls_offered = true, .submission = true};
const FrontState kSubTls{.helo = true, .tls_offered = true, .tls = true, .submission = true};
const FrontState kSubAuth{.helo = true, .tls_offered = true, .tls = true, .submission = true, .authenticated = true};
const FrontState kSubMail{
    .helo = true, .transaction = true, .tls_offered = true, .tls = true, .submission = true, .authenticated = true};

struct Case {
    const char* line;
    FrontState state;
    const char* want_reply;  // nullptr: the handler runs
    bool want_counts;        // the refusal counts towards --max-errors
};

const Case kCases[] = {
    // EHLO/HELO: a hostname is required; allowed in every state (they end a transaction).
    {"EHLO", kGreeted, "501 5.5.4 Syntax: EHLO hostname", true},
    {"HELO", kMail, "501 5.5.4 Syntax: HELO hostname", true},
    {"ehlo client.example", kGreeted, nullptr, false},
    {"HELO client.example", kMail, nullptr, false},
    // MAIL: after HELO/EHLO, not inside a transaction.
    {"MAIL FROM:<a@example.org>", kGreeted, "503 5.5.1 Error: send HELO/EHLO first", false},
    {"MAIL FROM:<a@example.org>", kMail, "503 5.5.1 Error: nested MAIL command", false},
    {"MAIL FROM:<a@example.org>", kRcpt, "503 5.5.1 Error: nested MAIL command", false},
    {"MAIL FROM:<a@example.org>", kHelo, nullptr, false},
    {"MAIL", kHelo, nullptr, false},  // the handler's parser answers a missing path
    // RCPT: inside a transaction.
    {"RCPT TO:<b@example.net>", kGreeted, "503 5.5.1 Error: need MAIL command", false},
    {"RCPT TO:<b@example.net>", kHelo, "503 5.5.1 Error: need MAIL command", false},
    {"RCPT TO:<b@example.net>", kMail, nullptr, false},
    {"RCPT TO:<b@example.net>", kRcpt, nullptr, false},
    // DATA: no argument (checked first, counted), then a transaction with recipients.
    {"DATA x", kGreeted, "501 5.5.4 Syntax: DATA", true},
    {"DATA x", kRcpt, "501 5.5.4 Syntax: DATA", true},
    {"DATA", kGreeted, "503 5.5.1 Error: need RCPT command", false},
    {"DATA", kHelo, "503 5.5.1 Error: need RCPT command", false},
    {"DATA", kMail, "554 5.5.1 Error: no valid recipients", false},
    {"DATA", kRcpt, nullptr, false},
    // BDAT: as DATA, but its argument is the handler's (a refused BDAT's chunk is read
    // and dropped by the session, which needs the size from the argument).
    {"BDAT 10", kGreeted, "503 5.5.1 Error: send HELO/EHLO first", false},
    {"BDAT 10 LAST", kHelo, "503 5.5.1 Error: need RCPT command", false},
    {"BDAT 10", kMail, "554 5.5.1 Error: no valid recipients", false},
    {"BDAT", kRcpt, nullptr, false},
    {"BDAT 0 LAST", kRcpt, nullptr, false},
    // STARTTLS: offered, not twice, no argument (not counted), not inside a transaction,
    // in this order.
    {"STARTTLS", kHelo, "502 5.5.1 Error: command not implemented", false},
    {"STARTTLS x", kMail, "502 5.5.1 Error: command not implemented", false},
    {"STARTTLS x", kTlsDone, "554 5.5.1 Error: TLS already active", false},
    {"STARTTLS", kTlsDone, "554 5.5.1 Error: TLS already active", false},
    {"STARTTLS x", kTlsMail, "501 5.5.4 Syntax: STARTTLS", false},
    {"STARTTLS", kTlsMail, "503 5.5.1 Error: MAIL transaction in progress", false},
    {"STARTTLS", kTlsOffered, nullptr, false},
    {"STARTTLS", FrontState{.tls_offered = true}, nullptr, false},  // before EHLO too
    // The source commands: not inside a transaction; before HELO/EHLO they are allowed.
    {"XCLIENT ADDR=192.0.2.1", kMail, "503 5.5.1 Error: MAIL transaction in progress", false},
    {"XFORWARD ADDR=192.0.2.1", kRcpt, "503 5.5.1 Error: MAIL transaction in progress", false},
    {"XPROXYFROM SID=1 IP=192.0.2.1 PORT=1", kMail, "503 5.5.1 Error: MAIL transaction in progress", false},
    {"XCLIENT ADDR=192.0.2.1", kGreeted, nullptr, false},
    {"XFORWARD ADDR=192.0.2.1", kHelo, nullptr, false},
    {"XPROXYFROM SID=1 IP=192.0.2.1 PORT=1", kGreeted, nullptr, false},
    // Always allowed, with or without an argument.
    {"RSET", kGreeted, nullptr, false},
    {"RSET x", kRcpt, nullptr, false},
    {"NOOP", kMail, nullptr, false},
    {"NOOP x", kGreeted, nullptr, false},
    {"QUIT", kRcpt, nullptr, false},
    {"VRFY b@example.net", kGreeted, nullptr, false},
    {"HELP", kRcpt, nullptr, false},
    {"STARTTLS", kTlsOffered, nullptr, false},
    // AUTH: a submission listener only, a mechanism named (counted), after EHLO, outside a
    // transaction, once, over TLS (RFC 4954 4), in this order.
    {"AUTH PLAIN", kTlsDone, "502 5.5.1 Error: command not implemented", false},
    {"AUTH", kSubTls, "501 5.5.4 Syntax: AUTH mechanism [initial-response]", true},
    {"AUTH PLAIN", FrontState{.tls = true, .submission = true}, "503 5.5.1 Error: send HELO/EHLO first", false},
    {"AUTH PLAIN", kSubMail, "503 5.5.1 Error: MAIL transaction in progress", false},
    {"AUTH PLAIN", kSubAuth, "503 5.5.1 Error: already authenticated", false},
    {"AUTH PLAIN", kSub, "538 5.7.11 Encryption required for requested authentication mechanism", false},
    {"AUTH PLAIN", kSubTls, nullptr, false},
    // MAIL on a submission listener: after AUTH; elsewhere as before.
    {"MAIL FROM:<a@example.org>", kSub, "530 5.7.0 Authentication required", false},
    {"MAIL FROM:<a@example.org>", kSubTls, "530 5.7.0 Authentication required", false},
    {"MAIL FROM:<a@example.org>", kSubAuth, nullptr, false},
    // The source commands are not for a submission listener's clients.
    {"XCLIENT ADDR=192.0.2.1", kSubTls, "502 5.5.1 Error: command not implemented", false},
    {"XFORWARD ADDR=192.0.2.1", kSubAuth, "502 5.5.1 Error: command not implemented", false},
    {"XPROXYFROM SID=1 IP=192.0.2.1 PORT=1", kSub, "502 5.5.1 Error: command not implemented", false},
    {"XPROXYTO DESTINATIONS=[192.0.2.1]", kSubAuth, "502 5.5.1 Error: command not implemented", false},
};

}  // namespace

TEST(CommandTable, EachRowEnforcesItsFlags) {
    for (const Case& c : kCases) {
        const smtp::CommandLine cmd = smtp::split_command(c.line);
        const CommandRow* row = CommandTable::find(cmd.verb);
        ASSERT_NE(row, nullptr) << c.line;
        const auto refusal = CommandTable::check(*row, cmd, c.state);
        if (!c.want_reply) {
            EXPECT_FALSE(refusal.has_value()) << c.line << " -> " << refusal->reply;
            continue;
        }
        ASSERT_TRUE(refusal.has_value()) << c.line;
        EXPECT_EQ(refusal->reply, c.want_reply) << c.line;
        EXPECT_EQ(refusal->counts_as_error, c.want_counts) << c.line;
    }
}

TEST(CommandTable, OneRowPerKnownVerb) {
    const std::set<std::string> want = {"EHLO",       "HELO",     "MAIL", "RCPT",     "DATA",    "BDAT",
                                        "RSET",       "NOOP",     "QUIT", "STARTTLS", "XCLIENT", "XFORWARD",
                                        "XPROXYFROM", "XPROXYTO", "VRFY", "HELP",     "AUTH"};
    std::set<std::string> got;
    for (const CommandRow& row : CommandTable::rows()) {
        EXPECT_TRUE(got.insert(std::string(row.verb)).second) << "two rows for " << row.verb;
        EXPECT_NE(row.handler, nullptr) << row.verb;
        EXPECT_EQ(CommandTable::find(row.verb), &row) << row.verb;
        // A row that refuses an argument names the usage it answers with.
        if (row.arg != ArgRule::any) {
            EXPECT_FALSE(row.usage.empty()) << row.verb;
        }
    }
    EXPECT_EQ(got, want);
}

TEST(CommandTable, UnknownVerbsHaveNoRow) {
    for (const char* verb : {"", "BURL", "ETRN", "EXPN", "TURN", "MAI", "MAILX", "ehlo"})
        EXPECT_EQ(CommandTable::find(verb), nullptr) << verb;
}

TEST(CommandTable, OnlyBdatIsFollowedByAChunk) {
    for (const CommandRow& row : CommandTable::rows())
        EXPECT_EQ(row.has(command_flags::chunk_follows), row.verb == "BDAT") << row.verb;
}

TEST(CommandTable, OnlyXproxyfromContinuesItsSequence) {
    for (const CommandRow& row : CommandTable::rows())
        EXPECT_EQ(row.has(command_flags::continues_sequence), row.verb == "XPROXYFROM") << row.verb;
}
