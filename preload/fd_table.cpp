// fd_table.cpp: see fd_table.hpp.
#include "fd_table.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <new>

#include "state.hpp"

namespace xproxy::preload {

namespace {

constexpr int kChunkBits = 10;
constexpr int kChunk = 1 << kChunkBits;
constexpr int kChunks = kMaxFds / kChunk;

struct Slot {
    std::atomic<std::uint32_t> gen{0};
    std::atomic<std::uint8_t> own{0};
    std::atomic<std::uint8_t> mapped{0};  // hint for the dup hooks: a mapping may be recorded
    std::atomic<std::uint64_t> dev{0}, ino{0};
    // Guarded by State::mu.
    bool has_mapping = false;
    std::uint32_t mapping_gen = 0;
    Mapping mapping;
};

std::atomic<Slot*> g_chunks[kChunks];

// The slot of fd, or nullptr. create: allocate its chunk (mmap: async-signal-safe).
Slot* slot(int fd, bool create) {
    if (fd < 0 || fd >= kMaxFds) return nullptr;
    auto& c = g_chunks[fd >> kChunkBits];
    Slot* chunk = c.load(std::memory_order_acquire);
    if (!chunk && create) {
        void* mem = mmap(nullptr, sizeof(Slot) * kChunk, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mem == MAP_FAILED) return nullptr;
        Slot* fresh = new (mem) Slot[kChunk];
        if (c.compare_exchange_strong(chunk, fresh, std::memory_order_acq_rel)) chunk = fresh;
        else munmap(mem, sizeof(Slot) * kChunk);  // another thread won; chunk is theirs
    }
    return chunk ? &chunk[fd & (kChunk - 1)] : nullptr;
}

bool identity(int fd, dev_t& dev, ino_t& ino) {
    struct stat st {};
    if (fstat(fd, &st) != 0) return false;
    dev = st.st_dev;
    ino = st.st_ino;
    return true;
}

}  // namespace

Own adopt(int fd) {
    Own o;
    Slot* s = slot(fd, true);
    if (!s || !identity(fd, o.dev, o.ino)) return o;
    s->dev.store(o.dev, std::memory_order_relaxed);
    s->ino.store(o.ino, std::memory_order_relaxed);
    s->own.store(1, std::memory_order_release);
    o.fd = fd;
    o.gen = s->gen.load(std::memory_order_acquire);
    return o;
}

void disown(int fd) {
    if (Slot* s = slot(fd, false)) s->own.store(0, std::memory_order_release);
}

bool still_ours(const Own& o) {
    Slot* s = slot(o.fd, false);
    dev_t dev;
    ino_t ino;
    return s && s->own.load(std::memory_order_acquire) && s->gen.load(std::memory_order_acquire) == o.gen &&
           identity(o.fd, dev, ino) && dev == o.dev && ino == o.ino;
}

void close_own(Own& o) {
    if (o.fd < 0) return;
    bool ours = still_ours(o);
    disown(o.fd);
    if (ours) real().close(o.fd);
    o.fd = -1;
}

bool own_pipe(Own& rd, Own& wr) {
    int p[2];
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0) return false;
    Own r = adopt(p[0]);
    Own w = adopt(p[1]);
    if (r.fd < 0 || w.fd < 0) {  // beyond the table
        for (int fd : p) {
            disown(fd);
            real().close(fd);
        }
        return false;
    }
    rd = r;
    wr = w;
    return true;
}

bool is_own_fd(int fd) {
    Slot* s = slot(fd, false);
    dev_t dev;
    ino_t ino;
    return s && s->own.load(std::memory_order_acquire) && identity(fd, dev, ino) &&
           dev == s->dev.load(std::memory_order_relaxed) && ino == s->ino.load(std::memory_order_relaxed);
}

void release_fd(int fd) {
    bool ours = is_own_fd(fd);
    disown(fd);
    if (ours) real().close(fd);
}

void touch_fd(int fd) {
    if (Slot* s = slot(fd, false)) {
        s->own.store(0, std::memory_order_release);
        s->gen.fetch_add(1, std::memory_order_acq_rel);
    }
}

void track_fd(int fd) { slot(fd, true); }

std::uint32_t fd_gen(int fd) {
    Slot* s = slot(fd, false);
    return s ? s->gen.load(std::memory_order_acquire) : 0;
}

bool set_mapping(int fd, const Mapping& m) {
    Slot* s = slot(fd, true);
    if (!s) return false;
    s->mapping = m;
    s->mapping_gen = s->gen.load(std::memory_order_acquire);
    s->has_mapping = true;
    s->mapped.store(1, std::memory_order_release);
    return true;
}

void clear_mapping(int fd) {
    if (Slot* s = slot(fd, false)) {
        s->has_mapping = false;
        s->mapped.store(0, std::memory_order_release);
    }
}

std::optional<Mapping> get_mapping(int fd) {
    Slot* s = slot(fd, false);
    if (!s || !s->has_mapping) return std::nullopt;
    if (s->mapping_gen != s->gen.load(std::memory_order_acquire)) {  // closed or replaced since
        clear_mapping(fd);
        return std::nullopt;
    }
    return s->mapping;
}

bool may_have_mapping(int fd) {
    Slot* s = slot(fd, false);
    return s && s->mapped.load(std::memory_order_acquire);
}

void copy_mapping_slot(int fd, int fd2) {
    auto m = get_mapping(fd);
    if (m) set_mapping(fd2, *m);
    else clear_mapping(fd2);
}

void clear_mappings_in(unsigned first, unsigned last) {
    for (unsigned c = first >> kChunkBits; c < static_cast<unsigned>(kChunks) && c <= (last >> kChunkBits); ++c) {
        Slot* chunk = g_chunks[c].load(std::memory_order_acquire);
        if (!chunk) continue;
        for (unsigned i = 0; i < static_cast<unsigned>(kChunk); ++i) {
            unsigned fd = (c << kChunkBits) | i;
            if (fd >= first && fd <= last) {
                chunk[i].has_mapping = false;
                chunk[i].mapped.store(0, std::memory_order_release);
            }
        }
    }
}

}  // namespace xproxy::preload
