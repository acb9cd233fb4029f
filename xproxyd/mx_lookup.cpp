// mx_lookup.cpp: see mx_lookup.hpp.
#include "mx_lookup.hpp"

#include <unbound.h>

#include <algorithm>
#include <fstream>
#include <limits>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include <xproxy/base/escape.hpp>
#include <xproxy/base/text.hpp>
#include <xproxy/daemon/log.hpp>

namespace xproxy::xproxyd {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

constexpr int kTypeA = 1;
constexpr int kTypeMx = 15;
constexpr int kTypeAaaa = 28;
constexpr int kClassIn = 1;

std::string_view type_name(int type) {
    switch (type) {
        case kTypeA: return "A";
        case kTypeMx: return "MX";
        case kTypeAaaa: return "AAAA";
        default: return "?";
    }
}

std::string rcode_name(int rcode) {
    switch (rcode) {
        case 1: return "FORMERR";
        case 2: return "SERVFAIL";
        case 4: return "NOTIMP";
        case 5: return "REFUSED";
        default: return "rcode " + std::to_string(rcode);
    }
}

// One DNS answer as the lookup needs it.
struct DnsAnswer {
    enum class Kind : std::uint8_t { data, nodata, nxdomain, temporary };
    Kind kind = Kind::temporary;
    bool secure = false;
    std::uint32_t ttl = 0;
    std::vector<std::string> rdata;
    std::string error;  // temporary: why ("mx1.example.test A: SERVFAIL")
};

// libunbound's result, classified. A bogus answer is a failure whatever its rcode (its
// data is still there: libunbound reports validation separately), as a validating
// resolver's SERVFAIL would be.
DnsAnswer classify(int err, const ub_result* r, const std::string& name, int type) {
    DnsAnswer a;
    std::string what = name + " " + std::string(type_name(type));
    if (err != 0 || r == nullptr) {
        a.error = what + ": resolver error: " + ub_strerror(err);
        return a;
    }
    if (r->bogus) {
        a.error = what + ": DNSSEC validation failed";
        if (r->why_bogus) a.error += ": " + escape(r->why_bogus, 200);
        return a;
    }
    a.secure = r->secure != 0;
    a.ttl = r->ttl > 0 ? static_cast<std::uint32_t>(r->ttl) : 0;
    if (r->nxdomain) {
        a.kind = DnsAnswer::Kind::nxdomain;
    } else if (r->rcode != 0) {
        a.error = what + ": " + rcode_name(r->rcode);
    } else if (!r->havedata) {
        a.kind = DnsAnswer::Kind::nodata;
    } else {
        a.kind = DnsAnswer::Kind::data;
        for (std::size_t i = 0; r->data[i] != nullptr; ++i)
            a.rdata.emplace_back(r->data[i], static_cast<std::size_t>(std::max(r->len[i], 0)));
    }
    return a;
}

std::vector<int> address_types(MxFamilies f) {
    switch (f) {
        case MxFamilies::ipv4: return {kTypeA};
        case MxFamilies::ipv6: return {kTypeAaaa};
        case MxFamilies::ipv4_first: return {kTypeA, kTypeAaaa};
        case MxFamilies::ipv6_first: return {kTypeAaaa, kTypeA};
    }
    return {kTypeA};
}

}  // namespace

class MxLookup::Impl : public std::enable_shared_from_this<Impl> {
public:
    Impl(const asio::any_io_executor& ex, MxLookupConfig cfg, MxRandom random, MxCache::Clock clock)
        : strand_(asio::make_strand(ex)),
          cfg_(std::move(cfg)),
          random_(random ? std::move(random) : default_mx_random()),
          cache_(cfg_.cache_entries, std::move(clock)),
          fd_(strand_) {}
    ~Impl() {
        if (fd_.is_open()) fd_.release();  // the descriptor is libunbound's
        if (ctx_) ub_ctx_delete(ctx_);
    }
    Impl(const Impl&) = delete;
    Impl& operator=(const Impl&) = delete;

    Expected<void> init();
    // Runs on strand_ only (MxLookup::lookup spawns it there).
    asio::awaitable<MxResult> lookup(std::string domain);
    const MxCache& cache() const { return cache_; }
    const asio::strand<asio::any_io_executor>& strand() const { return strand_; }

private:
    // One ub_resolve_async in flight. Its address is what libunbound's callback gets, so
    // it lives in a unique_ptr owned by the awaiting coroutine; destroyed before its
    // answer came, it cancels the query (libunbound then never calls back).
    struct Query {
        Query(Impl& o, std::string n, int t) : owner(o), name(std::move(n)), type(t), timer(o.strand_) {}
        ~Query() {
            if (!done) owner.cancel(*this);
            if (result) ub_resolve_free(result);
        }
        Query(const Query&) = delete;
        Query& operator=(const Query&) = delete;

