// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatehouseStore
import GatehouseTestSupport
import Testing

/// DESIGN.md's issuer table, row by row and error by error, through a real listener, on SQLite and
/// on PostgreSQL.
@Suite("Issuer endpoints")
struct IssuerEndpointTests {
    @Test("register, login, /users/me, JWKS, discovery, and a call through the gateway", arguments: Backend.allCases)
    func happyPath(_ backend: Backend) async throws {
        try await Harness.with(backend) { harness in
            let registered = try harness.register("  Ann@Example.COM ", name: "Ann")
            #expect(registered.json["token_type"] as? String == "Bearer")
            #expect(registered.json["expires_in"] as? Int == 1800)
            let user = try #require(registered.json["user"] as? [String: Any])
            #expect(user["email"] as? String == "ann@example.com")
            #expect(user["name"] as? String == "Ann")
            #expect(user["roles"] as? [String] == ["viewer"])
            #expect(user["permissions"] as? [String] == ["content:read", "profile:read"])

            let (header, claims) = decode(registered.access)
            #expect(header["typ"] as? String == "at+jwt")
            #expect(header["alg"] as? String == "ES256")
            #expect(claims["iss"] as? String == "http://gatehouse.test")
            #expect(claims["aud"] as? String == "api")
            #expect(claims["sub"] as? String == String(user["id"] as! Int))
            #expect(claims["user_id"] as? Int == user["id"] as? Int)
            #expect(claims["role"] as? String == "viewer")
            #expect(claims["roles"] as? [String] == ["viewer"])
            #expect(claims["scope"] as? String == "content:read profile:read")
            #expect((claims["exp"] as! Int) - (claims["iat"] as! Int) == 1800)
            #expect(claims["sid"] is String && claims["jti"] is String)
            let (refreshHeader, refreshClaims) = decode(registered.refresh)
            #expect(refreshHeader["typ"] as? String == "refresh+jwt")
            #expect((refreshClaims["exp"] as! Int) - (refreshClaims["iat"] as! Int) == 7 * 86400)
            #expect(refreshClaims["sid"] as? String == claims["sid"] as? String)
            #expect(Set(refreshClaims.keys) == ["iss", "sub", "aud", "exp", "iat", "jti", "sid"])

            // Every login starts a new session.
            let login = try Tokens(harness.login("ann@example.com"))
            #expect(decode(login.access).claims["sid"] as? String != claims["sid"] as? String)

            let me = try harness.get("/users/me", bearer: login.access)
            #expect(me.status == 200)
            let meJSON = try #require(me.json)
            #expect(meJSON["email"] as? String == "ann@example.com")
            #expect(meJSON["permissions"] as? [String] == ["content:read", "profile:read"])
            let created = try #require(meJSON["created_at"] as? String)
            #expect(created.range(of: #"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$"#, options: .regularExpression) != nil)

            let jwks = try harness.get("/.well-known/jwks.json")
            #expect(jwks.status == 200)
            let keys = try #require(jwks.json?["keys"] as? [[String: Any]])
            #expect(keys.map { $0["kid"] as? String } == [header["kid"] as? String])
            #expect(keys.allSatisfy { $0["d"] == nil })
            let discovery = try #require(harness.get("/.well-known/openid-configuration").json)
            #expect(discovery["issuer"] as? String == "http://gatehouse.test")
            #expect(discovery["jwks_uri"] as? String == "http://gatehouse.test/.well-known/jwks.json")

            // The gateway verifies the issuer's token and injects the identity.
            let echoed = try harness.get("/echo/orders", bearer: login.access)
            #expect(echoed.status == 200)
            let seen = try #require(echoed.json?["headers"] as? [String: [String]])
            #expect(seen["x-user-id"] == [String(user["id"] as! Int)])
            #expect(seen["x-user-role"] == ["viewer"])
        }
    }

