// SPDX-License-Identifier: Apache-2.0

/// Why a token was refused: a bounded set with stable snake_case names, used as the RFC 6750
/// `error_description`, a log field and the `reason` label of `gatehouse_token_rejections_total`.
public enum RejectionReason: String, Sendable, Hashable, CaseIterable {
    case malformed
    case tokenTooLarge = "token_too_large"
    case algorithmNotAllowed = "alg_not_allowed"
    case unknownKeyID = "unknown_kid"
    case badSignature = "bad_signature"
    case badType = "bad_typ"
    case expired
    case notYetValid = "not_yet_valid"
    case issuedInFuture = "iat_in_future"
    case badIssuer = "bad_issuer"
    case badAudience = "bad_audience"
    case missingClaim = "missing_claim"
    case badClaim = "bad_claim"
    case critUnsupported = "crit_unsupported"
    case revoked
}

/// A refused token. Equality compares the reason only; the detail is for logs and never holds
/// token text.
public struct JOSEError: Error, Hashable, CustomStringConvertible {
    public let reason: RejectionReason
    /// A short, token-free explanation for humans (`gatehouse token inspect`, debug logs).
    public let detail: String

    public init(_ reason: RejectionReason, _ detail: @autoclosure () -> String = "") {
        self.reason = reason
        self.detail = detail()
    }

    public var description: String { self.detail.isEmpty ? self.reason.rawValue : "\(self.reason.rawValue): \(self.detail)" }

    public static func == (lhs: JOSEError, rhs: JOSEError) -> Bool { lhs.reason == rhs.reason }
    public func hash(into hasher: inout Hasher) { hasher.combine(self.reason) }
}

/// A key or key set that cannot be used: bad JWK, PEM or secret. Raised at load time, never per request.
public struct KeyError: Error, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { self.message }
}
