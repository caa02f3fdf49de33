// SPDX-License-Identifier: Apache-2.0
public import GatehouseConfig
import GatehouseJOSE
public import NIOHTTP1

/// Decides, from a request head alone, whether the gateway answers itself or forwards, and with
/// which identity. Synchronous and lock-free: it runs on the event loop for every request.
public struct RequestAuthorizer: Sendable {
    public enum Decision: Sendable {
        /// Answer with `error`; `route` is the matched route's prefix, if any (for the metrics).
        case respond(GatewayError, route: String?)
        /// Forward to `route`, as `path`, with `identity` (nil: anonymous, no identity headers).
        case forward(route: RouteConfig, path: RequestPath, identity: Identity?)
    }

    public let routes: RouteTable
    public let providers: ProviderSet
    /// The access-token cookie read when there is no `Authorization` header.
    public let cookie: String?

    public init(routes: RouteTable, providers: ProviderSet, cookie: String?) {
        self.routes = routes
        self.providers = providers
        self.cookie = cookie
    }

    public func decide(_ head: HTTPRequestHead, now: Double) -> Decision {
        self.decide(head, now: now, cache: nil)
    }

    /// Decides with this event loop's verified-token cache (nil: every token is verified).
    func decide(_ head: HTTPRequestHead, now: Double, cache: TokenCache?) -> Decision {
        // The decoder refuses Content-Length with Transfer-Encoding and conflicting lengths; a
        // length that is not a plain number never reaches an upstream either.
        for length in head.headers["content-length"] where length.isEmpty || !length.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
            return .respond(.invalidRequest("Content-Length is not a number"), route: nil)
        }
        let path: RequestPath
        do { path = try RequestPath(target: head.uri) } catch {
            return .respond(.invalidRequest(error == .aboveRoot ? "the path climbs above /" : "the request target is not a valid path"), route: nil)
        }
        guard let route = self.routes.route(for: path.path) else { return .respond(.notFound, route: nil) }
        if route.auth == .public { return .forward(route: route, path: path, identity: nil) }
        if route.allowPreflight, head.method == .OPTIONS, head.headers.contains(name: "origin"),
            head.headers.contains(name: "access-control-request-method")
        {
            return .forward(route: route, path: path, identity: nil)
        }
        let needsToken = route.auth == .required || !route.anyRole.isEmpty || !route.allScopes.isEmpty
        switch Credentials(headers: head.headers, cookie: self.cookie) {
        case .ambiguous:
            return .respond(.invalidRequest("more than one Authorization header"), route: route.prefix)
        case .none:
            return needsToken ? .respond(.missingToken, route: route.prefix) : .forward(route: route, path: path, identity: nil)
        case .malformed:
            return .respond(.invalidToken(.malformed), route: route.prefix)
        case .bearer(let token):
            // A token that is present but bad is refused on optional routes too.
            let identity: Identity
            let key = cache?.key(for: token)
            switch key.map({ cache!.lookup($0, now: now) }) ?? .miss {
            case .hit(let cached):
                identity = cached
            case .expired:
                return .respond(.invalidToken(.expired), route: route.prefix)
            case .miss:
                do {
                    let (verified, leeway) = try self.providers.verifyReturningLeeway(token, now: now)
                    identity = try Identity(claims: verified.claims)
                    if let cache, let key, let expiresAt = verified.claims.expiresAt {
                        cache.insert(key, .init(identity: identity, deadline: expiresAt + leeway, sessionID: verified.claims.sessionID))
                    }
                } catch {
                    return .respond(.invalidToken(error.reason), route: route.prefix)
                }
            }
            guard identity.satisfies(anyRole: route.anyRole, allScopes: route.allScopes) else {
                return .respond(.insufficientScope, route: route.prefix)
            }
            return .forward(route: route, path: path, identity: identity)
        }
    }
}
