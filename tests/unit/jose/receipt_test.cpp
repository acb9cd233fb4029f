// receipt_test: deposit receipts signed with Ed25519 and P-256 keys read from 0600 files:
// they verify against the message and the server's public key, and nothing else verifies
// (another byte, another key, a token in place of a receipt, a receipt in place of a
// token); the signing key file must be private.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include <xproxy/jose/base64url.hpp>
#include <xproxy/jose/jws.hpp>
#include <xproxy/jose/jwt.hpp>
#include <xproxy/jose/receipt.hpp>

#include "jose_fixtures.hpp"

using namespace xproxy;
using namespace xproxy::jose;
using xproxy::test::fixture;
using xproxy::test::kIssued;
using xproxy::test::kNow;

namespace {

struct Dir {
    std::string path;
    Dir() {
        char t[] = "/tmp/xproxy-jose-XXXXXX";
        path = mkdtemp(t);
    }
    ~Dir() {
        if (std::system(("rm -rf " + path).c_str()) != 0) ADD_FAILURE() << "cannot remove " << path;
    }
    std::string write(const std::string& name, const std::string& bytes, mode_t mode) {
        std::string p = path + "/" + name;
        std::ofstream(p, std::ios::binary) << bytes;
        chmod(p.c_str(), mode);
        return p;
    }
};

const std::string kMessage = "From: a@example.test\r\nTo: b@example.test\r\nSubject: hi\r\n\r\nhello\r\n";

Receipt sample() {
    Receipt r;
    r.issuer = "mx.example.test";
    r.issued_at = kIssued;
    r.sha256 = sha256(kMessage);
    r.recipients = {"b@example.test", "c@example.test"};
    r.queue_id = "4Xk2Lp0Zz1";
    return r;
}

// The claims of the fixture tokens (fixtures/mint.py).
std::string part_of_token_payload() {
    const std::string t = fixture("eddsa.jwt");
    const auto d1 = t.find('.');
    return *base64url_decode(t.substr(d1 + 1, t.rfind('.') - d1 - 1));
}

}  // namespace

TEST(Receipt, SignedReceiptsVerify) {
    Dir d;
    for (const char* name : {"ed", "ec"}) {
        auto key = SigningKey::load(d.write(std::string(name) + ".key", fixture(std::string(name) + ".key"), 0600),
                                    "receipts-2027");
        ASSERT_TRUE(key) << key.error();
        EXPECT_EQ(key->alg(), std::string(name) == "ed" ? Alg::eddsa : Alg::es256);
        auto token = sign_receipt(*key, sample());
        ASSERT_TRUE(token) << token.error();
        auto pub = PublicKey::from_pem(fixture(std::string(name) + ".pub"));
        ASSERT_TRUE(pub) << pub.error();
        auto v = verify_receipt(*token, *pub, sha256(kMessage));
        ASSERT_TRUE(v) << name << ": " << v.error();
        EXPECT_EQ(v->kid, "receipts-2027");
        EXPECT_EQ(v->alg, key->alg());
        EXPECT_EQ(v->receipt.issuer, "mx.example.test");
        EXPECT_EQ(v->receipt.issued_at, kIssued);
        EXPECT_EQ(v->receipt.recipients, sample().recipients);
        EXPECT_EQ(v->receipt.queue_id, "4Xk2Lp0Zz1");
        EXPECT_EQ(v->receipt.sha256, sha256(kMessage));

        // one changed byte of the message
        std::string other = kMessage;
        other[other.size() - 3] = 'O';
        Refusal why = Refusal::malformed;
        EXPECT_FALSE(verify_receipt(*token, *pub, sha256(other), &why));
        EXPECT_EQ(why, Refusal::wrong_message);
        // another key of the same type, and a key of the other type
        const std::string wrong = std::string(name) == "ed" ? "ec" : "ed";
        EXPECT_FALSE(verify_receipt(*token, *PublicKey::from_pem(fixture(wrong + ".pub")), sha256(kMessage), &why));
        EXPECT_EQ(why, Refusal::alg_not_allowed);
    }
}

TEST(Receipt, WrongKeyOfTheSameType) {
    auto key = SigningKey::from_pem(fixture("ec.key"), "k1");
    ASSERT_TRUE(key) << key.error();
    auto token = sign_receipt(*key, sample());
    ASSERT_TRUE(token);
    // the same receipt signed by ed, presented with ec's signature: bad signature
    auto ed = SigningKey::from_pem(fixture("ed.key"), "k1");
    auto ed_token = sign_receipt(*ed, sample());
    ASSERT_TRUE(ed_token);
    Refusal why = Refusal::malformed;
    const std::string spliced = ed_token->substr(0, ed_token->rfind('.')) + token->substr(token->rfind('.'));
    EXPECT_FALSE(verify_receipt(spliced, ed->public_key(), sha256(kMessage), &why));
    EXPECT_EQ(why, Refusal::bad_signature);
}

