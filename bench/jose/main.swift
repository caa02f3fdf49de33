// SPDX-License-Identifier: Apache-2.0
//
// Per algorithm: ns per full verification of a realistic access token (split, base64url, header
// JSON, key lookup, signature, claims JSON, time/iss/aud checks) against ns per bare libcrypto
// verification of the same signing input with the same prepared key and a copied context — the
// best the primitive can do. Rounds of the two are interleaved; medians are reported.
//
//   swift run -c release gatehouse-bench-jose [rounds]      (make bench-jose pins it to one core)

import CGatehouseOpenSSL
import Foundation
import GatehouseCrypto
import GatehouseJOSE

let rounds = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 15 : 15
/// `profile ALG N`: only N full verifications of ALG, for callgrind.
let profiled = CommandLine.arguments.count > 3 && CommandLine.arguments[1] == "profile"
    ? (Algorithm(rawValue: CommandLine.arguments[2]), Int(CommandLine.arguments[3]) ?? 10000) : nil
let now = Date().timeIntervalSince1970

/// The claims DESIGN.md puts in every access token.
let claims = JSONObject([
    "iss": .string("https://auth.example.com"), "sub": .string("12345"), "aud": .string("api"),
    "exp": .number((now + 1800).rounded()), "iat": .number(now.rounded()),
    "jti": .string("0b9f3c2e-6a61-4f0e-9d53-3f3c1c8e2a10"), "sid": .string("5d0e7f3a-93b1-4c1e-8a4e-2f6b9c0d1e27"),
    "user_id": .number(12345), "role": .string("editor"), "roles": .array([.string("editor"), .string("viewer")]),
    "scope": .string("profile:read content:read content:write"),
])

struct Case {
    let algorithm: Algorithm
    let material: KeyMaterial
}

func makeCases() throws -> [Case] {
    [
        Case(algorithm: .hs256, material: .secret(SecureRandom.bytes(32))),
        Case(algorithm: .hs512, material: .secret(SecureRandom.bytes(64))),
        Case(algorithm: .rs256, material: .asymmetric(try EVPKey.generate(.rsa(bits: 2048)))),
        Case(algorithm: .ps256, material: .asymmetric(try EVPKey.generate(.rsa(bits: 2048)))),
        Case(algorithm: .es256, material: .asymmetric(try EVPKey.generate(.ec(.p256)))),
        Case(algorithm: .es384, material: .asymmetric(try EVPKey.generate(.ec(.p384)))),
        Case(algorithm: .es512, material: .asymmetric(try EVPKey.generate(.ec(.p521)))),
        Case(algorithm: .edDSA, material: .asymmetric(try EVPKey.generate(.ed25519))),
    ]
}

/// The primitive alone: a context initialised once, copied per call, fed the decoded signature
/// (DER for ECDSA, as libcrypto wants it) and the signing input.
final class Baseline {
    let template: OpaquePointer
    let scratch: OpaquePointer
    let mac: OpaquePointer?
    let signature: [UInt8]
    let message: [UInt8]

    init(_ testCase: Case, token: String) throws {
        let parts = token.split(separator: ".")
        self.message = Array(token.utf8.prefix(parts[0].utf8.count + 1 + parts[1].utf8.count))
        let raw = Base64URL.decode(parts[2])!
        self.scratch = EVP_MD_CTX_new()!
        self.template = EVP_MD_CTX_new()!
        switch (testCase.algorithm.family, testCase.material) {
        case (.hmac(let digest), .secret(let secret)):
            let hmac = EVP_MAC_fetch(nil, "HMAC", nil)
            let context = EVP_MAC_CTX_new(hmac)!
            let name = strdup(digest == .sha256 ? "SHA256" : "SHA512")!
            var parameters = [CGatehouseOpenSSL_mac_digest_parameter(name), OSSL_PARAM_construct_end()]
            guard EVP_MAC_init(context, secret, secret.count, &parameters) == 1 else { fatalError("EVP_MAC_init") }
            self.mac = context
            self.signature = raw
        case (.signature(let scheme), .asymmetric(let key)):
            self.mac = nil
            let der = try Self.derPEMKey(key)
            var keyContext: OpaquePointer? = nil
            let md: OpaquePointer?
            switch scheme {
            case .rsaPKCS1(let digest), .rsaPSS(let digest), .ecdsa(let digest):
                md = EVP_MD_fetch(nil, digest == .sha256 ? "SHA256" : digest == .sha384 ? "SHA384" : "SHA512", nil)
            case .ed25519: md = nil
            }
            guard EVP_DigestVerifyInit(self.template, &keyContext, md, nil, der) == 1 else { fatalError("init") }
            if case .rsaPSS = scheme {
                EVP_PKEY_CTX_set_rsa_padding(keyContext, RSA_PKCS1_PSS_PADDING)
                EVP_PKEY_CTX_set_rsa_pss_saltlen(keyContext, RSA_PSS_SALTLEN_DIGEST)
            }
            if case .ecdsa = scheme {
                let half = raw.count / 2
                let signature = ECDSA_SIG_new()!
                ECDSA_SIG_set0(signature, BN_bin2bn(raw, Int32(half), nil), BN_bin2bn(Array(raw[half...]), Int32(half), nil))
                var out: UnsafeMutablePointer<UInt8>? = nil
                let length = i2d_ECDSA_SIG(signature, &out)
                self.signature = Array(UnsafeBufferPointer(start: out, count: Int(length)))
            } else {
                self.signature = raw
            }
        default:
            fatalError("mismatched case")
        }
    }

