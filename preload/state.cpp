// state.cpp: libc's real functions and the process-wide state.
#include "state.hpp"

#include <dlfcn.h>
#include <time.h>

namespace xproxy::preload {

namespace {
template <class T>
T lookup(const char* name) {
    return reinterpret_cast<T>(dlsym(RTLD_NEXT, name));
}
}  // namespace

const Real& real() {
    static const Real r = {
        lookup<decltype(Real::accept)>("accept"),
        lookup<decltype(Real::accept4)>("accept4"),
        lookup<decltype(Real::getpeername)>("getpeername"),
        lookup<decltype(Real::getsockname)>("getsockname"),
        lookup<decltype(Real::close)>("close"),
        lookup<decltype(Real::dup)>("dup"),
        lookup<decltype(Real::dup2)>("dup2"),
        lookup<decltype(Real::dup3)>("dup3"),
        lookup<decltype(Real::fcntl)>("fcntl"),
    };
    return r;
}

State& state() {
    static State* s = new State;  // never destroyed: entry points may run during exit
    return *s;
}

std::int64_t now_ms() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

}  // namespace xproxy::preload
