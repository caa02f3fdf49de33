// SPDX-License-Identifier: Apache-2.0
import GatehouseJOSE
import NIOHTTP1

/// An issuer error response: JSON `{"error", "error_description"}` with an OAuth-style code.
/// Descriptions are fixed texts: never an email, a password or a token.
struct IssuerError: Error, Sendable, Equatable {
    let status: HTTPResponseStatus
    let code: String
    let description: String
    /// Seconds, for 429 and 503.
    var retryAfter: Int?

    static func invalidRequest(_ description: String) -> IssuerError {
        IssuerError(status: .badRequest, code: "invalid_request", description: description)
    }

    /// The same body for an unknown email and a wrong password.
    static let invalidCredentials = IssuerError(status: .unauthorized, code: "invalid_credentials", description: "email or password is wrong")

    static func invalidGrant(_ description: String) -> IssuerError {
        IssuerError(status: .unauthorized, code: "invalid_grant", description: description)
    }

    static func invalidToken(_ reason: String) -> IssuerError {
        IssuerError(status: .unauthorized, code: "invalid_token", description: reason)
    }

    static let emailTaken = IssuerError(status: .conflict, code: "email_taken", description: "an account with this email exists")
    static let invalidEmail = IssuerError(status: .unprocessableEntity, code: "invalid_email", description: "the email address is not valid")

    static func weakPassword(minimum: Int) -> IssuerError {
        IssuerError(
            status: .unprocessableEntity, code: "weak_password", description: "the password must be \(minimum) to \(Issuer.maximumPasswordBytes) bytes"
        )
    }

    static func rateLimited(retryAfter: Int) -> IssuerError {
        IssuerError(status: .tooManyRequests, code: "rate_limited", description: "too many failed logins; try again later", retryAfter: retryAfter)
    }

    static let busy = IssuerError(status: .serviceUnavailable, code: "unavailable", description: "the server is busy; try again", retryAfter: 1)
    static let databaseDown = IssuerError(
        status: .serviceUnavailable, code: "unavailable", description: "the database is unavailable; try again", retryAfter: 2
    )
    static let notFound = IssuerError(status: .notFound, code: "not_found", description: "no such issuer endpoint")
    static let unsupportedMediaType = IssuerError(
        status: .unsupportedMediaType, code: "unsupported_media_type", description: "the body must be application/json"
    )

    static func methodNotAllowed() -> IssuerError {
        IssuerError(status: .methodNotAllowed, code: "method_not_allowed", description: "this method is not allowed here")
    }

    var body: String {
        JSONObject(["error": .string(self.code), "error_description": .string(self.description)]).serialized
    }
}
