// SPDX-License-Identifier: Apache-2.0
import GatehouseHTTP
import NIOHTTP1

/// The issuer's answers in DESIGN.md's error format, with OAuth-style codes.
extension HTTPError {
    /// The same body for an unknown email and a wrong password.
    static let invalidCredentials = HTTPError(status: .unauthorized, code: "invalid_credentials", description: "email or password is wrong")

    static func invalidGrant(_ description: String) -> HTTPError {
        HTTPError(status: .unauthorized, code: "invalid_grant", description: description)
    }

    static let emailTaken = HTTPError(status: .conflict, code: "email_taken", description: "an account with this email exists")
    static let invalidEmail = HTTPError(status: .unprocessableEntity, code: "invalid_email", description: "the email address is not valid")

    static func weakPassword(minimum: Int) -> HTTPError {
        HTTPError(
            status: .unprocessableEntity, code: "weak_password", description: "the password must be \(minimum) to \(Issuer.maximumPasswordBytes) bytes"
        )
    }

    static func rateLimited(retryAfter: Int) -> HTTPError {
        HTTPError(status: .tooManyRequests, code: "rate_limited", description: "too many failed logins; try again later", retryAfter: retryAfter)
    }

    static let busy = HTTPError(status: .serviceUnavailable, code: "unavailable", description: "the server is busy; try again", retryAfter: 1)
    static let databaseDown = HTTPError(
        status: .serviceUnavailable, code: "unavailable", description: "the database is unavailable; try again", retryAfter: 2
    )
    static let noIssuerEndpoint = HTTPError(status: .notFound, code: "not_found", description: "no such issuer endpoint")
    static let unsupportedMediaType = HTTPError(
        status: .unsupportedMediaType, code: "unsupported_media_type", description: "the body must be application/json"
    )

    /// 405 with the methods the endpoint takes.
    static func methodNotAllowed(allow: String) -> HTTPError {
        HTTPError(status: .methodNotAllowed, code: "method_not_allowed", description: "this method is not allowed here", allow: allow)
    }

    /// The revocation feed without its secret: a challenge without a description.
    static let revocationSecretRequired = HTTPError(
        status: .unauthorized, code: "invalid_token", description: "the revocation feed needs the issuer's revocation_secret",
        challenge: "Bearer error=\"invalid_token\""
    )
}
