// bdat.hpp: CHUNKING (RFC 3030): the argument of the BDAT command, and the conversion of
// a chunked body (raw bytes, no end marker) into the form DATA sends it in.
//
// parse_bdat() reads "<size>" or "<size> LAST" (LAST in any case, one or more spaces):
// size is 1 to 20 decimal digits. An argument that is not valid may still name a size
// (its first word is a number): the chunk that follows can then be read and dropped;
// without a size the receiver cannot know where the chunk ends and must close the
// session (RFC 3030, 2).
//
// BdatToData turns the bytes of a chunked body into DATA's wire form, as xproxyd's DATA
// path sends a body downstream (DataDecoder): lines end at CRLF, at a bare LF, or at a
// run of CRs (the CRs before an LF belong to that line end), every line goes out with
// CRLF, a line that starts with "." gets another "." (RFC 5321 4.5.2), and a body that
// does not end with a line end gets CRLF at the end (Postfix does the same when it sends
// a message received with BDAT on with DATA). Its output followed by ".\r\n", fed to a
// DataDecoder, decodes to itself and ends exactly after that dot.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace xproxy::smtp {

struct BdatArg {
    std::optional<std::uint64_t> size;  // the first word, when it is a decimal number
    bool last = false;                  // "LAST" follows the size
    bool valid = false;                 // the whole argument is "<size>" or "<size> LAST"
};

// arg: the argument of BDAT (smtp::split_command's CommandLine::arg).
BdatArg parse_bdat(std::string_view arg);

class BdatToData {
public:
    // Appends the DATA form of the body bytes [p, p+n) to `out`.
    void feed(std::string_view raw, std::string& out);
    // The end of the body: a line not ended yet gets CRLF. The final "." is the caller's.
    void finish(std::string& out);
    void reset() { *this = BdatToData(); }

private:
    bool bol_ = true;  // at the start of a line
    bool cr_ = false;  // inside a run of CRs (a line end, whatever follows)
};

}  // namespace xproxy::smtp