TEST(Receipt, ReceiptsAndTokensAreNotInterchangeable) {
    auto ed = SigningKey::from_pem(fixture("ed.key"), "ed");  // the JWK set's "ed" key
    ASSERT_TRUE(ed);
    auto jwks = Jwks::parse(fixture("jwks.json"));
    ASSERT_TRUE(jwks);
    JwtPolicy p;
    p.issuer = "https://idp.test";
    p.audience = "xproxy";
    // a JWT's claims under the receipt type: not a token
    const std::string claims = part_of_token_payload();
    auto as_receipt = sign_jws(*ed, kReceiptHeaderType, claims);
    ASSERT_TRUE(as_receipt);
    Refusal why = Refusal::no_identity;
    EXPECT_FALSE(validate_jwt(*as_receipt, *jwks, p, kNow, &why));
    EXPECT_EQ(why, Refusal::malformed);
    auto as_jwt = sign_jws(*ed, "JWT", claims);
    ASSERT_TRUE(as_jwt);
    EXPECT_TRUE(validate_jwt(*as_jwt, *jwks, p, kNow));  // the same claims as a JWT: accepted
    // a token is not a receipt
    EXPECT_FALSE(verify_receipt(fixture("eddsa.jwt"), ed->public_key(), sha256(kMessage), &why));
    EXPECT_EQ(why, Refusal::malformed);
    // a receipt payload under the JWT type is not a receipt either
    auto payload = receipt_payload(sample());
    ASSERT_TRUE(payload);
    auto typ_jwt = sign_jws(*ed, "JWT", *payload);
    EXPECT_FALSE(verify_receipt(*typ_jwt, ed->public_key(), sha256(kMessage), &why));
    EXPECT_EQ(why, Refusal::malformed);
}

TEST(Receipt, PayloadIsTheDocumentedJson) {
    auto payload = receipt_payload(sample());
    ASSERT_TRUE(payload);
    EXPECT_EQ(*payload, "{\"typ\":\"xproxy-receipt\",\"iss\":\"mx.example.test\",\"iat\":1800000000,\"sha256\":\"" +
                            base64url_encode(sha256(kMessage)) +
                            "\",\"rcpt\":[\"b@example.test\",\"c@example.test\"],\"queue_id\":\"4Xk2Lp0Zz1\"}");
    Receipt bad = sample();
    bad.recipients.push_back("\xff@example.test");
    EXPECT_FALSE(receipt_payload(bad));
    bad = sample();
    bad.sha256 = "short";
    EXPECT_FALSE(receipt_payload(bad));
}

TEST(SigningKeyFile, RefusesWhatIsNotAPrivateKeyFile) {
    Dir d;
    struct Row {
        std::string name;
        std::string bytes;
        mode_t mode;
        std::string kid;
        const char* want_error;
    } rows[] = {
        {"group.key", fixture("ed.key"), 0640, "k", "mode"},
        {"world.key", fixture("ed.key"), 0604, "k", "mode"},
        {"pub.key", fixture("ed.pub"), 0600, "k", "not an unencrypted PEM private key"},
        {"rsa.key", fixture("rsa.key"), 0600, "k", "RSA keys do not sign receipts"},
        {"p384.key", fixture("ec384.key"), 0600, "k", "P-256"},
        {"nokid.key", fixture("ed.key"), 0600, "", "key id"},
        {"ctl.key", fixture("ed.key"), 0600, "a\nb", "key id"},
        {"empty.key", "", 0600, "k", "not an unencrypted PEM private key"},
    };
    for (const auto& r : rows) {
        auto k = SigningKey::load(d.write(r.name, r.bytes, r.mode), r.kid);
        ASSERT_FALSE(k) << r.name;
        EXPECT_NE(k.error().find(r.want_error), std::string::npos) << r.name << ": " << k.error();
    }
    auto missing = SigningKey::load(d.path + "/missing.key", "k");
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().find("missing.key"), std::string::npos) << missing.error();
    const std::string link = d.path + "/link.key";
    ASSERT_EQ(symlink(d.write("target.key", fixture("ed.key"), 0600).c_str(), link.c_str()), 0);
    EXPECT_FALSE(SigningKey::load(link, "k"));
}
