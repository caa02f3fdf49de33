// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatehouseConfig
import GatehouseCrypto
import GatehouseGateway
import GatehouseJOSE
import GatehouseTestSupport
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// Known attacks on JWT verifiers, sent through a real gateway to a real upstream: each is a 401
/// with its reason, none reaches the upstream, and nothing a token names is ever fetched.
@Suite("Attack corpus through the gateway")
struct AttackCorpusTests {
    static func b64(_ bytes: [UInt8]) -> String { Base64URL.encode(bytes) }
    static func b64(_ text: String) -> String { Base64URL.encode(Array(text.utf8)) }
    static func json(_ object: [String: Any]) -> String {
        String(decoding: try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
    }

    @Test("alg none, key confusion, psychic and out-of-range ECDSA, jku/x5u/jwk, kid injection, bad claims, oversized and malformed tokens")
    func corpus() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let forwarded = Atomic<Int>(0)
        let fetched = Atomic<Int>(0)
        let echo = try await HTTPListener.bind(host: "127.0.0.1", port: 0, group: group) { _ in
            forwarded.add(1, ordering: .relaxed)
            return EchoHandler()
        }
        // What a token's jku / x5u point at: any connection here is a fetch.
        let lure = try await HTTPListener.bind(host: "127.0.0.1", port: 0, group: group) { _ in
            fetched.add(1, ordering: .relaxed)
            return EchoHandler()
        }
        let lureURL = "http://127.0.0.1:\(lure.localAddress!.port!)/keys"
        let rsa = try EVPKey.generate(.rsa(bits: 2048))
        let ec = try EVPKey.generate(.ec(.p256))
        let directory = try FileManager.default.url(for: .itemReplacementDirectory, in: .userDomainMask, appropriateFor: URL(fileURLWithPath: "/tmp"), create: true)
        let jwks = JWKS(keys: [
            JWK(key: try rsa.publicKey(), keyID: "r1", algorithm: .rs256), JWK(key: try ec.publicKey(), keyID: "e1", algorithm: .es256),
        ])
        try jwks.serialized.write(to: directory.appendingPathComponent("keys.json"), atomically: true, encoding: .utf8)
        let yaml = """
            access_log: false
            verify:
              issuer: https://auth.test
              audience: api
              algorithms: [ES256, RS256, HS256]
              keys: { jwks_file: keys.json }
            routes:
              - { prefix: /, upstream: "http://127.0.0.1:\(echo.localAddress!.port!)" }

            """
        let config = try GatewayConfig.parse(yaml, file: "attack.conf", baseDirectory: directory.path)
        let gateway = try await GatewayServer.start(config: config, group: group, host: "127.0.0.1", port: 0)

        let now = Date().timeIntervalSince1970
        let claims: [String: Any] = ["iss": "https://auth.test", "aud": "api", "sub": "7", "exp": now + 600, "iat": now - 10]
        /// A compact JWS; header members set to NSNull are left out.
        func token(_ header: [String: Any], _ payload: String, signature: (String) throws -> [UInt8]) rethrows -> String {
            let input = Self.b64(Self.json(header.filter { !($0.value is NSNull) })) + "." + Self.b64(payload)
            return input + "." + Self.b64(try signature(input))
        }
        func es256(_ header: [String: Any] = [:], _ claimsJSON: String? = nil, key: EVPKey? = nil) throws -> String {
            try token(["alg": "ES256", "kid": "e1", "typ": "at+jwt"].merging(header) { $1 }, claimsJSON ?? Self.json(claims)) {
                try (key ?? ec).sign(Array($0.utf8), scheme: .ecdsa(.sha256))
            }
        }
        func hs256(secret: [UInt8], kid: String) -> String {
            token(["alg": "HS256", "kid": kid, "typ": "at+jwt"], Self.json(claims)) { PreparedMAC(secret: secret, digest: .sha256).authenticate(Array($0.utf8)) }
        }
        let valid = try es256()
        let parts = valid.split(separator: ".").map(String.init)
        let order = "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551"   // P-256's n
        let orderBytes = stride(from: 0, to: order.count, by: 2).map { UInt8(order.dropFirst($0).prefix(2), radix: 16)! }
        let attacker = try EVPKey.generate(.ec(.p256))
        let attackerJWKS = try JSONSerialization.jsonObject(with: Data(JWKS(keys: [JWK(key: try attacker.publicKey(), keyID: "e1")]).serialized.utf8))
        let attackerJWK = ((attackerJWKS as? [String: Any])?["keys"] as? [Any])?.first ?? [:]

        var cases: [(String, String, String)] = []   // name, token, expected reason
        for none in ["none", "None", "NONE", "nOnE"] {
            // An empty signature segment is malformed before alg is even read.
            cases.append(("alg \(none), no signature", Self.b64(Self.json(["alg": none, "typ": "at+jwt"])) + "." + parts[1] + ".", "malformed"))
            cases.append(("alg \(none) with a signature", Self.b64(Self.json(["alg": none, "kid": "e1"])) + "." + parts[1] + "." + parts[2], "alg_not_allowed"))
        }
        cases += [
            ("stripped signature", parts[0] + "." + parts[1] + ".", "malformed"),
            ("HS256 keyed with the RSA public key (PEM)", hs256(secret: Array(try rsa.publicKeyPEM().utf8), kid: "r1"), "alg_not_allowed"),
            ("HS256 keyed with the EC public key (PEM)", hs256(secret: Array(try ec.publicKeyPEM().utf8), kid: "e1"), "alg_not_allowed"),
            ("ECDSA r = s = 0 (CVE-2022-21449)", parts[0] + "." + parts[1] + "." + Self.b64([UInt8](repeating: 0, count: 64)), "bad_signature"),
            ("ECDSA r = n", parts[0] + "." + parts[1] + "." + Self.b64(orderBytes + [UInt8](repeating: 1, count: 32)), "bad_signature"),
            ("ECDSA s = n", parts[0] + "." + parts[1] + "." + Self.b64([UInt8](repeating: 1, count: 32) + orderBytes), "bad_signature"),
            ("ECDSA r, s = 2^256 - 1", parts[0] + "." + parts[1] + "." + Self.b64([UInt8](repeating: 0xFF, count: 64)), "bad_signature"),
            ("ECDSA signature one byte short", parts[0] + "." + parts[1] + "." + Self.b64([UInt8](repeating: 1, count: 63)), "bad_signature"),
            ("jku to the attacker's keys", try es256(["jku": lureURL], key: attacker), "bad_signature"),
            ("x5u to the attacker's certificate", try es256(["x5u": lureURL], key: attacker), "bad_signature"),
            ("embedded jwk of the attacker", try es256(["jwk": attackerJWK], key: attacker), "bad_signature"),
            // Without kid the one ES256 key configured judges it: the attacker's signature fails.
            ("embedded jwk without kid", try es256(["kid": NSNull(), "jwk": attackerJWK], key: attacker), "bad_signature"),
            ("kid null", try es256([:], nil, key: attacker).replacingOccurrences(of: Self.b64(Self.json(["alg": "ES256", "kid": "e1", "typ": "at+jwt"])), with: Self.b64(#"{"alg":"ES256","kid":null,"typ":"at+jwt"}"#)), "malformed"),
            ("kid path traversal", try es256(["kid": "../../../../etc/passwd"]), "unknown_kid"),
            ("kid SQL injection", try es256(["kid": "e1' OR '1'='1"]), "unknown_kid"),
            ("kid with NUL", try es256(["kid": "e1\u{0}"]), "unknown_kid"),
            ("expired", try es256([:], Self.json(claims.merging(["exp": now - 3600]) { $1 })), "expired"),
            ("not yet valid", try es256([:], Self.json(claims.merging(["nbf": now + 3600]) { $1 })), "not_yet_valid"),
            ("iat in the future", try es256([:], Self.json(claims.merging(["iat": now + 3600]) { $1 })), "iat_in_future"),
            ("wrong iss", try es256([:], Self.json(claims.merging(["iss": "https://evil.test"]) { $1 })), "bad_issuer"),
            ("wrong aud", try es256([:], Self.json(claims.merging(["aud": "other"]) { $1 })), "bad_audience"),
            ("duplicate sub", try es256([:], #"{"iss":"https://auth.test","aud":"api","sub":"7","sub":"admin","exp":\#(Int(now) + 600)}"#), "malformed"),
            ("duplicate alg", token(["alg": "ES256"], Self.json(claims)) { _ in [] }.replacingOccurrences(of: Self.b64(Self.json(["alg": "ES256"])), with: Self.b64(#"{"alg":"ES256","alg":"none","kid":"e1"}"#)), "malformed"),
            ("a refresh token", try es256(["typ": "refresh+jwt"]), "bad_typ"),
            ("exp 1e309", try es256([:], #"{"iss":"https://auth.test","aud":"api","sub":"7","exp":1e309}"#), "malformed"),
            ("oversized", try es256([:], Self.json(claims.merging(["pad": String(repeating: "x", count: 9000)]) { $1 })), "token_too_large"),
            ("two segments", parts[0] + "." + parts[1], "malformed"),
            ("four segments", valid + ".x", "malformed"),
            ("padding", parts[0] + "=." + parts[1] + "." + parts[2], "malformed"),
            ("header not JSON", Self.b64("not json") + "." + parts[1] + "." + parts[2], "malformed"),
        ]
        #expect(try RawHTTPClient.request(port: gateway.port, "GET", "/x", headers: [("Authorization", "Bearer \(valid)")]).status == 200)
        let before = forwarded.load(ordering: .relaxed)
        var refused = 0
        for (name, attack, reason) in cases {
            let response = try RawHTTPClient.request(port: gateway.port, "GET", "/x", headers: [("Authorization", "Bearer \(attack)")])
            #expect(response.status == 401, "\(name): \(response.status)")
            #expect(response.json?["error_description"] as? String == reason, "\(name): \(response.text)")
            if response.status == 401, response.json?["error_description"] as? String == reason { refused += 1 }
        }
        try await Task.sleep(for: .milliseconds(200))
        #expect(forwarded.load(ordering: .relaxed) == before, "an attack reached the upstream")
        #expect(fetched.load(ordering: .relaxed) == 0, "a URL in a token was fetched")
        print(
            "attack corpus: \(cases.count) hostile tokens, \(refused) refused with their reason, "
                + "\(forwarded.load(ordering: .relaxed) - before) forwarded, \(fetched.load(ordering: .relaxed)) fetches"
        )

        try await gateway.stop()
        try await echo.close()
        try await lure.close()
        try await group.shutdownGracefully()
    }
}