    @Test("register refuses taken emails, bad emails, weak passwords and bad bodies", arguments: Backend.allCases)
    func registerErrors(_ backend: Backend) async throws {
        try await Harness.with(backend) { harness in
            _ = try harness.register("ann@example.com")
            func expect(_ response: RawHTTPClient.Response, _ status: Int, _ code: String, sourceLocation: SourceLocation = #_sourceLocation) {
                #expect(response.status == status, sourceLocation: sourceLocation)
                #expect(response.json?["error"] as? String == code, "\(response.text)", sourceLocation: sourceLocation)
                #expect(response.json?["error_description"] is String, sourceLocation: sourceLocation)
            }
            expect(try harness.post("/auth/register", ["email": "ANN@example.com ", "password": "another password"]), 409, "email_taken")
            expect(try harness.post("/auth/register", ["email": "not-an-email", "password": "another password"]), 422, "invalid_email")
            expect(try harness.post("/auth/register", ["email": "b@example.com", "password": "short"]), 422, "weak_password")
            let huge = String(repeating: "p", count: 1025)
            expect(try harness.post("/auth/register", ["email": "b@example.com", "password": huge]), 422, "weak_password")
            expect(try harness.post("/auth/login", ["email": "ann@example.com", "password": huge]), 422, "weak_password")
            expect(try harness.post("/auth/register", ["email": "b@example.com"]), 400, "invalid_request")
            expect(try harness.post("/auth/register", ["email": "b@example.com", "password": 12345678]), 400, "invalid_request")
            expect(try harness.post("/auth/register", ["email": "b@example.com", "password": "long enough", "name": 5]), 400, "invalid_request")
            let notJSON = try RawHTTPClient.request(
                port: harness.port, "POST", "/auth/register", headers: [("Content-Type", "application/json")], body: Array("{\"email\":".utf8)
            )
            expect(notJSON, 400, "invalid_request")
            let array = try RawHTTPClient.request(
                port: harness.port, "POST", "/auth/login", headers: [("Content-Type", "application/json; charset=utf-8")], body: Array("[]".utf8)
            )
            expect(array, 400, "invalid_request")
            let form = try RawHTTPClient.request(
                port: harness.port, "POST", "/auth/login", headers: [("Content-Type", "application/x-www-form-urlencoded")], body: Array("a=b".utf8)
            )
            expect(form, 415, "unsupported_media_type")
            let big = try RawHTTPClient.request(
                port: harness.port, "POST", "/auth/register", headers: [("Content-Type", "application/json")],
                body: Array(("{\"email\":\"" + String(repeating: "x", count: 70_000) + "\"}").utf8)
            )
            expect(big, 413, "payload_too_large")
            let wrongMethod = try harness.get("/auth/login")
            expect(wrongMethod, 405, "method_not_allowed")
            #expect(wrongMethod.header("Allow") == "POST")
            expect(try harness.get("/auth/nothing-here"), 404, "not_found")
            // Nothing of the refused registrations was stored.
            #expect(try harness.store.user(email: "b@example.com") == nil)
        }
    }

    @Test("an unknown email and a wrong password get byte-identical 401s", arguments: Backend.allCases)
    func invalidCredentials(_ backend: Backend) async throws {
        try await Harness.with(backend) { harness in
            _ = try harness.register("ann@example.com")
            let wrong = try harness.login("ann@example.com", password: "wrong password")
            let unknown = try harness.login("nobody@example.com", password: "wrong password")
            #expect(wrong.status == 401 && unknown.status == 401)
            #expect(wrong.json?["error"] as? String == "invalid_credentials")
            #expect(wrong.body == unknown.body)
        }
    }

