// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatehouseCrypto
import GatehouseTestSupport
import Testing

/// `signing.key_file` signs; `previous_key_files` stay published and accepted.
@Suite("Signing-key rotation")
struct KeyRotationTests {
    @Test("after a rotation, tokens signed by the previous key still verify and refresh; new ones use the new kid")
    func rotation() async throws {
        let directory = NSTemporaryDirectory() + "gatehouse-rotation-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let old = directory + "/old.pem"
        let new = directory + "/new.pem"
        try EVPKey.generate(.ec(.p256)).privateKeyPEM().write(toFile: old, atomically: true, encoding: .utf8)
        try EVPKey.generate(.ec(.p256)).privateKeyPEM().write(toFile: new, atomically: true, encoding: .utf8)
        let database = try Backend.sqlite.makeURL()

        var before = Harness.Options()
        before.signing = "{ alg: ES256, key_file: \(old) }"
        let (tokens, oldKid) = try await Harness.with(.sqlite, database: database, options: before) { harness in
            let tokens = try harness.register("ann@example.com")
            return (tokens, decode(tokens.access).header["kid"] as! String)
        }

        var after = Harness.Options()
        after.signing = "{ alg: ES256, key_file: \(new), previous_key_files: [\(old)] }"
        try await Harness.with(.sqlite, database: database, options: after) { harness in
            let kids = try #require(harness.get("/.well-known/jwks.json").json?["keys"] as? [[String: Any]]).compactMap { $0["kid"] as? String }
            #expect(kids.count == 2 && kids[1] == oldKid)
            #expect(try harness.get("/users/me", bearer: tokens.access).status == 200)
            #expect(try harness.get("/echo/x", bearer: tokens.access).status == 200)
            let refreshed = try Tokens(harness.refresh(tokens.refresh))
            let newKid = decode(refreshed.access).header["kid"] as? String
            #expect(newKid == kids[0] && newKid != oldKid)
        }

        // Once the old key is removed, its tokens are refused: an unknown kid.
        var removed = Harness.Options()
        removed.signing = "{ alg: ES256, key_file: \(new) }"
        try await Harness.with(.sqlite, database: database, options: removed) { harness in
            let refused = try harness.get("/echo/x", bearer: tokens.access)
            #expect(refused.status == 401)
            #expect(refused.header("WWW-Authenticate")?.contains("unknown_kid") == true)
        }
    }
}