        Impl& owner;
        std::string name;
        int type;
        asio::steady_timer timer;  // the timeout; cancelled when the answer comes
        int id = 0;
        bool done = false;
        int err = 0;
        ub_result* result = nullptr;
    };

    // A domain being resolved: later lookups of it wait for this one's answer.
    struct Pending {
        explicit Pending(const asio::strand<asio::any_io_executor>& s) : wake(s) {}
        asio::steady_timer wake;  // never expires: cancelled when the answer is there
        std::optional<MxAnswer> answer;
    };

    static void on_answer(void* data, int err, ub_result* result);
    void stop_resolver(int rc);
    std::unique_ptr<Query> start(const std::string& name, int type);
    asio::awaitable<DnsAnswer> finish(Query& q);
    void cancel(Query& q);
    void watch();
    asio::awaitable<MxAnswer> resolve(const std::string& domain);

    // Everything below is used on strand_ only: the lookups' bodies, the timers, the
    // descriptor's handler and so libunbound's callbacks (they run inside ub_process).
    asio::strand<asio::any_io_executor> strand_;
    MxLookupConfig cfg_;
    MxRandom random_;
    MxCache cache_;
    ub_ctx* ctx_ = nullptr;
    asio::posix::stream_descriptor fd_;  // ub_fd(): readable when answers are waiting
    std::size_t outstanding_ = 0;        // queries whose callback has not run
    std::unordered_set<Query*> live_;    // those queries
    bool watching_ = false;
    bool broken_ = false;        // ub_process failed for good: every query fails at once
    std::size_t resolving_ = 0;  // lookups asking the DNS (max_lookups_in_flight)
    std::unordered_map<std::string, std::shared_ptr<Pending>> pending_;
};

Expected<void> MxLookup::Impl::init() {
    if (cfg_.max_mx_hosts == 0 || cfg_.max_addresses == 0)
        return Failure{"MX lookup: the host and address limits must be at least 1"};
    if (cfg_.max_addresses_per_host == 0 || cfg_.max_lookups_in_flight == 0)
        return Failure{"MX lookup: the per-host address and in-flight limits must be at least 1"};
    if (cfg_.max_mx_hosts > 1000 || cfg_.max_lookups_in_flight > 10000)
        return Failure{"MX lookup: at most 1000 MX hosts and 10000 lookups in flight"};
    if (cfg_.query_timeout.count() <= 0) return Failure{"MX lookup: the query timeout must be positive"};
    if (cfg_.max_cache_ttl.count() < 0)
        return Failure{"MX lookup: the maximum cache TTL must not be negative (0 disables the cache)"};
    ctx_ = ub_ctx_create();
    if (!ctx_) return Failure{"MX lookup: cannot create the libunbound context"};
    // Resolve in a thread of libunbound's, not a forked process: nothing to reap, and the
    // answers come back through a pipe this io_context watches.
    if (int rc = ub_ctx_async(ctx_, 1))
        return Failure{std::string("MX lookup: libunbound threads: ") + ub_strerror(rc)};
    // Room for every query the in-flight limit allows (one MX, two address queries per
    // host); a query given up on may hold its slot until libunbound's own timeout.
    std::size_t slots = std::max<std::size_t>(
        1024, std::min<std::size_t>(65536, cfg_.max_lookups_in_flight * (1 + 2 * cfg_.max_mx_hosts)));
    if (int rc = ub_ctx_set_option(ctx_, "num-queries-per-thread:", std::to_string(slots).c_str()))
        return Failure{std::string("MX lookup: libunbound num-queries-per-thread: ") + ub_strerror(rc)};
    for (const auto& [name, value] : cfg_.unbound_options) {
        if (int rc = ub_ctx_set_option(ctx_, name.c_str(), value.c_str()))
            return Failure{"MX lookup: libunbound option \"" + escape_value(name) + "\" \"" + escape_value(value) +
                           "\": " + ub_strerror(rc)};
    }
    if (cfg_.forwarders.empty()) {
        if (int rc = ub_ctx_resolvconf(ctx_, cfg_.resolv_conf.c_str()))
            return Failure{"MX lookup: cannot use \"" + escape_value(cfg_.resolv_conf) + "\": " + ub_strerror(rc)};
    }
    for (const auto& f : cfg_.forwarders) {
        if (int rc = ub_ctx_set_fwd(ctx_, f.c_str()))
            return Failure{"MX lookup: bad forwarder \"" + escape_value(f) + "\": " + ub_strerror(rc)};
    }
    if (!cfg_.trust_anchor_file.empty()) {
        // libunbound reads the file at the first query only: fail here, not on every lookup.
        if (!std::ifstream(cfg_.trust_anchor_file))
            return Failure{"MX lookup: cannot read the trust anchor file \"" + escape_value(cfg_.trust_anchor_file) +
                           "\""};
        if (int rc = ub_ctx_add_ta_file(ctx_, cfg_.trust_anchor_file.c_str()))
            return Failure{"MX lookup: trust anchor file \"" + escape_value(cfg_.trust_anchor_file) +
                           "\": " + ub_strerror(rc)};
    }
    int fd = ub_fd(ctx_);
    if (fd < 0) return Failure{"MX lookup: libunbound has no result descriptor"};
    error_code ec;
    fd_.assign(fd, ec);
    if (ec) return Failure{"MX lookup: cannot watch libunbound's descriptor: " + ec.message()};
    return {};
}

