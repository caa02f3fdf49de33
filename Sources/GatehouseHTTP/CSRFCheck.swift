// SPDX-License-Identifier: Apache-2.0
public import GatehouseHTTP1
public import NIOHTTP1

/// Browser mode's defence against cross-site request forgery. A cookie reaches the server with
/// every request the browser makes, whoever made the page; so a cookie-authenticated POST, PUT,
/// PATCH or DELETE must carry an `Origin` from `issuer.allowed_origins`, or `X-Requested-With`
/// (which a cross-site form cannot set, and a cross-site script cannot without a CORS preflight).
/// `SameSite=Strict` on the cookies is the first line; this is the second.
public struct CSRFCheck: Sendable {
    public let allowedOrigins: Set<String>

    public init(allowedOrigins: [String]) {
        self.allowedOrigins = Set(allowedOrigins)
    }

    /// Whether a request authenticated by a cookie may go on.
    public func admits(method: HTTPMethod, headers: some HTTPFieldReading) -> Bool {
        switch method {
        case .GET, .HEAD, .OPTIONS, .TRACE: return true
        default: break
        }
        if headers.contains(named: "x-requested-with") { return true }
        let origins = headers.values(named: "origin")
        return origins.count == 1 && self.allowedOrigins.contains(origins[0])
    }

    /// For forward-auth, which asks about another request: the proxy sends that request's method as
    /// the check's own (Envoy's `ext_authz`) or as `X-Forwarded-Method` (Traefik; nginx when its
    /// configuration sets it). Each method either names must be admitted, so neither can make an
    /// unsafe request look safe.
    public func admitsForwarded(method: HTTPMethod, headers: some HTTPFieldReading) -> Bool {
        self.admits(method: method, headers: headers)
            && headers.values(named: "x-forwarded-method").allSatisfy { self.admits(method: HTTPMethod(rawValue: $0), headers: headers) }
    }

    /// Whether a WebSocket handshake authenticated by a cookie or a query token may go on: a
    /// browser opens a WebSocket to any site with the cookies, and no preflight stands in the way
    /// (Cross-Site WebSocket Hijacking), so it needs one allowed `Origin`; `X-Requested-With` does
    /// not count, and a missing `Origin` is refused.
    public func admitsHandshake(headers: some HTTPFieldReading) -> Bool {
        let origins = headers.values(named: "origin")
        return origins.count == 1 && self.allowedOrigins.contains(origins[0])
    }

    public static let handshakeRefusal = HTTPError(
        status: .forbidden, code: "invalid_origin",
        description: "a WebSocket handshake authenticated by a cookie or a query token needs an allowed Origin"
    )

    public static let refusal = HTTPError(
        status: .forbidden, code: "invalid_origin",
        description: "a cookie-authenticated request with this method needs an allowed Origin or X-Requested-With"
    )
}
