// SPDX-License-Identifier: Apache-2.0
import GatehouseHTTP1
import GatehouseConfig
import GatehouseCrypto
public import GatehouseHTTP
import GatehouseJOSE
import GatehouseStore
public import NIOCore
import NIOHTTP1
#if canImport(Glibc)
import Glibc
#endif

/// The issuer's HTTP interface on the gateway's listener: `/auth/register`, `/auth/login`,
/// `/auth/refresh`, `/auth/logout`, `/users/me`, `/.well-known/jwks.json` and
/// `/.well-known/openid-configuration`. Every other `/auth/*` and `/.well-known/*` path is
/// reserved while the issuer is on (404); `/auth/verify` belongs to the gateway.
public struct IssuerEndpoints: LocalEndpoints {
    public let issuer: Issuer
    private let jwksBody: [UInt8]
    private let discoveryBody: [UInt8]
    /// What browser mode's cookie-authenticated POSTs must show.
    private let csrf: CSRFCheck

    public init(issuer: Issuer) {
        self.issuer = issuer
        self.csrf = CSRFCheck(allowedOrigins: issuer.config.allowedOrigins)
        self.jwksBody = Array(issuer.jwks.serialized.utf8)
        let base = issuer.config.issuer.hasSuffix("/") ? String(issuer.config.issuer.dropLast()) : issuer.config.issuer
        let discovery = JSONObject([
            "issuer": .string(issuer.config.issuer),
            "jwks_uri": .string(base + "/.well-known/jwks.json"),
            "token_endpoint": .string(base + "/auth/login"),
            "userinfo_endpoint": .string(base + "/users/me"),
            "response_types_supported": .array([.string("token")]),
            "subject_types_supported": .array([.string("public")]),
            "id_token_signing_alg_values_supported": .array([.string(issuer.config.signing.algorithm.rawValue)]),
            "token_endpoint_auth_methods_supported": .array([.string("none")]),
        ])
        self.discoveryBody = Array(discovery.serialized.utf8)
    }

    /// Bodies over 64 KiB get 413.
    public var maximumBodyBytes: Int { 64 * 1024 }

    private static let paths: Set<String> = [
        "/auth/register", "/auth/login", "/auth/refresh", "/auth/logout", "/auth/password", "/auth/revocations", "/users/me",
        "/.well-known/jwks.json", "/.well-known/openid-configuration",
    ]

    public func route(for path: String) -> String? {
        if Self.paths.contains(path) { return path }
        if path.hasPrefix("/auth/") || path.hasPrefix("/.well-known/") { return "issuer" }
        return nil
    }

    public func checkReady(on eventLoop: any EventLoop) -> EventLoopFuture<Bool> {
        self.issuer.ping(on: eventLoop)
    }

    public var tokenCacheCounts: (hits: Int, misses: Int) { self.issuer.accessCacheCounts }

    public var metricsText: String {
        """
        # HELP gatehouse_argon2_queue_depth Password hashes waiting for an Argon2 thread.
        # TYPE gatehouse_argon2_queue_depth gauge
        gatehouse_argon2_queue_depth \(self.issuer.hashQueueDepth)

        """
    }

