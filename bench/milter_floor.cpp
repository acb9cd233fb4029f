// milter_floor: the least work a libmilter filter that inserts a header can do, as the
// reference that bench/milter_bench.py measures xproxy-milter against. It asks the MTA for
// no protocol step except the end of message (no connect, HELO, MAIL, RCPT, DATA, headers,
// end of headers or body, and no macros of its own), and at the end of message it inserts
// one fixed header of the size of an X-Original-Source header. What it costs Postfix is
// the cost of the milter protocol itself: a filter that must see headers or macros can
// only cost more.
// Usage: milter_floor SOCKET     (a libmilter socket spec, e.g. unix:/path or inet:port@host)
#include <libmilter/mfapi.h>

#include <cstdio>

namespace {

char kName[] = "X-Milter-Floor";
char kValue[] =
    "v=1; k=bench; t=1764800000; a=127.0.0.66; p=40000; h=client.example; s=0123456789ab; "
    "b=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

sfsistat negotiate(SMFICTX*, unsigned long f0, unsigned long f1, unsigned long, unsigned long, unsigned long* pf0,
                   unsigned long* pf1, unsigned long* pf2, unsigned long* pf3) {
    if (!(f0 & SMFIF_ADDHDRS)) return SMFIS_REJECT;
    *pf0 = SMFIF_ADDHDRS;
    *pf1 = f1 & (SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NOMAIL | SMFIP_NORCPT | SMFIP_NODATA | SMFIP_NOHDRS |
                 SMFIP_NOEOH | SMFIP_NOBODY | SMFIP_NOUNKNOWN);
    *pf2 = *pf3 = 0;
    return SMFIS_CONTINUE;
}

sfsistat eom(SMFICTX* ctx) {
    return smfi_insheader(ctx, 0, kName, kValue) == MI_SUCCESS ? SMFIS_CONTINUE : SMFIS_TEMPFAIL;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: milter_floor SOCKET\n");
        return 2;
    }
    smfiDesc d{};
    d.xxfi_name = const_cast<char*>("milter-floor");
    d.xxfi_version = SMFI_VERSION;
    d.xxfi_flags = SMFIF_ADDHDRS;
    d.xxfi_eom = eom;
    d.xxfi_negotiate = negotiate;
    if (smfi_setconn(argv[1]) == MI_FAILURE || smfi_register(d) == MI_FAILURE) {
        std::fprintf(stderr, "milter_floor: cannot use %s\n", argv[1]);
        return 1;
    }
    return smfi_main() == MI_SUCCESS ? 0 : 1;
}
