// main.cpp: xproxy-depositd (doc/man/xproxy-depositd.8). (Placeholder: the daemon is not
// assembled yet.)
#include <cstdio>

int main() {
    std::fputs("xproxy-depositd: not available in this build\n", stderr);
    return 1;
}
