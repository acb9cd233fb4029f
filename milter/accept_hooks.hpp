// accept_hooks.hpp: what accept_hooks.cpp (the executable's accept()/read() over libmilter)
// needs from main(). libmilter accepts connections itself and tells the filter nothing
// about the peer of its socket (xxfi_connect carries the MTA's client, not the MTA), so the
// peer check of a TCP listener happens in the interposed accept().
#pragma once

#include <atomic>

#include <xproxy/base/ip.hpp>

namespace xproxy::milter {

// From now on a TCP connection whose peer is not in *allow is closed as soon as it is
// accepted and logged as event=peer_refused; libmilter sees ECONNABORTED and goes on
// accepting. Unix connections are not checked (the socket's permissions decide). Call
// once before smfi_main(); *allow must outlive it.
void set_peer_allow_list(const CidrSet* allow);

// What the interposed accept() does with a descriptor c that accept4() returned (any
// number, however large): a TCP connection from a peer outside the list is closed and -1
// returned with errno ECONNABORTED; an admitted one gets TCP_NODELAY and TCP_QUICKACK.
// Then marks[c] records whether c is TCP (for read()); only that bookkeeping is skipped
// when c >= nmarks, never the peer check. A negative c is returned as is.
int screen_accepted(int c, std::atomic<unsigned char>* marks, int nmarks);

}  // namespace xproxy::milter
