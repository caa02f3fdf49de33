// SPDX-License-Identifier: Apache-2.0
import GatehouseConfig
import GatehouseCrypto
@testable import GatehouseGateway
import GatehouseHTTP
import GatehouseJOSE
import NIOHTTP1
import Testing

@Suite("Request paths")
struct RequestPathTests {
    @Test("normalisation: dot segments, escaped dots and unreserved characters, double slashes")
    func normalisation() throws {
        let cases: [(String, String, String?)] = [
            ("/", "/", nil), ("/api/orders/1?x=1&y", "/api/orders/1", "x=1&y"), ("/a//b///c", "/a/b/c", nil),
            ("/a/./b/../c", "/a/c", nil), ("/a/%2e%2E/b", "/b", nil), ("/%61pi/", "/api/", nil),
            ("/a/b/..", "/a/", nil), ("/a/b/.", "/a/b/", nil), ("/a%2Fb", "/a%2Fb", nil), ("/a%2fb", "/a%2Fb", nil),
            ("/a?", "/a", ""), ("http://example.com/p?q", "/p", "q"), ("https://example.com", "/", nil),
            ("/caf%C3%A9", "/caf%C3%A9", nil), ("/~user/%7Euser", "/~user/~user", nil),
        ]
        for (target, path, query) in cases {
            let parsed = try RequestPath(target: target)
            #expect(parsed.path == path && parsed.query == query, "\(target)")
        }
    }

    @Test("climbing above / is refused; so are bad escapes, fragments and non-paths")
    func refusals() {
        for target in ["/..", "/a/../..", "/%2e%2e/x", "/a/%2E%2E/%2e%2e/b"] {
            #expect(throws: RequestPath.Failure.aboveRoot, "\(target)") { try RequestPath(target: target) }
        }
        for target in ["*", "api", "/a%zz", "/a%4", "/a#f", "/a b", "/a\u{01}", ""] {
            #expect(throws: RequestPath.Failure.invalid, "\(target)") { try RequestPath(target: target) }
        }
    }

    @Test("strip_prefix and the upstream base path")
    func forwardedTarget() throws {
        #expect(try RequestPath(target: "/p/a/b?x=1").forwardedTarget(stripping: "/p/", basePath: "") == "/a/b?x=1")
        #expect(try RequestPath(target: "/p/").forwardedTarget(stripping: "/p/", basePath: "") == "/")
        #expect(try RequestPath(target: "/p/a").forwardedTarget(stripping: nil, basePath: "/base") == "/base/p/a")
    }

