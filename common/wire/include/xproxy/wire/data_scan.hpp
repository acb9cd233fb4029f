// data_scan.hpp: whether a message as a client handed it over (RFC 5322 bytes, LF or
// CRLF line ends) is already in the form SMTP DATA carries it, so that an SMTP client
// can send it from the caller's buffer instead of converting it (BdatToData, bdat.hpp,
// does the conversion: every line end CRLF, dot-stuffing, a final CRLF).
//
// canonical: every CR is followed by LF and every LF preceded by CR, no line starts with
// ".", and the message is empty or ends with CRLF; exactly when BdatToData would give the
// message back unchanged. eight_bit: a byte >= 0x80 (BODY=8BITMIME).
//
// Promises: never throws, never reads past the message; the line ends are found with a
// vector search (16 bytes at a time where SSE2 exists), the 8-bit test in a loop the
// compiler vectorises.
#pragma once

#include <string_view>

namespace xproxy::smtp {

struct DataBodyScan {
    bool canonical = true;
    bool eight_bit = false;
};

DataBodyScan scan_data_body(std::string_view message);

}  // namespace xproxy::smtp
