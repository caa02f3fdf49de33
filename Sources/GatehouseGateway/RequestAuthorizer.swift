// SPDX-License-Identifier: Apache-2.0
public import GatehouseConfig
public import GatehouseHTTP
import GatehouseJOSE
import GatehouseHTTP1
public import NIOHTTP1

/// Decides, from a request head alone, whether the gateway answers itself or forwards, and with
/// which identity. Synchronous and lock-free: it runs on the event loop for every request.
public struct RequestAuthorizer: Sendable {
    public enum Decision: Sendable {
        /// Answer with `error`; `route` is the matched route's prefix, if any (for the metrics).
        case respond(HTTPError, route: String?)
        /// Forward to `route`, as `path`, with `identity` (nil: anonymous, no identity headers).
        case forward(route: RouteConfig, path: RequestPath, identity: Identity?)
        /// Forward a WebSocket handshake (`path` without the route's token parameter); a valid 101
        /// turns the connection into a tunnel that lives no longer than `identity`'s token.
        case upgrade(route: RouteConfig, path: RequestPath, identity: Identity?, handshake: WebSocketHandshake)
        /// `/auth/verify` (forward-auth): answer 200 with the identity headers, no body.
        case verified(Identity)
        /// Served by the listener's own endpoints (the issuer); `route` is the metrics label.
        case local(route: String, path: RequestPath)
    }

    /// The forward-auth path (nginx `auth_request`, Traefik ForwardAuth, Envoy `ext_authz`, which
    /// appends the original path: `/auth/verify/…` is forward-auth too).
    public static let verifyPath = "/auth/verify"

    public let routes: RouteTable
    /// The providers' verification, cached, with the revocation check.
    public let access: AccessCheck
    /// The access-token cookie read when there is no `Authorization` header.
    public let cookie: String?
    /// The issuer's endpoints, when it runs in this process.
    public let local: (any LocalEndpoints)?
    /// What cookie-authenticated unsafe requests must show.
    public let csrf: CSRFCheck

    public init(
        routes: RouteTable, providers: ProviderSet, cookie: String?, local: (any LocalEndpoints)? = nil, csrf: CSRFCheck = CSRFCheck(allowedOrigins: [])
    ) {
        self.routes = routes
        self.access = AccessCheck(providers: providers)
        self.cookie = cookie
        self.local = local
        self.csrf = csrf
    }

    public func decide(_ head: HTTPRequestHead, now: Double) -> Decision {
        self.decide(
            method: head.method, version: head.version, asksUpgrade: head.headers.contains(name: "upgrade"), target: head.uri, fields: head.headers,
            now: now, cache: nil
        )
    }