void MxLookup::Impl::on_answer(void* data, int err, ub_result* result) {
    auto* q = static_cast<Query*>(data);
    q->done = true;
    q->err = err;
    q->result = result;
    --q->owner.outstanding_;
    q->owner.live_.erase(q);
    q->timer.cancel();  // wakes finish()
}

// libunbound's pipe is broken (UB_PIPE): every outstanding query fails now, and every
// later one at once; the pipe is not watched again (it would stay readable: a spin).
void MxLookup::Impl::stop_resolver(int rc) {
    if (!broken_) log::error("event=mx_lookup_error what=ub_process error=\"%s\" action=stopped", ub_strerror(rc));
    broken_ = true;
    for (Query* q : live_) {
        q->done = true;
        q->err = rc;
        q->timer.cancel();
    }
    live_.clear();
    outstanding_ = 0;
}

std::unique_ptr<MxLookup::Impl::Query> MxLookup::Impl::start(const std::string& name, int type) {
    auto q = std::make_unique<Query>(*this, name, type);
    q->timer.expires_after(cfg_.query_timeout);
    int rc = broken_ ? UB_PIPE
                     : ub_resolve_async(ctx_, q->name.c_str(), type, kClassIn, q.get(), &Impl::on_answer, &q->id);
    if (rc != 0) {
        q->done = true;
        q->err = rc;
        return q;
    }
    ++outstanding_;
    live_.insert(q.get());
    watch();
    return q;
}