    @Test("hazards: ; and %3B, %2F, %5C and \\ in the path, either hex case, never the query; `..;` is a dot segment")
    func hazards() throws {
        let cases: [(String, RequestPath.Hazards)] = [
            ("/a/b", []), ("/a?x=;%2F%5C", []), ("/a%25b", []), ("/a;b", .semicolon), ("/a%3bb", .semicolon), ("/a%3Bb", .semicolon),
            ("/a%2fb", .encodedSlash), ("/a%2Fb", .encodedSlash), ("/a%5cb", .backslash), ("/a\\b", .backslash),
            ("/a;x/%2F", [.semicolon, .encodedSlash]), ("http://h/a;b?q", .semicolon),
        ]
        for (target, hazards) in cases { #expect(try RequestPath(target: target).hazards == hazards, "\(target)") }
        #expect(try RequestPath(target: "/pub/..;/admin").path == "/admin")
        #expect(try RequestPath(target: "/pub/..%3Bx/admin").path == "/admin")
        #expect(try RequestPath(target: "/pub/.;x/a").path == "/pub/a")
        #expect(try RequestPath(target: "/pub/a;jsessionid=1").path == "/pub/a;jsessionid=1")
        #expect(throws: RequestPath.Failure.aboveRoot) { try RequestPath(target: "/..;/x") }
        let both = try RequestPath(target: "/a;b/%2F")
        #expect(both.refusal(keepSemicolons: false, keepEncodedSlashes: true) != nil)
        #expect(both.refusal(keepSemicolons: true, keepEncodedSlashes: false) != nil)
        #expect(both.refusal(keepSemicolons: true, keepEncodedSlashes: true) == nil)
        #expect(try RequestPath(target: "/a%5C").refusal(keepSemicolons: true, keepEncodedSlashes: true) != nil, "no route keeps a backslash")
        #expect(try RequestPath(target: "/app/admin;x/users").withoutParameters == "/app/admin/users")
        #expect(try RequestPath(target: "/app/;x/admin%3By/users/").withoutParameters == "/app/admin/users/")
        #expect(try RequestPath(target: "/app/a/b").withoutParameters == "/app/a/b")
    }
}

@Suite("Credentials, identity and header rewriting")
struct HeaderTests {
    @Test("bearer from Authorization (any scheme casing) or the configured cookie")
    func credentials() {
        #expect(Credentials(headers: ["Authorization": "Bearer abc.def.ghi"], cookie: nil) == .bearer("abc.def.ghi"))
        #expect(Credentials(headers: ["authorization": "bEaReR abc"], cookie: nil) == .bearer("abc"))
        #expect(Credentials(headers: ["Authorization": "Basic dXNlcjpwdw=="], cookie: nil) == .none)
        #expect(Credentials(headers: ["Authorization": "Bearer"], cookie: nil) == .malformed)
        #expect(Credentials(headers: ["Authorization": "Bearer a b"], cookie: nil) == .malformed)
        #expect(Credentials(headers: ["Authorization": "Bearer a=b"], cookie: nil) == .malformed)
        #expect(Credentials(headers: ["Authorization": "Bearer   aZ9-._~+/=="], cookie: nil) == .bearer("aZ9-._~+/=="))
        #expect(Credentials(headers: ["Authorization": "Bearerabc"], cookie: nil) == .none)
        #expect(Credentials(headers: ["Authorization": "Bearer =="], cookie: nil) == .malformed)
        for byte in [0x21, 0x2A, 0x2C, 0x3A, 0x40, 0x5B, 0x5E, 0x60, 0x7B, 0x7D, 0x7F] as [UInt8] {
            #expect(Credentials(headers: ["Authorization": "Bearer a" + String(UnicodeScalar(byte))], cookie: nil) == .malformed)
        }
        #expect(Credentials(headers: ["Authorization": "Bearer caf\u{E9}"], cookie: nil) == .malformed)
        #expect(Credentials(headers: HTTPHeaders([("Authorization", "Bearer a"), ("authorization", "Bearer b")]), cookie: nil) == .ambiguous)
        #expect(Credentials(headers: ["Cookie": "x=1; access_token=tok.en.sig; y=2"], cookie: "access_token") == .cookie("tok.en.sig"))
        #expect(Credentials(headers: ["Cookie": "access_token=tok"], cookie: nil) == .none)
        #expect(Credentials(headers: HTTPHeaders([("Authorization", "Bearer h"), ("Cookie", "access_token=c")]), cookie: "access_token") == .bearer("h"))
    }

