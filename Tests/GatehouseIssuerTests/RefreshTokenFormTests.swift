// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatehouseCrypto
import GatehouseJOSE
import GatehouseTestSupport
import Testing

/// Hardening II, finding 6: a refresh token must not pass as an access token at a verifier that
/// ignores `typ` (DESIGN.md, "Tokens"): `aud` is the issuer itself, HS256 under the refresh secret,
/// no published key, no `kid`. Old refresh tokens keep working until they rotate or expire.
@Suite("Refresh token form")
struct RefreshTokenFormTests {
    @Test("the refresh token is HS256 with no kid and aud = iss; still never an access token", arguments: Backend.allCases)
    func form(_ backend: Backend) async throws {
        try await Harness.with(backend) { harness in
            let tokens = try harness.register("ann@example.com")
            let (header, claims) = decode(tokens.refresh)
            #expect(header["alg"] as? String == "HS256")
            #expect(header["typ"] as? String == "refresh+jwt")
            #expect(header["kid"] == nil)
            #expect(claims["aud"] as? String == "http://gatehouse.test" && claims["iss"] as? String == "http://gatehouse.test")
            #expect(decode(tokens.access).claims["aud"] as? String == "api")
            // Still a working refresh token, and still refused as an access token everywhere.
            let refreshed = try Tokens(harness.refresh(tokens.refresh))
            #expect(decode(refreshed.refresh).header["alg"] as? String == "HS256")
            #expect(try harness.get("/users/me", bearer: refreshed.refresh).status == 401)
            #expect(try harness.get("/echo/x", bearer: refreshed.refresh).status == 401)
            #expect(try harness.refresh(refreshed.access).status == 401)
            // A refresh token signed under another secret is refused.
            let forged = try Self.hs256(claims: claims, secret: Array(String(repeating: "x", count: 32).utf8))
            #expect(try harness.refresh(forged).status == 401)
        }
    }

    @Test("PyJWT, ignoring typ, verifying with the JWKS and audience api: the access token passes, the refresh token fails")
    func pyjwt() async throws {
        try await Harness.with(.sqlite) { harness in
            let tokens = try harness.register("ann@example.com")
            let script = """
                import json, sys, urllib.request, jwt
                jwks = json.load(urllib.request.urlopen(sys.argv[1]))
                def passes(token):
                    for key in jwks["keys"]:
                        try:
                            jwt.decode(token, jwt.PyJWK(key).key, algorithms=["ES256", "RS256", "PS256", "EdDSA"],
                                       audience="api", issuer="http://gatehouse.test")
                            return True
                        except jwt.PyJWTError:
                            pass
                    return False
                print(json.dumps({"access": passes(sys.argv[2]), "refresh": passes(sys.argv[3])}))
                """
            let result = try Self.python(script, arguments: ["http://127.0.0.1:\(harness.port)/.well-known/jwks.json", tokens.access, tokens.refresh])
            #expect(result == #"{"access": true, "refresh": false}"#)
        }
    }

    @Test("a refresh token of before the change (ES256, aud = API audience) refreshes into an HS256 one and logs out", arguments: Backend.allCases)
    func oldTokens(_ backend: Backend) async throws {
        try await Harness.with(backend) { harness in
            let key = try EVPKey(pem: try String(contentsOfFile: harness.keyFile, encoding: .utf8))
            let signer = try Signer(material: .asymmetric(key), algorithm: .es256, keyID: JWK(key: try key.publicKey()).thumbprint)
            /// The session's current refresh token as the issuer minted it before: same claims, but
            /// `aud` the API audience and signed with the published key.
            func oldStyle(_ tokens: Tokens) throws -> String {
                let claims = decode(tokens.refresh).claims
                let now = Date().timeIntervalSince1970.rounded(.down)
                return try signer.sign(JSONObject([
                    "iss": .string("http://gatehouse.test"), "sub": .string(claims["sub"] as! String), "aud": .string("api"),
                    "exp": .number(now + 7 * 86400), "iat": .number(now), "jti": .string(claims["jti"] as! String),
                    "sid": .string(claims["sid"] as! String),
                ]), type: "refresh+jwt")
            }
            let ann = try harness.register("ann@example.com")
            let old = try oldStyle(ann)
            #expect(decode(old).header["alg"] as? String == "ES256")
            let refreshed = try Tokens(harness.refresh(old))
            let (header, claims) = decode(refreshed.refresh)
            #expect(header["alg"] as? String == "HS256" && header["kid"] == nil)
            #expect(claims["aud"] as? String == "http://gatehouse.test")
            #expect(claims["sid"] as? String == decode(ann.refresh).claims["sid"] as? String)
            #expect(try harness.refresh(refreshed.refresh).status == 200)

            let bob = try harness.register("bob@example.com")
            #expect(try harness.post("/auth/logout", ["refresh_token": try oldStyle(bob)]).status == 204)
            #expect(try harness.refresh(bob.refresh).status == 401)
            // An old-style token is still never an access token.
            #expect(try harness.get("/users/me", bearer: try oldStyle(ann)).status == 401)
        }
    }

    @Test("refresh_secret signs; previous_refresh_secrets keep sessions across a change of it; without them they end")
    func secretRotation() async throws {
        let database = try Backend.sqlite.makeURL()
        let first = String(repeating: "a", count: 32)
        let second = String(repeating: "b", count: 40)
        var before = Harness.Options()
        before.issuer = "refresh_secret: \(first)"
        let (ann, bob) = try await Harness.with(.sqlite, database: database, options: before) { harness in
            let ann = try harness.register("ann@example.com")
            // Signed under the configured secret itself.
            let parts = ann.refresh.split(separator: ".").map(String.init)
            let tag = PreparedMAC(secret: Array(first.utf8), digest: .sha256).authenticate(Array((parts[0] + "." + parts[1]).utf8))
            #expect(Base64URL.encode(tag) == parts[2])
            return (ann, try harness.register("bob@example.com"))
        }
        var after = Harness.Options()
        after.issuer = "refresh_secret: \(second)\nprevious_refresh_secrets: [\(first)]"
        try await Harness.with(.sqlite, database: database, options: after) { harness in
            let refreshed = try harness.refresh(ann.refresh)
            #expect(refreshed.status == 200)
        }
        var dropped = Harness.Options()
        dropped.issuer = "refresh_secret: \(second)"
        try await Harness.with(.sqlite, database: database, options: dropped) { harness in
            let refused = try harness.refresh(bob.refresh)
            #expect(refused.status == 401 && refused.json?["error"] as? String == "invalid_grant")
        }
    }

    /// A compact HS256 JWS of `claims` with the issuer's refresh header.
    static func hs256(claims: [String: Any], secret: [UInt8]) throws -> String {
        let header = Base64URL.encode(Array(#"{"alg":"HS256","typ":"refresh+jwt"}"#.utf8))
        var object = JSONObject()
        for name in ["iss", "sub", "aud", "exp", "iat", "jti", "sid"] {
            switch claims[name] {
            case let text as String: object[name] = .string(text)
            case let number as Int: object[name] = .number(Double(number))
            default: break
            }
        }
        let input = header + "." + Base64URL.encode(Array(object.serialized.utf8))
        return input + "." + Base64URL.encode(PreparedMAC(secret: secret, digest: .sha256).authenticate(Array(input.utf8)))
    }

    /// Runs `python3 -c script arguments…`; its standard output, trimmed.
    static func python(_ script: String, arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script] + arguments
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "python3 failed (is PyJWT installed? make test-deps installs it)")
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