// The answer of a started query, or a temporary failure once its timeout has passed.
// The callback runs on the strand (inside ub_process), so `done` cannot change between
// the test and the wait.
asio::awaitable<DnsAnswer> MxLookup::Impl::finish(Query& q) {
    if (!q.done) {
        error_code ec;
        co_await q.timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    if (!q.done) {
        cancel(q);
        DnsAnswer timed_out;
        timed_out.error = q.name + " " + std::string(type_name(q.type)) + ": no answer within " +
                          std::to_string(cfg_.query_timeout.count()) + " ms";
        co_return timed_out;
    }
    DnsAnswer a = classify(q.err, q.result, q.name, q.type);
    co_return a;
}

void MxLookup::Impl::cancel(Query& q) {
    ub_cancel(ctx_, q.id);  // an answer already in the pipe is dropped by ub_process
    q.done = true;
    --outstanding_;
    live_.erase(&q);
    if (outstanding_ == 0 && watching_) {  // nothing to wait for: let run() return
        error_code ec;
        fd_.cancel(ec);
    }
}

// Waits for libunbound's pipe while queries are outstanding (never longer, so that an
// idle resolver leaves the io_context free to return from run()).
void MxLookup::Impl::watch() {
    if (watching_ || outstanding_ == 0) return;
    watching_ = true;
    fd_.async_wait(asio::posix::descriptor_base::wait_read, [weak = weak_from_this()](error_code ec) {
        auto self = weak.lock();
        if (!self) return;
        self->watching_ = false;
        if (ec == asio::error::operation_aborted) {  // cancel(), or the resolver's end
            self->watch();                           // a query started since then needs it
            return;
        }
        if (ec) {
            log::debug("event=mx_lookup_error what=wait error=%s", ec.message().c_str());
            return;  // the queries' timeouts end them
        }
        if (int rc = ub_process(self->ctx_); rc == UB_PIPE) {
            self->stop_resolver(rc);
            return;
        } else if (rc != 0) {
            log::debug("event=mx_lookup_error what=ub_process error=%s", ub_strerror(rc));
        }
        self->watch();
    });
}

asio::awaitable<MxAnswer> MxLookup::Impl::resolve(const std::string& domain) {
    MxAnswer out;
    auto mxq = start(domain, kTypeMx);
    DnsAnswer mx = co_await finish(*mxq);
    mxq.reset();
    out.mx_secure = mx.secure;
    std::vector<MxRecord> records;
    std::string notes;
    switch (mx.kind) {
        case DnsAnswer::Kind::temporary:
            out.status = MxStatus::temporary;
            out.why = domain + ": MX lookup failed: " + mx.error;
            co_return out;
        case DnsAnswer::Kind::nxdomain:
            out.status = MxStatus::no_such_domain;
            out.why = domain + ": no such domain (NXDOMAIN)";
            out.ttl = mx.ttl;
            co_return out;
        case DnsAnswer::Kind::nodata:  // RFC 5321 5.1: the domain itself is the implicit MX
            out.implicit_mx = true;
            records.push_back(MxRecord{0, domain});
            break;
        case DnsAnswer::Kind::data: {
            std::vector<MxRecord> all;
            for (const auto& rd : mx.rdata) {
                auto rec = decode_mx_rdata(rd);
                if (rec) all.push_back(std::move(*rec));
                else add_mx_note(notes, rec.error());
            }
            // Judged on the records that decode: a null MX beside a broken record is still
            // the domain's statement that it takes no mail.
            if (is_null_mx(all)) {
                out.status = MxStatus::null_mx;
                out.why = domain + ": the domain does not accept mail (null MX)";
                out.ttl = mx.ttl;
                co_return out;
            }
            records = select_mx_records(std::move(all), cfg_.max_mx_hosts, random_, notes);
            if (records.empty()) {
                out.status = MxStatus::no_address;
                out.why = domain + ": no usable MX host: " + notes;
                out.ttl = mx.ttl;
                co_return out;
            }
            break;
        }
    }

    // Every address query at once; answers are taken in delivery order. What is kept is
    // bounded while decoding: max_addresses_per_host per host, max_addresses in all.
    std::vector<int> types = address_types(cfg_.families);
    std::vector<std::unique_ptr<Query>> queries;
    for (const auto& rec : records)
        for (int t : types) queries.push_back(start(rec.target, t));
    const MxAddressRules rules{cfg_.families, &cfg_.refused_destinations, cfg_.max_addresses_per_host};
    std::size_t left = cfg_.max_addresses;
    std::size_t refused = 0;
    bool temporary = false;
    // The smallest TTL of every answer used, a host's NXDOMAIN or NODATA included: the
    // entry must not outlive any of them. Also for an implicit MX: the NODATA that made it one.
    std::uint32_t ttl = mx.ttl;
    std::size_t qi = 0;
    for (const auto& rec : records) {
        if (left == 0) break;  // the rest is cancelled with `queries`
        MxHost host{rec.target, rec.preference, {}};
        std::string host_notes;
        std::string refusals;
        for (int t : types) {
            DnsAnswer a = co_await finish(*queries[qi]);
            queries[qi++].reset();
            std::string what = std::string(type_name(t));
            switch (a.kind) {
                case DnsAnswer::Kind::temporary:
                    temporary = true;
                    add_mx_note(host_notes, a.error);
                    continue;
                case DnsAnswer::Kind::nxdomain:
                    if (host_notes.find(": no such host") == std::string::npos)  // once, not per family
                        add_mx_note(host_notes, rec.target + ": no such host");
                    break;
                case DnsAnswer::Kind::nodata: add_mx_note(host_notes, rec.target + ": no " + what + " record"); break;
                case DnsAnswer::Kind::data:
                    refused += add_host_addresses(host, t == kTypeAaaa, a.rdata, a.secure, rules, left, refusals);
                    break;
            }
            ttl = std::min(ttl, a.ttl);
        }
        if (host.addresses.empty()) {
            add_mx_note(host_notes, refusals);
            add_mx_note(notes, host_notes);
        } else {
            if (!refusals.empty()) add_mx_note(notes, refusals);
            out.hosts.push_back(std::move(host));
        }
    }
    if (!out.hosts.empty()) {
        out.status = MxStatus::ok;
        out.partial = temporary;
        out.why = notes;
        out.ttl = ttl;
    } else if (temporary) {
        out.status = MxStatus::temporary;
        out.why = domain + ": no MX host has an address now: " + notes;
    } else {
        out.status = MxStatus::no_address;
        out.why = domain +
                  (refused > 0       ? ": every address found is a refused destination: "
                   : out.implicit_mx ? ": no MX record and no address: "
                                     : ": no MX host has an address: ") +
                  notes;
        out.ttl = ttl;
    }
    co_return out;
}

asio::awaitable<MxResult> MxLookup::Impl::lookup(std::string domain) {
    MxResult result;
    if (!domain.empty() && domain.front() == '[') {
        result = to_result(answer_for_literal(domain, cfg_.families, cfg_.refused_destinations), cfg_.max_addresses);
    } else if (auto valid = check_domain_name(domain); !valid) {
        result.status = MxStatus::invalid_domain;
        result.why = valid.error();
    } else {
        std::string key = to_lower(domain);
        if (auto hit = cache_.get(key)) {
            sort_and_shuffle(hit->hosts, random_);  // spread the load on every use
            result = to_result(*hit, cfg_.max_addresses);
            result.from_cache = true;
        } else if (auto it = pending_.find(key); it != pending_.end()) {
            // Asked already: wait for that answer rather than ask again.
            std::shared_ptr<Pending> p = it->second;
            error_code ec;
            co_await p->wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            if (p->answer) {
                MxAnswer answer = *p->answer;
                sort_and_shuffle(answer.hosts, random_);
                result = to_result(answer, cfg_.max_addresses);
            } else {
                result.why = key + ": the lookup it waited for ended without an answer";
            }
        } else if (resolving_ >= cfg_.max_lookups_in_flight) {
            result.why = key + ": too many MX lookups in flight (" + std::to_string(cfg_.max_lookups_in_flight) + ")";
        } else {
            auto p = std::make_shared<Pending>(strand_);
            p->wake.expires_at(asio::steady_timer::time_point::max());
            pending_.emplace(key, p);
            ++resolving_;
            struct Done {  // however resolve() ends, the waiters wake and the slot is free
                Impl& self;
                const std::string& key;
                Pending& p;
                ~Done() {
                    --self.resolving_;
                    try {
                        self.pending_.erase(key);
                        p.wake.cancel();
                    } catch (...) {  // neither throws in practice; a destructor must not
                    }
                }
            } done{*this, key, *p};
            MxAnswer answer = co_await resolve(key);
            bool cacheable = answer.status == MxStatus::ok ? !answer.partial : is_permanent(answer.status);
            auto cap = static_cast<std::uint32_t>(
                std::min<std::int64_t>(cfg_.max_cache_ttl.count(), std::numeric_limits<std::uint32_t>::max()));
            if (cacheable) cache_.put(key, answer, std::min(answer.ttl, cap));
            result = to_result(answer, cfg_.max_addresses);
            p->answer = std::move(answer);
        }
    }
    if (log::enabled(log::Level::debug))
        log::debug("event=mx_lookup domain=%s status=%s destinations=%zu cached=%d mx_secure=%d why=\"%s\"",
                   escape_value(domain, 256, false).c_str(), std::string(to_string(result.status)).c_str(),
                   result.destinations.size(), result.from_cache ? 1 : 0, result.mx_secure ? 1 : 0,
                   escape_value(result.why).c_str());
    co_return result;
}

Expected<std::unique_ptr<MxLookup>> MxLookup::create(const asio::any_io_executor& executor, MxLookupConfig config,
                                                     MxRandom random, MxCache::Clock clock) {
    auto impl = std::make_shared<Impl>(executor, std::move(config), std::move(random), std::move(clock));
    if (auto ok = impl->init(); !ok) return Failure{ok.error()};
    return std::unique_ptr<MxLookup>(new MxLookup(std::move(impl)));
}

MxLookup::~MxLookup() = default;

asio::awaitable<MxResult> MxLookup::lookup(std::string domain) {
    std::shared_ptr<Impl> self = impl_;  // a lookup in flight keeps the resolver alive
    // The body runs on the lookup's strand, whatever the caller's executor; the caller
    // resumes on its own.
    MxResult r = co_await asio::co_spawn(self->strand(), self->lookup(std::move(domain)), asio::use_awaitable);
    co_return r;
}

std::uint64_t MxLookup::cache_hits() const { return impl_->cache().hits(); }
std::uint64_t MxLookup::cache_misses() const { return impl_->cache().misses(); }

}  // namespace xproxy::xproxyd
