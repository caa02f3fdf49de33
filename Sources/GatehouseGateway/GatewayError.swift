// SPDX-License-Identifier: Apache-2.0
public import GatehouseJOSE
public import NIOHTTP1

/// A response the gateway makes itself: JSON `{"error", "error_description"}` with the status and
/// headers DESIGN.md gives each case.
public struct GatewayError: Error, Sendable, Equatable {
    public let status: HTTPResponseStatus
    public let code: String
    public let description: String
    /// `WWW-Authenticate`, for 401 and 403 (RFC 6750 §3).
    public let challenge: String?
    /// Why a token was refused, for `gatehouse_token_rejections_total`.
    public let rejection: RejectionReason?
    /// `Allow`, for 405.
    public let allow: String?
    /// The connection closes after this answer, whatever the client asked.
    public let closesConnection: Bool

    public init(
        status: HTTPResponseStatus, code: String, description: String, challenge: String? = nil, rejection: RejectionReason? = nil,
        allow: String? = nil, closesConnection: Bool = false
    ) {
        self.status = status
        self.code = code
        self.description = description
        self.challenge = challenge
        self.rejection = rejection
        self.allow = allow
        self.closesConnection = closesConnection
    }

    /// No token where one is required: a bare `Bearer` challenge (RFC 6750 §3.1).
    public static let missingToken = GatewayError(
        status: .unauthorized, code: "invalid_token", description: "no bearer token", challenge: "Bearer"
    )

    /// A refused token: its reason is the `error_description`, here and in the challenge.
    public static func invalidToken(_ reason: RejectionReason) -> GatewayError {
        GatewayError(
            status: .unauthorized, code: "invalid_token", description: reason.rawValue,
            challenge: "Bearer error=\"invalid_token\", error_description=\"\(reason.rawValue)\"", rejection: reason
        )
    }

    public static let insufficientScope = GatewayError(
        status: .forbidden, code: "insufficient_scope", description: "the token lacks the role or scope this route requires",
        challenge: "Bearer error=\"insufficient_scope\""
    )

    public static func invalidRequest(_ description: String) -> GatewayError {
        GatewayError(status: .badRequest, code: "invalid_request", description: description)
    }

    /// `CONNECT` and `TRACE` are never forwarded: a tunnel's framing would desynchronise a pooled
    /// upstream connection, and `TRACE` echoes credentials. Answered from the head alone; the
    /// connection closes, since the bytes after such a head have no agreed framing.
    public static let methodNotAllowed = GatewayError(
        status: .methodNotAllowed, code: "method_not_allowed", description: "CONNECT and TRACE are not forwarded",
        allow: "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS", closesConnection: true
    )

    /// A request body that sent nothing for `idle_timeout` (the connection closes after it, as
    /// after every answer given before a request was read whole).
    public static let requestTimeout = GatewayError(
        status: .requestTimeout, code: "request_timeout", description: "the request body sent nothing for idle_timeout"
    )

    public static let notFound = GatewayError(status: .notFound, code: "not_found", description: "no route matches this path")
    public static let badGateway = GatewayError(status: .badGateway, code: "bad_gateway", description: "the upstream could not be reached")
    public static let gatewayTimeout = GatewayError(
        status: .gatewayTimeout, code: "gateway_timeout", description: "the upstream did not answer in time"
    )
    public static let headersTooLarge = GatewayError(
        status: .requestHeaderFieldsTooLarge, code: "headers_too_large", description: "request headers are too large"
    )

    /// The JSON body.
    public var body: String {
        JSONObject(["error": .string(self.code), "error_description": .string(self.description)]).serialized
    }

    /// The response's headers for a body of `bodyBytes`: `Content-Type`, `Content-Length`,
    /// `Cache-Control` and the challenge (the connection's fate is the writer's to add).
    func headers(bodyBytes: Int) -> HTTPHeaders {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: String(bodyBytes))
        headers.add(name: "Cache-Control", value: "no-store")
        if let challenge { headers.add(name: "WWW-Authenticate", value: challenge) }
        if let allow { headers.add(name: "Allow", value: allow) }
        return headers
    }
}
