// srv_lookup.cpp: see srv_lookup.hpp.
#include "srv_lookup.hpp"

#include <arpa/inet.h>
#include <unbound.h>

#include <memory>

#include <xproxy/base/escape.hpp>

namespace xproxy::deposit {

namespace {

constexpr int kTypeA = 1;
constexpr int kTypeAaaa = 28;
constexpr int kTypeSrv = 33;
constexpr int kClassIn = 1;

using Context = std::unique_ptr<ub_ctx, decltype(&ub_ctx_delete)>;
using Result = std::unique_ptr<ub_result, decltype(&ub_resolve_free)>;

Expected<Context> make_context(const DnsConfig& cfg) {
    Context ctx(ub_ctx_create(), &ub_ctx_delete);
    if (!ctx) return Failure{"cannot create the libunbound context"};
    for (const auto& [name, value] : cfg.options)
        if (int rc = ub_ctx_set_option(ctx.get(), name.c_str(), value.c_str()))
            return Failure{"libunbound option " + escape_value(name) + " " + escape_value(value) + ": " +
                           ub_strerror(rc)};
    if (cfg.forwarders.empty()) {
        if (int rc = ub_ctx_resolvconf(ctx.get(), cfg.resolv_conf.c_str()))
            return Failure{"cannot use " + escape_value(cfg.resolv_conf) + ": " + ub_strerror(rc)};
    }
    for (const auto& f : cfg.forwarders)
        if (int rc = ub_ctx_set_fwd(ctx.get(), f.c_str()))
            return Failure{"bad DNS server " + escape_value(f) + ": " + ub_strerror(rc)};
    if (!cfg.trust_anchor_file.empty())
        if (int rc = ub_ctx_add_ta_file(ctx.get(), cfg.trust_anchor_file.c_str()))
            return Failure{"cannot use the trust anchor " + escape_value(cfg.trust_anchor_file) + ": " +
                           ub_strerror(rc)};
    return ctx;
}

struct Answer {
    enum class Kind { data, nodata, nxdomain, failed };
    Kind kind = Kind::failed;
    bool secure = false;
    std::vector<std::string> rdata;
    std::string error;
};

Answer ask(ub_ctx* ctx, const std::string& name, int type, const char* type_name) {
    Answer a;
    ub_result* raw = nullptr;
    const int err = ub_resolve(ctx, name.c_str(), type, kClassIn, &raw);
    Result r(raw, &ub_resolve_free);
    const std::string what = escape(name) + " " + type_name;
    if (err != 0 || !r) {
        a.error = what + ": resolver error: " + ub_strerror(err);
        return a;
    }
    if (r->bogus) {
        a.error = what + ": DNSSEC validation failed";
        if (r->why_bogus) a.error += ": " + escape(r->why_bogus, 200);
        return a;
    }
    a.secure = r->secure != 0;
    if (r->nxdomain) {
        a.kind = Answer::Kind::nxdomain;
    } else if (r->rcode != 0) {
        a.error = what + ": DNS error (rcode " + std::to_string(r->rcode) + ")";
    } else if (!r->havedata) {
        a.kind = Answer::Kind::nodata;
    } else {
        a.kind = Answer::Kind::data;
        for (std::size_t i = 0; r->data[i] != nullptr; ++i)
            a.rdata.emplace_back(r->data[i], static_cast<std::size_t>(r->len[i] > 0 ? r->len[i] : 0));
    }
    return a;
}

void note(std::string& notes, const std::string& text) {
    if (notes.size() > 1000) return;
    if (!notes.empty()) notes += "; ";
    notes += text;
}

std::vector<std::string> addresses_of(ub_ctx* ctx, const std::string& host, std::string& notes) {
    std::vector<std::string> out;
    for (auto [type, type_name] : {std::pair{kTypeA, "A"}, std::pair{kTypeAaaa, "AAAA"}}) {
        Answer a = ask(ctx, host, type, type_name);
        if (!a.error.empty()) note(notes, a.error);
        for (const auto& rd : a.rdata) {
            char text[INET6_ADDRSTRLEN] = {};
            const int family = type == kTypeA ? AF_INET : AF_INET6;
            const std::size_t want = type == kTypeA ? 4 : 16;
            if (rd.size() != want || !inet_ntop(family, rd.data(), text, sizeof text)) continue;
            if (out.size() < kMaxAddressesPerTarget) out.emplace_back(text);
        }
    }
    return out;
}

}  // namespace

Discovery discover_deposit_service(const std::string& domain, const DnsConfig& config, const SrvRandom& random) {
    Discovery d;
    if (auto ok = check_domain_name(domain); !ok) {
        d.status = Discovery::Status::refused;
        d.error = ok.error();
        return d;
    }
    auto ctx = make_context(config);
    if (!ctx) {
        d.error = ctx.error();
        return d;
    }
    const std::string owner = std::string(kDepositService) + domain;
    Answer srv = ask(ctx->get(), owner, kTypeSrv, "SRV");
    if (!srv.error.empty()) {
        d.error = srv.error;
        return d;
    }
    d.secure = srv.secure;
    if (srv.kind != Answer::Kind::data) {
        d.status = Discovery::Status::no_service;
        d.error = "no SRV record " + owner + (srv.kind == Answer::Kind::nxdomain ? " (NXDOMAIN)" : " (no data)");
        return d;
    }
    std::vector<SrvRecord> records;
    for (const auto& rd : srv.rdata) {
        if (records.size() >= 64) break;
        auto rec = decode_srv_rdata(rd);
        if (!rec) note(d.notes, owner + ": " + rec.error());
        else records.push_back(std::move(*rec));
    }
    if (service_not_offered(records)) {
        d.status = Discovery::Status::no_service;
        d.error = owner + " says the service is not offered (SRV target \".\")";
        return d;
    }
    bool outside = false;
    for (auto& rec : order_srv_records(std::move(records), random)) {
        if (d.targets.size() >= kMaxSrvTargets) break;
        if (!in_domain(rec.target, domain) && !srv.secure) {
            outside = true;
            note(d.notes, "SRV target " + rec.target + " is outside " + domain +
                              " and the SRV answer is not DNSSEC-secure: not used");
            continue;
        }
        SrvTarget t{rec.target, rec.port, addresses_of(ctx->get(), rec.target, d.notes)};
        if (t.addresses.empty()) {
            note(d.notes, "SRV target " + rec.target + " has no address");
            continue;
        }
        d.targets.push_back(std::move(t));
    }
    if (d.targets.empty()) {
        d.status = outside ? Discovery::Status::refused : Discovery::Status::temporary;
        d.error = "no usable SRV target for " + domain + ": " + (d.notes.empty() ? "none" : d.notes);
        return d;
    }
    d.status = Discovery::Status::ok;
    return d;
}

}  // namespace xproxy::deposit
