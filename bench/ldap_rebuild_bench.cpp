// ldap_rebuild_bench: what a batch of LDAP changes costs the daemons — LdapModel::build()
// of a whole directory (the LDAP backend rebuilds after every batch) — at the size of
// doc/directory.md's "Size and speed" (100,000 domains, 1,000,000 users, one in ten with
// an alias), next to the time the same entries take to be applied as modifications.
// Counters: the directory's bytes per user after the first build and after 100,000
// modifications (churn must not grow it).
#include <benchmark/benchmark.h>

#include <string>

#include <xproxy/ldap/ldap_model.hpp>

using namespace xproxy;

namespace {

std::string uuid_of(std::size_t n) {
    std::string u(16, '\0');
    for (int i = 0; i < 8; ++i) u[static_cast<std::size_t>(i)] = static_cast<char>(n >> (8 * i));
    return u;
}

LdapRecord user_record(std::size_t d, std::size_t u, bool hold) {
    LdapRecord r;
    r.kind = LdapKind::user;
    r.name = "user" + std::to_string(u) + "@d" + std::to_string(d) + ".example";
    if (u % 10 == 0) r.aliases.push_back("alias" + std::to_string(u));
    r.state = hold ? EntryState::inactive : EntryState::active;
    return r;
}

LdapModel& big_model(std::size_t domains, std::size_t users_per_domain) {
    static LdapModel m;
    static bool made = false;
    if (!made) {
        for (std::size_t d = 0; d < domains; ++d) {
            LdapRecord r;
            r.kind = LdapKind::domain;
            r.name = "d" + std::to_string(d) + ".example";
            m.upsert_record(uuid_of(d), "ou=" + r.name, r);
            for (std::size_t k = 0; k < users_per_domain; ++k) {
                const std::size_t u = d * users_per_domain + k;
                m.upsert_record(uuid_of(domains + u), "uid=" + std::to_string(u), user_record(d, u, false));
            }
        }
        made = true;
    }
    return m;
}

void BM_LdapRebuild(benchmark::State& state) {
    LdapModel& m = big_model(100000, 10);
    LdapModel::Counts c;
    std::size_t bytes = 0;
    for (auto _ : state) {
        Directory d = m.build(c, nullptr);
        bytes = d.memory_bytes();
        benchmark::DoNotOptimize(d);
    }
    state.counters["users"] = static_cast<double>(c.users);
    state.counters["bytes_per_user"] = static_cast<double>(bytes) / static_cast<double>(c.users);
    // 100,000 modifications (a state flip each), then the same build: the same size.
    for (std::size_t i = 0; i < 100000; ++i) {
        const std::size_t u = (i * 7919) % 1000000;
        m.upsert_record(uuid_of(100000 + u), "uid=" + std::to_string(u), user_record(u / 10, u, i % 2 == 0));
    }
    Directory after = m.build(c, nullptr);
    state.counters["bytes_per_user_after_churn"] = static_cast<double>(after.memory_bytes()) /
                                                   static_cast<double>(c.users);
}
BENCHMARK(BM_LdapRebuild)->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace
