// SPDX-License-Identifier: Apache-2.0
public import GatehouseJOSE
public import NIOHTTP1

/// An error response Gatehouse makes itself, gateway and issuer alike: JSON `{"error",
/// "error_description"}` (DESIGN.md's error format) with its status, its OAuth-style code and the
/// headers the case needs (`WWW-Authenticate`, `Allow`, `Retry-After`). Descriptions are fixed
/// texts: never an email, a password or a token.
public struct HTTPError: Error, Sendable, Equatable {
    public let status: HTTPResponseStatus
    public let code: String
    public let description: String
    /// Headers of this case, sent after `Content-Type`, `Content-Length` and `Cache-Control`.
    public let extraHeaders: HTTPHeaders
    /// Why a token was refused, for `gatehouse_token_rejections_total`.
    public let rejection: RejectionReason?
    /// The connection closes after this answer, whatever the client asked.
    public let closesConnection: Bool

    /// - Parameters:
    ///   - challenge: `WWW-Authenticate`, for 401 and 403 (RFC 6750 §3).
    ///   - allow: `Allow`, for 405.
    ///   - retryAfter: `Retry-After` in seconds, for 429 and 503.
    public init(
        status: HTTPResponseStatus, code: String, description: String, challenge: String? = nil, rejection: RejectionReason? = nil,
        allow: String? = nil, retryAfter: Int? = nil, closesConnection: Bool = false
    ) {
        self.status = status
        self.code = code
        self.description = description
        var headers = HTTPHeaders()
        if let retryAfter { headers.add(name: "Retry-After", value: String(retryAfter)) }
        if let challenge { headers.add(name: "WWW-Authenticate", value: challenge) }
        if let allow { headers.add(name: "Allow", value: allow) }
        self.extraHeaders = headers
        self.rejection = rejection
        self.closesConnection = closesConnection
    }

    /// `WWW-Authenticate`, if this answer has one.
    public var challenge: String? { self.extraHeaders.first(name: "WWW-Authenticate") }

    /// `Retry-After` in seconds, if this answer has one.
    public var retryAfter: Int? { self.extraHeaders.first(name: "Retry-After").flatMap { Int($0) } }

    /// No token where one is required: a bare `Bearer` challenge (RFC 6750 §3.1).
    public static let missingToken = HTTPError(
        status: .unauthorized, code: "invalid_token", description: "no bearer token", challenge: "Bearer"
    )

    /// A refused token: its reason is the `error_description`, here and in the challenge.
    public static func invalidToken(_ reason: RejectionReason) -> HTTPError {
        HTTPError(
            status: .unauthorized, code: "invalid_token", description: reason.rawValue,
            challenge: "Bearer error=\"invalid_token\", error_description=\"\(reason.rawValue)\"", rejection: reason
        )
    }

    /// A refused token described in words (the issuer's `/users/me`, `/auth/password`), with the
    /// same challenge.
    public static func invalidToken(description: String) -> HTTPError {
        HTTPError(
            status: .unauthorized, code: "invalid_token", description: description,
            challenge: "Bearer error=\"invalid_token\", error_description=\"\(description)\""
        )
    }

    public static let insufficientScope = HTTPError(
        status: .forbidden, code: "insufficient_scope", description: "the token lacks the role or scope this route requires",
        challenge: "Bearer error=\"insufficient_scope\""
    )

    public static func invalidRequest(_ description: String) -> HTTPError {
        HTTPError(status: .badRequest, code: "invalid_request", description: description)
    }

    /// `CONNECT` and `TRACE` are never forwarded: a tunnel's framing would desynchronise a pooled
    /// upstream connection, and `TRACE` echoes credentials. Answered from the head alone; the
    /// connection closes, since the bytes after such a head have no agreed framing.
    public static let methodNotAllowed = HTTPError(
        status: .methodNotAllowed, code: "method_not_allowed", description: "CONNECT and TRACE are not forwarded",
        allow: "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS", closesConnection: true
    )

    /// A request body that sent nothing for `idle_timeout` (the connection closes after it, as
    /// after every answer given before a request was read whole).
    public static let requestTimeout = HTTPError(
        status: .requestTimeout, code: "request_timeout", description: "the request body sent nothing for idle_timeout"
    )

    public static let notFound = HTTPError(status: .notFound, code: "not_found", description: "no route matches this path")
    public static let badGateway = HTTPError(status: .badGateway, code: "bad_gateway", description: "the upstream could not be reached")
    public static let gatewayTimeout = HTTPError(
        status: .gatewayTimeout, code: "gateway_timeout", description: "the upstream did not answer in time"
    )
    public static let headersTooLarge = HTTPError(
        status: .requestHeaderFieldsTooLarge, code: "headers_too_large", description: "request headers are too large"
    )

    public static let serverError = HTTPError(status: .internalServerError, code: "server_error", description: "internal error")

    /// The JSON body.
    public var body: String {
        JSONObject(["error": .string(self.code), "error_description": .string(self.description)]).serialized
    }

    /// The response's headers for a body of `bodyBytes`: `Content-Type`, `Content-Length`,
    /// `Cache-Control` and the extra ones (the connection's fate is the writer's to add).
    package func headers(bodyBytes: Int) -> HTTPHeaders {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: String(bodyBytes))
        headers.add(name: "Cache-Control", value: "no-store")
        headers.add(contentsOf: self.extraHeaders)
        return headers
    }
}
