// data_encoder.hpp: a message as a client handed it over (RFC 5322 bytes, LF or CRLF line
// ends) in the form SMTP DATA carries it (RFC 5321 4.5.2), for an SMTP client.
//
// Line ends are read as DataDecoder reads them: CRLF, a bare LF, a run of CRs before an
// LF, and a CR (or run of CRs) not followed by LF each end one line, and each is written
// CRLF. So no bare CR or LF ever reaches the MTA (one that ends lines at either cannot be
// made to see an end of data or a line we did not send: RFC 5321 2.3.8), and the house's
// own relay reads the body back as it was written. A line that starts with "." gets a
// second one (dot-stuffing); a last line without a line end gets CRLF. The final ".\r\n"
// is the caller's.
//
// Promises: never throws (but std::bad_alloc), never reads past the message; a message
// that is already in wire form is recognised by scan_data_body() and needs no copy;
// canonical stretches are copied in one piece, not line by line.
#pragma once

#include <string>
#include <string_view>

namespace xproxy::smtp {

struct DataBodyScan {
    bool canonical = true;   // encode_data_body() would append the message unchanged
    bool eight_bit = false;  // a byte >= 0x80 (BODY=8BITMIME)
};

DataBodyScan scan_data_body(std::string_view message);

// Appends the wire form of `message` (without the final ".\r\n") to `out`.
void encode_data_body(std::string_view message, std::string& out);

}  // namespace xproxy::smtp