    @Test("login limits per email and per client address, through a trusted proxy", arguments: Backend.allCases)
    func loginLimits(_ backend: Backend) async throws {
        var options = Harness.Options()
        options.issuer = "login_limit: { failures: 3, window: 15m }"
        options.top = "trusted_proxies: [127.0.0.0/8]"
        try await Harness.with(backend, options: options) { harness in
            _ = try harness.register("ann@example.com")
            // Each attempt from its own address, so that only the email's counter matters.
            var address = 0
            func attempt(_ password: String) throws -> RawHTTPClient.Response {
                address += 1
                return try harness.login("ann@example.com", password: password, from: "198.51.100.\(address)")
            }
            #expect(try attempt("wrong password").status == 401)
            #expect(try attempt("wrong password").status == 401)
            #expect(try attempt("correct horse battery").status == 200)  // resets the email's counter
            #expect(try attempt("wrong password").status == 401)
            #expect(try attempt("wrong password").status == 401)
            #expect(try attempt("correct horse battery").status == 200)
            #expect(try attempt("wrong password").status == 401)
            #expect(try attempt("wrong password").status == 401)
            #expect(try attempt("wrong password").status == 401)
            // Three failures in the window: even the right password is refused now.
            let limited = try attempt("correct horse battery")
            #expect(limited.status == 429)
            #expect(limited.json?["error"] as? String == "rate_limited")
            let retryAfter = try #require(limited.header("Retry-After").flatMap(Int.init))
            #expect(retryAfter > 800 && retryAfter <= 900)

            // One address trying several emails.
            for email in ["a@example.com", "b@example.com", "c@example.com"] {
                #expect(try harness.login(email, password: "wrong password", from: "203.0.113.9").status == 401)
            }
            #expect(try harness.login("d@example.com", password: "wrong password", from: "203.0.113.9").status == 429)
            #expect(try harness.login("d@example.com", password: "wrong password", from: "203.0.113.10").status == 401)
        }
    }

    @Test("wrong current passwords at /auth/password count towards the email's login limit", arguments: Backend.allCases)
    func passwordChangeLimits(_ backend: Backend) async throws {
        var options = Harness.Options()
        options.issuer = "login_limit: { failures: 3, window: 15m }"
        try await Harness.with(backend, options: options) { harness in
            let ann = try harness.register("ann@example.com")
            func change(current: String) throws -> RawHTTPClient.Response {
                try harness.post("/auth/password", ["current_password": current, "new_password": "another good passphrase"], bearer: ann.access)
            }
            // A success resets the count, as a login does.
            #expect(try change(current: "wrong password").status == 401)
            #expect(try change(current: "wrong password").status == 401)
            #expect(try change(current: "correct horse battery").status == 204)
            for _ in 0..<3 { #expect(try change(current: "wrong password").status == 401) }
            // Three failures in the window: the password change and the login are both refused.
            let limited = try change(current: "another good passphrase")
            #expect(limited.status == 429 && limited.json?["error"] as? String == "rate_limited")
            #expect(limited.header("Retry-After").flatMap(Int.init).map { $0 > 800 && $0 <= 900 } == true)
            #expect(try harness.login("ann@example.com", password: "another good passphrase").status == 429)
        }
    }

    @Test("a login re-hashes a password stored with other Argon2 parameters", arguments: Backend.allCases)
    func rehash(_ backend: Backend) async throws {
        let database = try backend.makeURL()
        try await Harness.with(backend, database: database) { harness in
            _ = try harness.register("ann@example.com")
            #expect(try harness.store.credentials(email: "ann@example.com")?.passwordHash.contains("m=1024,t=1,p=1") == true)
        }
        var options = Harness.Options()
        options.argon2 = "{ memory_kib: 2048, iterations: 2, parallelism: 1 }"
        try await Harness.with(backend, database: database, options: options) { harness in
            #expect(try harness.login("ann@example.com", password: "wrong password").status == 401)
            #expect(try harness.store.credentials(email: "ann@example.com")?.passwordHash.contains("m=1024,t=1,p=1") == true)
            #expect(try harness.login("ann@example.com").status == 200)
            let stored = try #require(try harness.store.credentials(email: "ann@example.com")?.passwordHash)
            #expect(stored.hasPrefix("$argon2id$v=19$m=2048,t=2,p=1$"))
            #expect(try harness.login("ann@example.com").status == 200)
        }
    }
}