    /// Decides with this event loop's verified-token cache (nil: every token is verified) and its
    /// copy of the revoked sessions.
    func decide(
        method: HTTPMethod, version: HTTPVersion = .http1_1, asksUpgrade: Bool = false, target: String, fields: some HTTPFieldReading, now: Double,
        cache: TokenCache?, revoked: RevocationList? = nil
    ) -> Decision {
        if method == .CONNECT || method == .TRACE { return .respond(.methodNotAllowed, route: nil) }
        if let refusal = Self.framingRefusal(fields) { return .respond(.invalidRequest(refusal), route: nil) }
        let path: RequestPath
        do { path = try RequestPath(target: target) } catch {
            return .respond(.invalidRequest(error == .aboveRoot ? "the path climbs above /" : "the request target is not a valid path"), route: nil)
        }
        if path.path == Self.verifyPath || path.path.hasPrefix(Self.verifyPath + "/") {
            return self.forwardAuth(method: method, fields: fields, query: path.query, now: now, cache: cache, revoked: revoked)
        }
        if let local = self.local, let label = local.route(for: path.path) {
            if let refusal = path.refusal(keepSemicolons: false, keepEncodedSlashes: false) { return .respond(.invalidRequest(refusal), route: label) }
            return .local(route: label, path: path)
        }
        guard let route = self.routes.route(for: path.path) else { return .respond(.notFound, route: nil) }
        if let refusal = path.refusal(keepSemicolons: route.keepSemicolons, keepEncodedSlashes: route.keepEncodedSlashes) {
            return .respond(.invalidRequest(refusal), route: route.prefix)
        }
        // A kept `;` must not move the request under another route as its upstream reads it:
        // `/app/admin;x/users` is `/app/admin/users` to Tomcat, which `/app/admin/` guards.
        if path.hazards.contains(.semicolon), self.routes.route(for: path.withoutParameters)?.prefix != route.prefix {
            return .respond(.invalidRequest("path parameters would move this path under another route"), route: route.prefix)
        }
        // `asksUpgrade`: the head has an `Upgrade` field (the parser saw it); only then are its
        // fields read again for a handshake, so that no other request pays a second pass.
        var handshake: WebSocketHandshake?
        if asksUpgrade {
            switch WebSocketHandshake.read(method: method, version: version, fields: fields) {
            case .none: break
            case .handshake(let read): handshake = read
            case .invalid(let reason): return .respond(.invalidRequest(reason), route: route.prefix)
            }
        }
        var forwardedPath = path
        // A token in the URL of a handshake goes no further, whatever the route's auth.
        let queryTokens = handshake != nil ? route.tokenParameter.map { forwardedPath.takeQueryParameter($0) } ?? [] : []
        func forward(_ identity: Identity?) -> Decision {
            guard let handshake else { return .forward(route: route, path: forwardedPath, identity: identity) }
            return .upgrade(route: route, path: forwardedPath, identity: identity, handshake: handshake)
        }
        if route.auth == .public { return forward(nil) }
        if route.allowPreflight, method == .OPTIONS, fields.contains(named: "origin"), fields.contains(named: "access-control-request-method") {
            return forward(nil)
        }
        let needsToken = route.auth == .required || !route.anyRole.isEmpty || !route.allScopes.isEmpty
        var credentials = Credentials(fields: fields, cookie: self.cookie)
        // Credentials a browser sends by itself, or a page put in a URL: the origin must be shown.
        var fromBrowser = false
        if case .cookie = credentials { fromBrowser = true }
        if !queryTokens.isEmpty {
            guard queryTokens.count == 1 else { return .respond(.invalidRequest("more than one token parameter"), route: route.prefix) }
            guard !fields.contains(named: "authorization") else {
                return .respond(.invalidRequest("a handshake carrying both Authorization and a token parameter"), route: route.prefix)
            }
            credentials = .fromQueryParameter(queryTokens[0])
            fromBrowser = true
        }
        switch credentials {
        case .ambiguous:
            return .respond(.invalidRequest("more than one Authorization header"), route: route.prefix)
        case .none:
            return needsToken ? .respond(.missingToken, route: route.prefix) : forward(nil)
        case .malformed:
            return .respond(.invalidToken(.malformed), route: route.prefix)
        case .bearer(let token), .cookie(let token):
            if handshake != nil, fromBrowser, !self.csrf.admitsHandshake(headers: fields) {
                return .respond(CSRFCheck.handshakeRefusal, route: route.prefix)
            }
            if case .cookie = credentials, !self.csrf.admits(method: method, headers: fields) {
                return .respond(CSRFCheck.refusal, route: route.prefix)
            }
            // A token that is present but bad is refused on optional routes too.
            let identity: Identity
            switch self.access.identity(of: token, now: now, cache: cache, revoked: revoked) {
            case .success(let verified): identity = verified
            case .failure(let error): return .respond(.invalidToken(error.reason), route: route.prefix)
            }
            guard identity.satisfies(anyRole: route.anyRole, allScopes: route.allScopes) else {
                return .respond(.insufficientScope, route: route.prefix)
            }
            return forward(identity)
        }
    }

    /// What makes a head unfit to forward, in one pass over its fields: a `Content-Length` that is
    /// not a plain number (the decoder already refuses it beside `Transfer-Encoding` and conflicting
    /// lengths), or more than one `Host` (RFC 9112 §3.2: an upstream might read either).
    static func framingRefusal(_ fields: some HTTPFieldReading) -> String? {
        var hosts = 0
        var refusal: String?
        fields.forEachField { name, value in
            switch name.count {
            case 4 where ASCII.equalsIgnoringCase(name, "host"):
                hosts += 1
                if hosts > 1 { refusal = "more than one Host header" }
            case 14 where ASCII.equalsIgnoringCase(name, "content-length"):
                if value.isEmpty || !value.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) { refusal = "Content-Length is not a number" }
            default:
                break
            }
            return refusal == nil
        }
        return refusal
    }

    /// `/auth/verify`, any method: 200 with the identity headers for a valid bearer token,
    /// `?any_role=a,b` and `?all_scopes=x,y` applied; 401/403 as on a route. A token from the
    /// access cookie must pass the CSRF check for the method the proxy asks about.
    private func forwardAuth(
        method: HTTPMethod, fields: some HTTPFieldReading, query: String?, now: Double, cache: TokenCache?, revoked: RevocationList?
    ) -> Decision {
        var anyRole: [String] = []
        var allScopes: [String] = []
        for pair in (query ?? "").split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let values = parts[1].split(separator: ",").map(String.init)
            if parts[0] == "any_role" { anyRole += values } else if parts[0] == "all_scopes" { allScopes += values }
        }
        let credentials = Credentials(fields: fields, cookie: self.cookie)
        switch credentials {
        case .ambiguous: return .respond(.invalidRequest("more than one Authorization header"), route: Self.verifyPath)
        case .none: return .respond(.missingToken, route: Self.verifyPath)
        case .malformed: return .respond(.invalidToken(.malformed), route: Self.verifyPath)
        case .bearer(let token), .cookie(let token):
            if case .cookie = credentials, !self.csrf.admitsForwarded(method: method, headers: fields) {
                return .respond(CSRFCheck.refusal, route: Self.verifyPath)
            }
            switch self.access.identity(of: token, now: now, cache: cache, revoked: revoked) {
            case .failure(let error): return .respond(.invalidToken(error.reason), route: Self.verifyPath)
            case .success(let identity):
                guard identity.satisfies(anyRole: anyRole, allScopes: allScopes) else {
                    return .respond(.insufficientScope, route: Self.verifyPath)
                }
                return .verified(identity)
            }
        }
    }
}