    public func respond(to request: LocalRequest, on eventLoop: any EventLoop) -> EventLoopFuture<LocalResponse> {
        let method = request.head.method
        let answer: EventLoopFuture<LocalResponse>
        switch request.path {
        case "/.well-known/jwks.json":
            guard method == .GET else { return eventLoop.makeSucceededFuture(Self.methodNotAllowed("GET")) }
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "application/json")
            headers.add(name: "Cache-Control", value: "public, max-age=300")
            return eventLoop.makeSucceededFuture(LocalResponse(status: .ok, headers: headers, body: self.jwksBody))
        case "/.well-known/openid-configuration":
            guard method == .GET else { return eventLoop.makeSucceededFuture(Self.methodNotAllowed("GET")) }
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "application/json")
            headers.add(name: "Cache-Control", value: "public, max-age=300")
            return eventLoop.makeSucceededFuture(LocalResponse(status: .ok, headers: headers, body: self.discoveryBody))
        case "/users/me":
            guard method == .GET else { return eventLoop.makeSucceededFuture(Self.methodNotAllowed("GET")) }
            guard let token = self.accessCredentials(request.head.headers).token else {
                return eventLoop.makeSucceededFuture(LocalResponse(error: .missingToken))
            }
            answer = self.issuer.currentUser(accessToken: token, on: eventLoop).map { user in
                var json = Self.userJSON(user)
                json["created_at"] = .string(RFC3339.format(milliseconds: user.createdAt, fraction: false))
                return LocalResponse(status: .ok, object: json)
            }
        case "/auth/revocations":
            guard method == .GET else { return eventLoop.makeSucceededFuture(Self.methodNotAllowed("GET")) }
            answer = self.revocations(request, on: eventLoop)
        case "/auth/register", "/auth/login", "/auth/refresh", "/auth/logout", "/auth/password":
            guard method == .POST else { return eventLoop.makeSucceededFuture(Self.methodNotAllowed("POST")) }
            let body: JSONObject
            if self.cookies, request.body.readableBytes == 0, request.path == "/auth/refresh" || request.path == "/auth/logout" {
                // Browser mode: the refresh token is in its cookie, and there may be no body at all.
                body = JSONObject([:])
            } else {
                switch Self.jsonBody(request) {
                case .success(let object): body = object
                case .failure(let error): return eventLoop.makeSucceededFuture(LocalResponse(error: error))
                }
            }
            answer = self.post(request.path, body: body, request: request, on: eventLoop)
        default:
            return eventLoop.makeSucceededFuture(LocalResponse(error: .noIssuerEndpoint))
        }
        return answer.recover { error in
            LocalResponse(error: error as? HTTPError ?? .serverError)
        }
    }

    private func post(_ path: String, body: JSONObject, request: LocalRequest, on eventLoop: any EventLoop) -> EventLoopFuture<LocalResponse> {
        func string(_ name: String) -> Result<String, HTTPError> {
            guard let value = body[name]?.stringValue else { return .failure(.invalidRequest("\(name) must be a string")) }
            return .success(value)
        }
        do {
            switch path {
            case "/auth/register":
                let email = try string("email").get()
                let password = try string("password").get()
                let name: String?
                switch body["name"] {
                case nil, .null?: name = nil
                case .string(let value)?: name = value
                default: throw HTTPError.invalidRequest("name must be a string or null")
                }
                return self.issuer.register(
                    email: email, password: password, name: name, peer: request.peerAddress,
                    forwardedFor: request.head.headers["x-forwarded-for"], on: eventLoop
                ).map {
                    self.tokenResponse($0, status: .created)
                }
            case "/auth/login":
                let email = try string("email").get()
                let password = try string("password").get()
                return self.issuer.login(
                    email: email, password: password, peer: request.peerAddress, forwardedFor: request.head.headers["x-forwarded-for"],
                    on: eventLoop
                ).map { self.tokenResponse($0, status: .ok) }
            case "/auth/refresh":
                let token = try self.refreshToken(body, request.head)
                return self.issuer.refresh(token: token, on: eventLoop).map { self.tokenResponse($0, status: .ok) }
            case "/auth/password":
                let token = try self.requiredAccessToken(request.head)
                return self.issuer.changePassword(
                    accessToken: token, current: try string("current_password").get(), new: try string("new_password").get(), on: eventLoop
                ).map { Self.noContent }
            default:
                // `{"all": true}` with a bearer access token: every session of the user.
                if case .bool(true)? = body["all"] {
                    return self.issuer.logoutEverywhere(accessToken: try self.requiredAccessToken(request.head), on: eventLoop).map {
                        self.loggedOut
                    }
                }
                return self.issuer.logout(token: try self.refreshToken(body, request.head), on: eventLoop).map { self.loggedOut }
            }
        } catch {
            return eventLoop.makeSucceededFuture(LocalResponse(error: error as? HTTPError ?? .invalidRequest("bad request")))
        }
    }

    /// `GET /auth/revocations?since=CURSOR` for gateways on the `poll` feed, behind
    /// `issuer.revocation_secret` (absent: the endpoint does not exist). Answers up to 10 000
    /// revocations after the cursor, oldest first: `{"cursor", "revocations": [{"sid", "exp"}], "more"}`.
    private func revocations(_ request: LocalRequest, on eventLoop: any EventLoop) -> EventLoopFuture<LocalResponse> {
        guard let secret = self.issuer.config.revocationSecret else { return eventLoop.makeSucceededFuture(LocalResponse(error: .noIssuerEndpoint)) }
        guard let presented = Self.bearerToken(request.head.headers), constantTimeEquals(presented, secret) else {
            return eventLoop.makeSucceededFuture(LocalResponse(error: .revocationSecretRequired))
        }
        var cursor: Int64 = 0
        for pair in (request.query ?? "").split(separator: "&") where pair.hasPrefix("since=") {
            guard let value = Int64(pair.dropFirst("since=".count)), value >= 0 else {
                return eventLoop.makeSucceededFuture(LocalResponse(error: .invalidRequest("since must be a cursor this endpoint returned")))
            }
            cursor = value
        }
        let limit = 10_000
        let since = cursor
        return self.issuer.revocations(after: since, limit: limit, on: eventLoop).map { rows in
            let list = rows.map { row in
                JSONValue.object(JSONObject(["sid": .string(row.sessionID), "exp": .number(Double((row.expiresAt + 999) / 1000))]))
            }
            let json = JSONObject([
                "cursor": .number(Double(rows.last?.seq ?? since)), "revocations": .array(list), "more": .bool(rows.count == limit),
            ])
            return LocalResponse(status: .ok, object: json)
        }
    }

    private static let noContent = LocalResponse(status: .noContent, headers: ["Cache-Control": "no-store"])

    // MARK: Browser mode

    private var cookies: Bool { self.issuer.config.cookies }

    /// The access token of `Authorization: Bearer`, else (browser mode) of the `access_token` cookie.
    private func accessCredentials(_ headers: HTTPHeaders) -> Credentials {
        Credentials(headers: headers, cookie: self.cookies ? "access_token" : nil)
    }

    /// The access token of a POST, or 401 `invalid_token`; from a cookie only with CSRF proof.
    private func requiredAccessToken(_ head: HTTPRequestHead) throws(HTTPError) -> String {
        let credentials = self.accessCredentials(head.headers)
        guard let token = credentials.token else { throw HTTPError.invalidToken(description: "no bearer token") }
        if case .cookie = credentials { try self.checkCSRF(head) }
        return token
    }

    /// `refresh_token` from the body, else (browser mode) from its cookie, with CSRF proof.
    private func refreshToken(_ body: JSONObject, _ head: HTTPRequestHead) throws(HTTPError) -> String {
        if let token = body["refresh_token"] {
            guard let token = token.stringValue else { throw HTTPError.invalidRequest("refresh_token must be a string") }
            return token
        }
        guard self.cookies, let token = Credentials.cookieValue(named: "refresh_token", in: head.headers) else {
            throw HTTPError.invalidRequest("refresh_token must be a string")
        }
        try self.checkCSRF(head)
        return token
    }

    private func checkCSRF(_ head: HTTPRequestHead) throws(HTTPError) {
        guard self.csrf.admits(method: head.method, headers: head.headers) else {
            throw CSRFCheck.refusal
        }
    }

    /// 204; in browser mode both cookies are cleared.
    private var loggedOut: LocalResponse {
        var response = Self.noContent
        if self.cookies {
            response.headers.add(name: "Set-Cookie", value: Self.cookie("access_token", "", path: "/", maxAge: 0))
            response.headers.add(name: "Set-Cookie", value: Self.cookie("refresh_token", "", path: "/auth", maxAge: 0))
        }
        return response
    }

    private static func cookie(_ name: String, _ value: String, path: String, maxAge: Int64) -> String {
        "\(name)=\(value); Path=\(path); Max-Age=\(maxAge); HttpOnly; Secure; SameSite=Strict"
    }

    // MARK: Bodies

    /// The request body as a JSON object: 415 unless `Content-Type` is JSON, 400 unless it parses.
    private static func jsonBody(_ request: LocalRequest) -> Result<JSONObject, HTTPError> {
        let type = request.head.headers["content-type"].first?.split(separator: ";").first.map { $0.trimmingSpaces.lowercased() }
        guard type == "application/json" else { return .failure(.unsupportedMediaType) }
        let parsed = request.body.readableBytesView.withContiguousStorageIfAvailable { bytes in
            Result { () throws(JSONError) -> JSONValue in try JSONReader.parse(UnsafeRawBufferPointer(bytes)) }
        } ?? Result { () throws(JSONError) -> JSONValue in try JSONReader.parse(String(decoding: request.body.readableBytesView, as: UTF8.self)) }
        guard case .success(.object(let object)) = parsed else { return .failure(.invalidRequest("the body is not a JSON object")) }
        return .success(object)
    }

    private static func userJSON(_ user: UserRecord) -> JSONObject {
        JSONObject([
            "id": .number(Double(user.id)), "email": .string(user.email), "name": user.name.map(JSONValue.string) ?? .null,
            "roles": .array(user.roles.map(JSONValue.string)), "permissions": .array(user.permissions.map(JSONValue.string)),
        ])
    }

    /// The token response; in browser mode the tokens are also set as cookies (the refresh cookie
    /// goes back only to `/auth`).
    private func tokenResponse(_ issued: Issuer.Issued, status: HTTPResponseStatus) -> LocalResponse {
        var response = Self.tokenBody(issued, status: status)
        if self.cookies {
            let config = self.issuer.config
            response.headers.add(
                name: "Set-Cookie", value: Self.cookie("access_token", issued.tokens.access, path: "/", maxAge: Int64(config.accessTokenTTL.seconds))
            )
            response.headers.add(
                name: "Set-Cookie",
                value: Self.cookie("refresh_token", issued.tokens.refresh, path: "/auth", maxAge: Int64(config.refreshTokenTTL.seconds))
            )
        }
        return response
    }

    private static func tokenBody(_ issued: Issuer.Issued, status: HTTPResponseStatus) -> LocalResponse {
        let json = JSONObject([
            "access_token": .string(issued.tokens.access), "refresh_token": .string(issued.tokens.refresh),
            "token_type": .string("Bearer"), "expires_in": .number(Double(issued.tokens.expiresIn)),
            "user": .object(Self.userJSON(issued.user)),
        ])
        return LocalResponse(status: status, object: json)
    }

    private static func methodNotAllowed(_ allowed: String) -> LocalResponse {
        LocalResponse(error: .methodNotAllowed(allow: allowed))
    }

    /// The token of a single `Authorization: Bearer` header, for `/auth/revocations`' shared secret.
    ///
    /// Not `Credentials`, on purpose: that reads access tokens, so it requires RFC 6750's b64token
    /// and falls back to the access cookie; `issuer.revocation_secret` is any string of 32 bytes
    /// or more (`${VAR}` from a secret store may hold `!`, `:` or `%`), and a cookie must never
    /// stand in for it.
    private static func bearerToken(_ headers: HTTPHeaders) -> String? {
        let values = headers["authorization"]
        guard values.count == 1 else { return nil }
        let parts = values[0].split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let token = String(parts[1].trimmingSpaces)
        return token.isEmpty ? nil : token
    }
}
