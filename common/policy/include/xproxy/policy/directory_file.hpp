// directory_file.hpp: the directory file, xproxy's embedded directory backend.
//
// A line-oriented text file a person can read and edit (doc/directory.md,
// packaging/examples/directory.example):
//
//   # comment (a '#' that starts a word starts a comment)
//   mta    mta1.example.net destinations=192.0.2.10,[2001:db8::10]:2525 encoding=auto tls=verify
//   domain example.com state=active services=smtp,submission require_tls=no admin=hostmaster@example.com postmaster=postmaster@example.com
//   user   alice@example.com state=active home=mta1.example.net alias=a.smith,sales login=alice cert=AB:CD:...
//
// Words are separated by spaces or tabs; attributes are name=value with no space inside;
// list values are comma-separated and list attributes may repeat. A domain line must come
// before the users of that domain; an mta line may come anywhere (a domain's home= is
// the default of its users). Every attribute is
// optional except an mta's destinations (defaults: state=active, services=smtp,submission,
// require_tls=no, encoding=auto, no admin/postmaster/home/alias/login/cert/tls/tls-name).
//
// Promises: lines end with LF (a CR before it is ignored) and are at most
// kMaxDirectoryLine bytes; the first error stops parsing and is reported as
// "line N: what is wrong" (a caller that read the file with load_and_parse(),
// xproxy/base/file_loader.hpp, gets "PATH:N: ..."). Parsing
// is a single pass over string_views (no regex, no per-line allocation) with tables
// reserved from a pre-count: 100,000 domains and 1,000,000 users load in well under 5 s.
// Never throws on bad input.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <xproxy/base/result.hpp>
#include <xproxy/policy/directory.hpp>

namespace xproxy {

inline constexpr std::size_t kMaxDirectoryLine = 4096;  // bytes, LF excluded

// Parses the text of a directory file (read it with load_and_parse(path,
// kConfigFileRules, parse_directory): errors "PATH: cannot read: REASON" or "PATH:N: ...").
Expected<Directory> parse_directory(std::string_view text);

// One item of an MTA's destinations: a.b.c.d[:PORT] or [IPv6][:PORT], port 1..65535
// (default 25). The error quotes the item ("destinations=: '...': ...").
Expected<MtaEndpoint> parse_mta_destination(std::string_view item);

// Writes a directory back in the file format (names lower case, the mta lines first,
// then one line per domain, its users after it); parse_directory(format_directory(d))
// describes the same directory.
std::string format_directory(const Directory& d);

}  // namespace xproxy
