// SPDX-License-Identifier: Apache-2.0

/// What a verifier demands of a token. Fixed by configuration; nothing in a token can change it.
public struct VerificationPolicy: Sendable {
    /// How `typ` is checked.
    public enum TypeRule: Sendable, Hashable {
        /// Any `typ` or none, except `refresh+jwt`: a refresh token is never an access token.
        case any
        /// This `typ`, compared case-insensitively with an optional `application/` prefix (RFC 7515 §4.1.9).
        case required(String)
    }

    /// The allow-list. `none` cannot be named, so it is never on it.
    public var algorithms: Set<Algorithm>
    /// The exact `iss` required, or nil to leave `iss` unchecked.
    public var issuer: String?
    /// An `aud` value the token must contain, or nil to leave `aud` unchecked.
    public var audience: String?
    public var type: TypeRule
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
    public var leeway: Double
    /// Tokens longer than this are refused before any parsing.
    public var maximumTokenBytes: Int

    public static let defaultMaximumTokenBytes = 8192

    public init(
        algorithms: Set<Algorithm>, issuer: String?, audience: String?, type: TypeRule = .required("at+jwt"),
        leeway: Double = 30, maximumTokenBytes: Int = VerificationPolicy.defaultMaximumTokenBytes
    ) {
        self.algorithms = algorithms
        self.issuer = issuer
        self.audience = audience
        self.type = type
        self.leeway = leeway
        self.maximumTokenBytes = maximumTokenBytes
    }

    /// Whether a token's `typ` passes.
    func accepts(type: String?) -> Bool {
        let normalized = type.map(Self.normalize)
        switch self.type {
        case .any: return normalized != "refresh+jwt"
        case .required(let required): return normalized == Self.normalize(required)
        }
    }

    private static func normalize(_ type: String) -> String {
        let lowered = type.lowercased()
        return lowered.hasPrefix("application/") ? String(lowered.dropFirst("application/".count)) : lowered
    }
}
