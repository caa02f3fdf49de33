// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatehouseTestSupport
import Testing

/// `issuer.cookies: true`, driven by a real client's cookie jar (curl treats 127.0.0.1 as a
/// secure origin, so it stores and sends the `Secure` cookies over plain http).
@Suite("Browser mode")
struct BrowserModeTests {
    static var browser: Harness.Options {
        var options = Harness.Options()
        options.issuer = """
            cookies: true
            allowed_origins: [https://app.example.com]
            """
        return options
    }

    /// Runs curl with a cookie jar; returns the status and the body.
    static func curl(_ jar: String, _ method: String, _ url: String, _ extra: [String] = []) throws -> (status: Int, body: String) {
        try Curl.run(["-b", jar, "-c", jar, "-X", method, url] + extra)
    }

    static func accessToken(_ body: String) -> String? {
        ((try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any])?["access_token"] as? String
    }

    @Test("register sets HttpOnly, Secure, SameSite=Strict cookies; the refresh cookie only for /auth")
    func cookieAttributes() async throws {
        try await Harness.with(.sqlite, options: Self.browser) { harness in
            let registered = try harness.post("/auth/register", ["email": "ann@example.com", "password": "correct horse battery"])
            #expect(registered.status == 201)
            let cookies = registered.headers("Set-Cookie")
            #expect(cookies.count == 2)
            let access = try #require(cookies.first { $0.hasPrefix("access_token=") })
            let refresh = try #require(cookies.first { $0.hasPrefix("refresh_token=") })
            #expect(access.hasSuffix("; Path=/; Max-Age=1800; HttpOnly; Secure; SameSite=Strict"))
            #expect(refresh.hasSuffix("; Path=/auth; Max-Age=604800; HttpOnly; Secure; SameSite=Strict"))
            #expect(access.contains(registered.json?["access_token"] as? String ?? "-"))

            // Logout from the refresh cookie (no body) clears both cookies.
            let refreshToken = try #require(registered.json?["refresh_token"] as? String)
            let logout = try RawHTTPClient.request(
                port: harness.port, "POST", "/auth/logout", headers: [("Cookie", "refresh_token=\(refreshToken)"), ("X-Requested-With", "fetch")]
            )
            #expect(logout.status == 204)
            #expect(Set(logout.headers("Set-Cookie")) == [
                "access_token=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict",
                "refresh_token=; Path=/auth; Max-Age=0; HttpOnly; Secure; SameSite=Strict",
            ])
        }
    }

    @Test("the whole flow through curl's cookie jar: gateway, CSRF refusals, refresh and logout from the cookie")
    func flow() async throws {
        try await Harness.with(.sqlite, options: Self.browser) { harness in
            let base = "http://127.0.0.1:\(harness.port)"
            let jar = NSTemporaryDirectory() + "gatehouse-jar-\(UUID().uuidString)"
            let json = ["-H", "Content-Type: application/json"]
            let fromApp = ["-H", "Origin: https://app.example.com"]

            let registered = try Self.curl(jar, "POST", base + "/auth/register", json + ["-d", #"{"email":"ann@example.com","password":"correct horse battery"}"#])
            #expect(registered.status == 201)
            let firstAccess = try #require(Self.accessToken(registered.body))

            // The gateway reads the access cookie: safe methods need nothing more.
            let get = try Self.curl(jar, "GET", base + "/echo/orders")
            #expect(get.status == 200 && get.body.contains("\"x-user-id\""))
            #expect(try Self.curl(jar, "GET", base + "/users/me").status == 200)

            // Cookie-authenticated unsafe methods: refused without proof of origin.
            let forged = try Self.curl(jar, "POST", base + "/echo/orders", ["-d", "x"])
            #expect(forged.status == 403 && forged.body.contains("invalid_origin"))
            #expect(try Self.curl(jar, "DELETE", base + "/echo/orders", ["-H", "Origin: https://evil.example"]).status == 403)
            #expect(try Self.curl(jar, "POST", base + "/echo/orders", fromApp + ["-d", "x"]).status == 200)
            #expect(try Self.curl(jar, "PUT", base + "/echo/orders", ["-H", "X-Requested-With: fetch", "-d", "x"]).status == 200)

            // Refresh from the cookie, empty body: CSRF applies, then the jar gets the new pair.
            #expect(try Self.curl(jar, "POST", base + "/auth/refresh").status == 403)
            let refreshed = try Self.curl(jar, "POST", base + "/auth/refresh", fromApp)
            #expect(refreshed.status == 200)
            let jarText = try String(contentsOfFile: jar, encoding: .utf8)
            let newAccess = try #require(Self.accessToken(refreshed.body))
            #expect(jarText.contains(newAccess) && !jarText.contains(firstAccess))
            #expect(try Self.curl(jar, "GET", base + "/echo/orders").status == 200)

            // Logout from the cookie: the session's tokens stop working everywhere. (curl 7.88 applies
            // only the last of several deleting Set-Cookie headers, so its jar may keep the access
            // cookie; the headers themselves are checked in the test above.)
            #expect(try Self.curl(jar, "POST", base + "/auth/logout", fromApp).status == 204)
            #expect(try !String(contentsOfFile: jar, encoding: .utf8).contains("refresh_token"))
            let after = try Self.curl(jar, "GET", base + "/echo/orders")
            #expect(after.status == 401)
            #expect(try harness.get("/echo/orders", bearer: newAccess).status == 401)
            #expect(try Self.curl(jar, "POST", base + "/auth/refresh", fromApp).status == 400, "no refresh cookie is left")
        }
    }
}