    @Test("identity from claims: user_id before sub, role before roles, scopes split")
    func identity() throws {
        let claims = try claimSet(#"{"sub":"auth0|abc","user_id":42,"roles":["editor","viewer"],"scope":"profile:read https://api.test/write"}"#)
        let identity = try Identity(claims: claims)
        #expect(identity == Identity(userID: "42", role: "editor", roles: ["editor", "viewer"], scopes: ["profile:read", "https://api.test/write"]))
        #expect(try Identity(claims: claimSet(#"{"sub":"auth0|abc","role":"admin"}"#)).userID == "auth0|abc")
        #expect(identity.satisfies(anyRole: ["admin", "viewer"], allScopes: ["profile:read"]))
        #expect(!identity.satisfies(anyRole: ["admin"], allScopes: []))
        #expect(!identity.satisfies(anyRole: [], allScopes: ["profile:read", "users:write"]))
    }

    @Test("header injection in any identity claim is a bad_claim")
    func unsafeClaims() throws {
        let bad = [
            #"{"sub":"42\r\nX-Admin: yes"}"#, #"{"sub":"a,b"}"#, #"{"sub":""}"#, #"{"sub":"é"}"#, #"{"sub":"a b"}"#,
            #"{"sub":"1","role":"admin\n"}"#, #"{"sub":"1","roles":["ok","a,b"]}"#, #"{"sub":"1","roles":"admin"}"#,
            #"{"sub":"1","scope":"a\tb"}"#, #"{"sub":"1","scope":"a,b"}"#, #"{"user_id":1.5}"#, #"{"user_id":true}"#,
        ]
        for json in bad {
            #expect(throws: JOSEError(.badClaim), "\(json)") { try Identity(claims: claimSet(json)) }
        }
        #expect(throws: JOSEError(.missingClaim)) { try Identity(claims: claimSet(#"{"role":"x"}"#)) }
    }

    @Test("rewriting strips hop-by-hop and client identity headers (X_User_Id too), sets forwarding headers")
    func rewrite() {
        var headers = HTTPHeaders([
            ("Host", "gw.example.com"), ("Connection", "keep-alive, X-Secret"), ("X-Secret", "drop me"), ("Keep-Alive", "5"),
            ("TE", "trailers"), ("Upgrade", "h2c"), ("Proxy-Authorization", "Basic x"), ("X-User-Id", "forged"),
            ("x-user-role", "admin"), ("X_User_Roles", "admin"), ("X-USER-SCOPES", "all"), ("X-Forwarded-For", "10.0.0.1"),
            ("Authorization", "Bearer t"), ("Accept", "*/*"), ("X-Userland", "kept"),
        ])
        let identity = Identity(userID: "42", role: "editor", roles: ["editor"], scopes: ["a", "b"])
        let context = ForwardingContext(clientAddress: "127.0.0.1", scheme: "http", upstreamAuthority: "127.0.0.1:9000", preserveHost: false, forwardToken: true)
        let id = HeaderRewriter.rewriteRequest(&headers, identity: identity, context: context)
        #expect(headers["x-user-id"] == ["42"] && headers["x-user-role"] == ["editor"])
        #expect(headers["x-user-roles"] == ["editor"] && headers["x-user-scopes"] == ["a,b"])
        #expect(!headers.contains(name: "X_User_Roles") && headers["x-user-roles"].count == 1)
        for name in ["connection", "x-secret", "keep-alive", "te", "upgrade", "proxy-authorization"] {
            #expect(!headers.contains(name: name), "\(name)")
        }
        #expect(headers["x-forwarded-for"] == ["10.0.0.1, 127.0.0.1"] && headers["x-forwarded-proto"] == ["http"])
        #expect(headers["x-forwarded-host"] == ["gw.example.com"] && headers["host"] == ["127.0.0.1:9000"])
        #expect(headers["x-request-id"] == [id] && id.count == 32)
        #expect(headers["authorization"] == ["Bearer t"] && headers["accept"] == ["*/*"] && headers["x-userland"] == ["kept"])

        var anonymous = HTTPHeaders([("Host", "h"), ("X-User-Id", "forged"), ("X-Request-Id", "abc-123"), ("Authorization", "Bearer t")])
        let keep = ForwardingContext(clientAddress: "::1", scheme: "https", upstreamAuthority: "u:1", preserveHost: true, forwardToken: false)
        #expect(HeaderRewriter.rewriteRequest(&anonymous, identity: nil, context: keep) == "abc-123")
        #expect(!anonymous.contains(name: "x-user-id") && !anonymous.contains(name: "authorization") && anonymous["host"] == ["h"])
    }

    @Test("the access cookie is cut out of Cookie where the token is not forwarded; the other cookies stay in order")
    func accessCookie() {
        #expect(HeaderRewriter.removingCookie(named: "at", from: "a=1; at=x.y.z; b=2") == "a=1; b=2")
        #expect(HeaderRewriter.removingCookie(named: "at", from: "at=x") == "")
        #expect(HeaderRewriter.removingCookie(named: "at", from: "at_x=1;at=2;flag") == "at_x=1; flag")
        var headers = HTTPHeaders([("Cookie", "a=1; at=t"), ("Cookie", "at=t")])
        let context = ForwardingContext(
            clientAddress: "::1", scheme: "https", upstreamAuthority: "u:1", preserveHost: false, forwardToken: false, accessCookie: "at"
        )
        HeaderRewriter.rewriteRequest(&headers, identity: nil, context: context)
        #expect(headers["cookie"] == ["a=1"])
    }

    @Test("client forwarding headers pass only from a trusted peer")
    func clientForwarding() {
        let sent = HTTPHeaders([
            ("Forwarded", "for=1.2.3.4"), ("X-Real-IP", "1.2.3.4"), ("X-Forwarded-Port", "1"), ("X-Forwarded-Prefix", "/p"),
            ("X-Original-URL", "/admin"), ("X-Rewrite-URL", "/admin"),
        ])
        for trusted in [false, true] {
            var headers = sent
            let context = ForwardingContext(
                clientAddress: "::1", scheme: "https", upstreamAuthority: "u:1", preserveHost: false, forwardToken: true, trustedPeer: trusted
            )
            HeaderRewriter.rewriteRequest(&headers, identity: nil, context: context)
            for (name, value) in sent { #expect(headers[name] == (trusted ? [value] : []), "\(name), trusted: \(trusted)") }
        }
    }
}

/// A real ES256 key and the verifier and authorizer built on it.
struct GatewayFixture {
    let key: EVPKey
    let now: Double = 1_800_000_000
    let authorizer: RequestAuthorizer

    init(routes: [RouteConfig], cookie: String? = nil, allowedOrigins: [String] = []) throws {
        self.key = try EVPKey.generate(.ec(.p256))
        let policy = VerificationPolicy(algorithms: [.es256], issuer: "https://auth.test", audience: "api")
        let keys = try KeySet([ConfiguredKey(keyID: "k1", material: .asymmetric(self.key))], allowed: [.es256])
        self.authorizer = RequestAuthorizer(
            routes: RouteTable(routes), providers: ProviderSet([Verifier(policy: policy, keys: keys)]), cookie: cookie,
            csrf: CSRFCheck(allowedOrigins: allowedOrigins)
        )
    }

    func token(_ extra: KeyValuePairs<String, JSONValue> = [:], expiresIn: Double = 600) throws -> String {
        var claims = JSONObject([
            "iss": .string("https://auth.test"), "aud": .string("api"), "sub": .string("7"), "exp": .number(self.now + expiresIn),
            "roles": .array([.string("viewer")]), "scope": .string("content:read"),
        ])
        for (name, value) in extra { claims[name] = value }
        return try Signer(material: .asymmetric(self.key), algorithm: .es256, keyID: "k1").sign(claims, type: "at+jwt")
    }

    func decide(_ uri: String, method: HTTPMethod = .GET, headers: HTTPHeaders = [:]) -> RequestAuthorizer.Decision {
        self.authorizer.decide(HTTPRequestHead(version: .http1_1, method: method, uri: uri, headers: headers), now: self.now)
    }
}

func route(_ prefix: String, auth: RouteConfig.Auth = .required, anyRole: [String] = [], allScopes: [String] = [], preflight: Bool = false) -> RouteConfig {
    RouteConfig(
        prefix: prefix, upstream: UpstreamURL("http://127.0.0.1:9")!, auth: auth, anyRole: anyRole, allScopes: allScopes,
        allowPreflight: preflight
    )
}

/// The claims of a really signed and verified token whose payload is `{"exp":…,` + the rest of
/// `json` (claim sets reach `Identity` only through the verifier).
func claimSet(_ json: String) throws -> ClaimSet {
    let key = try EVPKey.generate(.ec(.p256))
    let signer = try Signer(material: .asymmetric(key), algorithm: .es256, keyID: "t")
    let payload = #"{"exp":4102444800,"# + json.dropFirst()
    let token = try signer.sign(header: JSONObject(["alg": .string("ES256"), "kid": .string("t")]), payload: Array(payload.utf8))
    let verifier = Verifier(
        policy: VerificationPolicy(algorithms: [.es256], issuer: nil, audience: nil, type: .any),
        keys: try KeySet([ConfiguredKey(keyID: "t", material: .asymmetric(key))], allowed: [.es256])
    )
    return try verifier.verify(token, now: 1_800_000_000).claims
}

@Suite("Request decisions")
struct RequestAuthorizerTests {
    let fixture: GatewayFixture

    init() throws {
        self.fixture = try GatewayFixture(routes: [
            route("/"), route("/api/"), route("/api/admin/", anyRole: ["admin"]), route("/api/read/", allScopes: ["content:read"]),
            route("/public/", auth: .public), route("/opt/", auth: .optional), route("/optrole/", auth: .optional, anyRole: ["viewer"]),
            route("/cors/", preflight: true),
        ], cookie: "access_token")
    }

    private func error(_ decision: RequestAuthorizer.Decision) -> HTTPError? {
        if case .respond(let error, _) = decision { return error }
        return nil
    }

    private func forwarded(_ decision: RequestAuthorizer.Decision) -> (RouteConfig, Identity?)? {
        if case .forward(let route, _, let identity) = decision { return (route, identity) }
        return nil
    }

    private func bearer(_ token: String) -> HTTPHeaders { ["Authorization": "Bearer \(token)"] }

    @Test("forward-auth with the access cookie: the method asked about, the check's own or X-Forwarded-Method, must pass the CSRF check")
    func forwardAuthCookieCSRF() throws {
        let token = try self.fixture.token()
        func verify(_ method: HTTPMethod, _ extra: [(String, String)] = [], cookie: Bool = true) -> RequestAuthorizer.Decision {
            var headers: HTTPHeaders = cookie ? ["Cookie": "access_token=\(token)"] : self.bearer(token)
            headers.add(contentsOf: extra)
            return self.fixture.decide("/auth/verify", method: method, headers: headers)
        }
        func verified(_ decision: RequestAuthorizer.Decision) -> Bool {
            if case .verified(let identity) = decision { return identity.userID == "7" }
            return false
        }
        #expect(verified(verify(.GET)))
        #expect(verified(verify(.HEAD, [("X-Forwarded-Method", "OPTIONS")])))
        // Envoy sends the original method; Traefik (and nginx, configured so) X-Forwarded-Method.
        #expect(self.error(verify(.POST)) == CSRFCheck.refusal)
        #expect(self.error(verify(.GET, [("X-Forwarded-Method", "DELETE")])) == CSRFCheck.refusal)
        #expect(self.error(verify(.GET, [("X-Forwarded-Method", "GET"), ("X-Forwarded-Method", "PATCH")])) == CSRFCheck.refusal)
        // Neither can make the other look safe.
        #expect(self.error(verify(.POST, [("X-Forwarded-Method", "GET")])) == CSRFCheck.refusal)
        #expect(self.error(verify(.GET, [("X-Forwarded-Method", "get")])) == CSRFCheck.refusal, "methods are case-sensitive")
        // Proof of origin admits; bearer tokens are not subject to the check.
        #expect(verified(verify(.GET, [("X-Forwarded-Method", "DELETE"), ("X-Requested-With", "fetch")])))
        #expect(verified(verify(.POST, [("X-Forwarded-Method", "PUT")], cookie: false)))
    }

    @Test("longest prefix wins; the normalised path is what is matched")
    func routing() throws {
        let token = try self.fixture.token()
        #expect(self.forwarded(self.fixture.decide("/api/x", headers: self.bearer(token)))?.0.prefix == "/api/")
        #expect(self.forwarded(self.fixture.decide("/other", headers: self.bearer(token)))?.0.prefix == "/")
        #expect(self.error(self.fixture.decide("/%61pi/admin/x", headers: self.bearer(token))) == .insufficientScope)
        #expect(self.error(self.fixture.decide("/public/../api/admin/", headers: self.bearer(token))) == .insufficientScope)
        #expect(self.error(self.fixture.decide("/../x"))?.status == .badRequest)
        let noRoot = try GatewayFixture(routes: [route("/api/")])
        #expect(self.error(noRoot.decide("/nothing")) == .notFound)
    }

    @Test("required: no token 401 with a bare challenge; a bad token 401 with its reason; valid forwards with identity")
    func required() throws {
        #expect(self.error(self.fixture.decide("/api/x")) == .missingToken)
        #expect(HTTPError.missingToken.challenge == "Bearer")
        #expect(self.error(self.fixture.decide("/api/x", headers: ["Authorization": "Basic dTpw"])) == .missingToken)
        let expired = try self.fixture.token(expiresIn: -3600)
        let refused = self.error(self.fixture.decide("/api/x", headers: self.bearer(expired)))
        #expect(refused == .invalidToken(.expired))
        #expect(refused?.challenge == "Bearer error=\"invalid_token\", error_description=\"expired\"")
        #expect(self.error(self.fixture.decide("/api/x", headers: self.bearer("a.b.c"))) == .invalidToken(.malformed))
        #expect(self.error(self.fixture.decide("/api/x", headers: ["Authorization": "Bearer"])) == .invalidToken(.malformed))
        let injected = try self.fixture.token(["sub": .string("1\r\nX-Admin: 1")])
        #expect(self.error(self.fixture.decide("/api/x", headers: self.bearer(injected))) == .invalidToken(.badClaim))
        var identity = self.forwarded(self.fixture.decide("/api/x", headers: self.bearer(try self.fixture.token())))?.1
        // Valid until exp plus the default 30 s leeway (a tunnel opened with it ends then).
        #expect(identity?.validUntil == self.fixture.now + 600 + 30)
        identity?.validUntil = nil
        #expect(identity == Identity(userID: "7", role: "viewer", roles: ["viewer"], scopes: ["content:read"]))
    }

    @Test("two Authorization headers are a 400, never a guess")
    func ambiguous() throws {
        let token = try self.fixture.token()
        let headers = HTTPHeaders([("Authorization", "Bearer \(token)"), ("Authorization", "Bearer \(token)")])
        #expect(self.error(self.fixture.decide("/api/x", headers: headers))?.code == "invalid_request")
    }

    @Test("roles and scopes: 403 insufficient_scope when missing")
    func rules() throws {
        #expect(self.error(self.fixture.decide("/api/admin/x", headers: self.bearer(try self.fixture.token()))) == .insufficientScope)
        let admin = try self.fixture.token(["roles": .array([.string("viewer"), .string("admin")])])
        #expect(self.forwarded(self.fixture.decide("/api/admin/x", headers: self.bearer(admin))) != nil)
        #expect(self.forwarded(self.fixture.decide("/api/read/x", headers: self.bearer(try self.fixture.token()))) != nil)
        let noScope = try self.fixture.token(["scope": .string("profile:read")])
        #expect(self.error(self.fixture.decide("/api/read/x", headers: self.bearer(noScope))) == .insufficientScope)
    }

    @Test("public ignores tokens; optional is anonymous without one but refuses a bad one; rules make optional need a token")
    func publicAndOptional() throws {
        let expired = try self.fixture.token(expiresIn: -3600)
        let publicDecision = self.forwarded(self.fixture.decide("/public/x", headers: self.bearer(expired)))
        #expect(publicDecision != nil && publicDecision?.1 == nil)
        #expect(self.forwarded(self.fixture.decide("/opt/x")).map { $0.1 == nil } == true)
        #expect(self.error(self.fixture.decide("/opt/x", headers: self.bearer(expired))) == .invalidToken(.expired))
        #expect(self.forwarded(self.fixture.decide("/opt/x", headers: self.bearer(try self.fixture.token())))?.1?.userID == "7")
        #expect(self.error(self.fixture.decide("/optrole/x")) == .missingToken)
    }

    @Test("CORS preflight passes unauthenticated only where the route allows it")
    func preflight() {
        let headers = HTTPHeaders([("Origin", "https://app.test"), ("Access-Control-Request-Method", "POST")])
        #expect(self.forwarded(self.fixture.decide("/cors/x", method: .OPTIONS, headers: headers)) != nil)
        #expect(self.error(self.fixture.decide("/api/x", method: .OPTIONS, headers: headers)) == .missingToken)
        #expect(self.error(self.fixture.decide("/cors/x", method: .OPTIONS, headers: ["Origin": "https://app.test"])) == .missingToken)
    }

    @Test("the access-token cookie is read when there is no Authorization header")
    func cookie() throws {
        let token = try self.fixture.token()
        #expect(self.forwarded(self.fixture.decide("/api/x", headers: ["Cookie": "access_token=\(token)"]))?.1?.userID == "7")
    }

    @Test("several providers: the token's iss picks one; an unknown iss is bad_issuer")
    func providers() throws {
        let other = try EVPKey.generate(.ec(.p256))
        let mine = try EVPKey.generate(.ec(.p256))
        func verifier(_ issuer: String, _ key: EVPKey) throws -> Verifier {
            Verifier(
                policy: VerificationPolicy(algorithms: [.es256], issuer: issuer, audience: nil, type: .any),
                keys: try KeySet([ConfiguredKey(keyID: "k", material: .asymmetric(key))], allowed: [.es256])
            )
        }
        let set = ProviderSet([try verifier("https://a", mine), try verifier("https://b", other)])
        func token(_ issuer: String, _ key: EVPKey) throws -> String {
            try Signer(material: .asymmetric(key), algorithm: .es256, keyID: "k").sign(
                JSONObject(["iss": .string(issuer), "sub": .string("1"), "exp": .number(2e9)]), type: nil)
        }
        #expect(try set.verify(token("https://a", mine), now: 1.8e9).claims.issuer == "https://a")
        #expect(try set.verify(token("https://b", other), now: 1.8e9).claims.issuer == "https://b")
        #expect(throws: JOSEError(.badSignature)) { try set.verify(token("https://b", mine), now: 1.8e9) }
        #expect(throws: JOSEError(.badIssuer)) { try set.verify(token("https://c", mine), now: 1.8e9) }
    }
}

@Suite("The verified-token cache")
struct TokenCacheTests {
    @Test("cached and uncached give the same verdicts; a hit re-checks expiry and the route's own rules")
    func sameVerdicts() throws {
        let fixture = try GatewayFixture(routes: [route("/api/"), route("/admin/", anyRole: ["admin"])])
        let cache = TokenCache(capacity: 16)
        let token = try fixture.token(expiresIn: 60)
        let head = { (uri: String, time: Double) in
            fixture.authorizer.decide(HTTPRequestHead(version: .http1_1, method: .GET, uri: uri, headers: ["Authorization": "Bearer \(token)"]), now: time, cache: cache)
        }
        guard case .forward(_, _, let first) = head("/api/x", fixture.now) else {
            Issue.record("first request refused")
            return
        }
        #expect(cache.misses == 1 && cache.hits == 0 && cache.count == 1)
        guard case .forward(_, _, let second) = head("/api/y", fixture.now + 1) else {
            Issue.record("cached request refused")
            return
        }
        #expect(cache.hits == 1 && first == second)
        // The cached identity does not open a route whose rules it fails: the verdict never crosses routes.
        guard case .respond(let forbidden, _) = head("/admin/x", fixture.now + 2) else {
            Issue.record("cached token crossed into a route it may not use")
            return
        }
        #expect(forbidden == .insufficientScope && cache.hits == 2)
        // Past exp + leeway (30 s), the cached token is refused exactly as the verifier would.
        guard case .respond(let expired, _) = head("/api/x", fixture.now + 60 + 30) else {
            Issue.record("an expired cached token was accepted")
            return
        }
        #expect(expired == .invalidToken(.expired))
        let uncached = fixture.authorizer.decide(
            HTTPRequestHead(version: .http1_1, method: .GET, uri: "/api/x", headers: ["Authorization": "Bearer \(token)"]), now: fixture.now + 90)
        guard case .respond(let uncachedExpired, _) = uncached else {
            Issue.record("uncached verdict differs")
            return
        }
        #expect(uncachedExpired == expired)
    }

    @Test("refused tokens are not cached; the ring evicts the oldest; a revoked session is refused on a hit and on a miss")
    func bookkeeping() throws {
        let fixture = try GatewayFixture(routes: [route("/api/")])
        let cache = TokenCache(capacity: 2)
        func decide(_ token: String) -> RequestAuthorizer.Decision {
            fixture.authorizer.decide(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/api/x", headers: ["Authorization": "Bearer \(token)"]), now: fixture.now, cache: cache)
        }
        _ = decide(try fixture.token(expiresIn: -3600))
        _ = decide(try fixture.token(["sub": .string("a b")]))
        #expect(cache.count == 0)
        let tokens = try (0..<3).map { try fixture.token(["sid": .string("s\($0)"), "jti": .string("j\($0)")]) }
        for token in tokens { _ = decide(token) }
        #expect(cache.count == 2)
        _ = decide(tokens[0])
        #expect(cache.hits == 0, "the oldest was evicted")
        #expect(cache.misses == 6, "two refused, three new, one evicted")

        let revoked = RevocationList(retention: 30)
        revoked.add([RevocationBoard.Entry(sessionID: "s2", expiresAt: fixture.now + 60)])
        for cached in [cache, nil] {
            let decision = fixture.authorizer.decide(
                HTTPRequestHead(version: .http1_1, method: .GET, uri: "/api/x", headers: ["Authorization": "Bearer \(tokens[2])"]),
                now: fixture.now, cache: cached, revoked: revoked
            )
            guard case .respond(let error, _) = decision else {
                Issue.record("a revoked session's token was accepted (cache \(cached == nil ? "off" : "on"))")
                continue
            }
            #expect(error == .invalidToken(.revoked))
        }
        #expect(cache.hits == 1, "the revoked token was a cache hit, and refused all the same")
        // Other sessions pass.
        guard case .forward = fixture.authorizer.decide(
            HTTPRequestHead(version: .http1_1, method: .GET, uri: "/api/x", headers: ["Authorization": "Bearer \(tokens[1])"]),
            now: fixture.now, cache: cache, revoked: revoked
        ) else {
            Issue.record("a live session was refused")
            return
        }
    }
}

extension RequestAuthorizer {
    /// The decision for a head written as NIO's type, with a cache and a revocation list.
    func decide(_ head: HTTPRequestHead, now: Double, cache: TokenCache?, revoked: RevocationList? = nil) -> Decision {
        self.decide(
            method: head.method, version: head.version, asksUpgrade: head.headers.contains(name: "upgrade"), target: head.uri, fields: head.headers,
            now: now, cache: cache, revoked: revoked
        )
    }
}
