// SPDX-License-Identifier: Apache-2.0
import GatehouseCrypto
import GatehouseJOSE
import Testing

@Suite("RFC 7515 A.1–A.4, RFC 7520 4.1–4.4, RFC 8037 A, RFC 7638 3.1")
struct RFCVectorTests {
    let vectors: RFCVectors

    init() throws { self.vectors = try RFCVectors.load() }

    private func verifier(for vector: RFCVectors.JWSVector) throws -> Verifier {
        let key = try ConfiguredKey(jwk: vector.key)
        let policy = VerificationPolicy(algorithms: [vector.algorithm], issuer: nil, audience: nil, type: .any)
        return Verifier(policy: policy, keys: try KeySet([key], allowed: [vector.algorithm]))
    }

    @Test("every published signature verifies, and its verdict is the expected one")
    func publishedSignaturesVerify() throws {
        #expect(self.vectors.jws.count == 9)
        for vector in self.vectors.jws {
            let inspection = Inspection(token: vector.token, verifier: try self.verifier(for: vector), now: 1_800_000_000)
            #expect(inspection.signature == .valid, "\(vector.name)")
            // RFC 7515 A.1–A.3 carry JSON that expired in 2011; A.4 ("Payload"), RFC 7520 and
            // RFC 8037 sign payloads that are not JSON at all.
            let isJSON = vector.name.hasPrefix("RFC 7515") && vector.algorithm != .es512
            let expected: RejectionReason = isJSON ? .expired : .malformed
            #expect(inspection.rejection?.reason == expected, "\(vector.name)")
        }
    }

    @Test("the RFC 7515 A.1–A.3 tokens verify completely before their exp")
    func appendixTokensValidBeforeExpiry() throws {
        for vector in self.vectors.jws where vector.name.hasPrefix("RFC 7515") && vector.algorithm != .es512 {
            let token = try self.verifier(for: vector).verify(vector.token, now: 1_300_819_000)
            #expect(token.claims.issuer == "joe", "\(vector.name)")
            #expect(token.claims.expiresAt == 1_300_819_380, "\(vector.name)")
            #expect(token.claims["http://example.com/is_root"] == .bool(true), "\(vector.name)")
        }
    }

    @Test("deterministic algorithms reproduce the published signature byte for byte")
    func deterministicSignaturesMatchExactly() throws {
        for vector in self.vectors.jws where vector.deterministic {
            let parts = vector.token.split(separator: ".").map(String.init)
            let signingInput = Array((parts[0] + "." + parts[1]).utf8)
            let signature: [UInt8]
            switch (vector.algorithm.family, try vector.key.makeKey()) {
            case (.hmac(let digest), .secret(let secret)):
                signature = PreparedMAC(secret: secret, digest: digest).authenticate(signingInput)
            case (.signature(let scheme), .asymmetric(let key)):
                signature = try key.sign(signingInput, scheme: scheme)
            default:
                Issue.record("\(vector.name): key and algorithm disagree")
                continue
            }
            #expect(Base64URL.encode(signature) == parts[2], "\(vector.name)")
        }
    }

    @Test("the signer reproduces RFC 7520 4.1 and 4.4 and RFC 8037 A.4 whole tokens")
    func signerReproducesCompactTokens() throws {
        for vector in self.vectors.jws where vector.deterministic && !vector.name.hasPrefix("RFC 7515") {
            let parts = vector.token.split(separator: ".").map(String.init)
            let header = try JSONReader.parse(String(decoding: Base64URL.decode(parts[0])!, as: UTF8.self)).objectValue!
            let signer = try Signer(material: try vector.key.makeKey(), algorithm: vector.algorithm, keyID: vector.key.keyID ?? "")
            #expect(try signer.sign(header: header, payload: Base64URL.decode(parts[1])!) == vector.token, "\(vector.name)")
        }
    }

    @Test("randomised algorithms (ECDSA, PSS) round-trip with the vector keys")
    func randomisedSignaturesRoundTrip() throws {
        for vector in self.vectors.jws where !vector.deterministic {
            let signer = try Signer(material: try vector.key.makeKey(), algorithm: vector.algorithm, keyID: "k")
            let token = try signer.sign(JSONObject(["exp": .number(2_000_000_000)]), type: nil)
            let policy = VerificationPolicy(algorithms: [vector.algorithm], issuer: nil, audience: nil, type: .any)
            let keys = try KeySet([ConfiguredKey(keyID: "k", material: try vector.key.makeKey())], allowed: [vector.algorithm])
            #expect(throws: Never.self, "\(vector.name)") {
                try Verifier(policy: policy, keys: keys).verify(token, now: 1_800_000_000)
            }
        }
    }

    @Test("RFC 7638 3.1 thumbprint")
    func thumbprint() {
        #expect(self.vectors.thumbprintKey.thumbprint == self.vectors.thumbprint)
    }

    @Test("JWKs export what they import, private members only on request")
    func jwkRoundTrip() throws {
        for vector in self.vectors.jws {
            guard case .asymmetric(let key) = try vector.key.makeKey() else { continue }
            let exported = JWK(key: key, keyID: "k", includePrivate: true)
            for name in ["n", "e", "d", "p", "q", "dp", "dq", "qi", "crv", "x", "y"] where vector.key.json[name] != nil {
                #expect(exported.json[name] == vector.key.json[name], "\(vector.name) \(name)")
            }
            let publicOnly = JWK(key: key)
            #expect(publicOnly.json["d"] == nil && publicOnly.json["p"] == nil, "\(vector.name)")
            #expect(publicOnly.keyID == publicOnly.thumbprint, "kid defaults to the thumbprint")
        }
    }
}
