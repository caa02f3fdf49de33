// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatehouseCrypto
import GatehouseGateway
import GatehouseHTTP
import GatehouseJOSE
import Testing

@Suite("The access-token check the issuer shares with the gateway")
struct AccessCheckTests {
    @Test("a cached verdict: the hit costs no verification, an expired token is refused from the cache, a revoked session on a hit")
    func cachedVerdicts() throws {
        let key = try EVPKey.generate(.ec(.p256))
        let verifier = Verifier(
            policy: VerificationPolicy(algorithms: [.es256], issuer: "https://auth.test", audience: "api", type: .required("at+jwt"), leeway: 5),
            keys: try KeySet([ConfiguredKey(keyID: "k1", material: .asymmetric(try key.publicKey()))], allowed: [.es256])
        )
        let check = AccessCheck(providers: ProviderSet([verifier]))
        let now = Date().timeIntervalSince1970
        let claims = JSONObject([
            "iss": .string("https://auth.test"), "aud": .string("api"), "sub": .string("7"), "user_id": .number(7),
            "sid": .string("session-1"), "exp": .number(now + 60),
        ])
        let token = try Signer(material: .asymmetric(key), algorithm: .es256, keyID: "k1").sign(claims, type: "at+jwt")
        let cache = SharedTokenCache(capacity: 16)
        let board = RevocationBoard()

        #expect(try check.identity(of: token, now: now, cache: cache, revocations: board).get().userID == "7")
        #expect(try check.identity(of: token, now: now + 1, cache: cache, revocations: board).get().sessionID == "session-1")
        #expect(cache.counts == (1, 1), "the second check is a hit")
        // exp + leeway has passed: refused from the cache, with no verification.
        let expired = check.identity(of: token, now: now + 66, cache: cache, revocations: board)
        #expect(throws: JOSEError.self) { try expired.get() }
        if case .failure(let error) = expired { #expect(error.reason == .expired) }
        // Cached again, then its session ends: refused on the hit.
        _ = check.identity(of: token, now: now, cache: cache, revocations: board)
        board.publish([RevocationBoard.Entry(sessionID: "session-1", expiresAt: now + 60)])
        let revoked = check.identity(of: token, now: now + 2, cache: cache, revocations: board)
        if case .failure(let error) = revoked { #expect(error.reason == .revoked) } else { Issue.record("a revoked session's cached token passed") }
    }
}