    /// The public key as a fresh libcrypto object, read from its PEM.
    static func derPEMKey(_ key: EVPKey) throws -> OpaquePointer {
        let pem = Array(try key.publicKeyPEM().utf8)
        let bio = BIO_new_mem_buf(pem, Int32(pem.count))
        defer { BIO_free(bio) }
        return PEM_read_bio_PUBKEY(bio, nil, nil, nil)!
    }

    @inline(never)
    func verify() -> Bool {
        if let mac {
            var tag = [UInt8](repeating: 0, count: 64)
            var length = 0
            EVP_MAC_init(mac, nil, 0, nil)
            EVP_MAC_update(mac, self.message, self.message.count)
            EVP_MAC_final(mac, &tag, &length, 64)
            return CRYPTO_memcmp(tag, self.signature, length) == 0
        }
        EVP_MD_CTX_copy_ex(self.scratch, self.template)
        return EVP_DigestVerify(self.scratch, self.signature, self.signature.count, self.message, self.message.count) == 1
    }
}

func nanosecondsPerCall(iterations: Int, _ body: () -> Bool) -> Double {
    let clock = ContinuousClock()
    var failures = 0
    let elapsed = clock.measure {
        for _ in 0..<iterations where !body() { failures += 1 }
    }
    precondition(failures == 0, "a verification failed during the benchmark")
    let (seconds, attoseconds) = elapsed.components
    return (Double(seconds) * 1e9 + Double(attoseconds) / 1e9) / Double(iterations)
}

/// The loop callgrind collects (`--toggle-collect='*profileLoop*'`).
@inline(never)
func profileLoop(_ verifier: Verifier, _ bytes: [UInt8], _ count: Int) -> Int {
    var verified = 0
    for _ in 0..<count where bytes.withUnsafeBytes({ (try? verifier.verify($0, now: now)) != nil }) { verified += 1 }
    return verified
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted[sorted.count / 2]
}

print("| alg | full verify (ns) | bare libcrypto (ns) | ratio | overhead (ns) |")
print("|---|---:|---:|---:|---:|")
for testCase in try makeCases() {
    let keyID = "bench-\(testCase.algorithm.rawValue.lowercased())"
    let signer = try Signer(material: testCase.material, algorithm: testCase.algorithm, keyID: keyID)
    let token = try signer.sign(claims, type: "at+jwt")
    let keys = try KeySet([ConfiguredKey(keyID: keyID, material: testCase.material)], allowed: [testCase.algorithm])
    let policy = VerificationPolicy(algorithms: [testCase.algorithm], issuer: "https://auth.example.com", audience: "api")
    let verifier = Verifier(policy: policy, keys: keys)
    let baseline = try Baseline(testCase, token: token)
    let bytes = Array(token.utf8)
    if let (algorithm, count) = profiled {
        guard algorithm == testCase.algorithm else { continue }
        print("profiled \(count) × \(testCase.algorithm.rawValue): \(profileLoop(verifier, bytes, count)) verified")
        continue
    }

    // Aim for ~20 ms per batch.
    let probe = nanosecondsPerCall(iterations: 50) { baseline.verify() }
    let iterations = max(50, Int(20_000_000 / max(probe, 1)))
    var full: [Double] = []
    var bare: [Double] = []
    for _ in 0..<rounds {
        bare.append(nanosecondsPerCall(iterations: iterations) { baseline.verify() })
        full.append(nanosecondsPerCall(iterations: iterations) {
            bytes.withUnsafeBytes { (try? verifier.verify($0, now: now)) != nil }
        })
    }
    let (f, b) = (median(full), median(bare))
    print(String(format: "| %@ | %.0f | %.0f | %.3f | %.0f |", testCase.algorithm.rawValue, f, b, f / b, f - b))
}
print("\ntoken: \(try Signer(material: .secret(SecureRandom.bytes(32)), algorithm: .hs256, keyID: "bench-hs256").sign(claims, type: "at+jwt").utf8.count) bytes (HS256), rounds: \(rounds), medians")
