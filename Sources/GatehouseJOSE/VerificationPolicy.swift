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

    /// Whether a token's `typ` (its bytes, nil when absent) passes; `required` is `requiredType`,
    /// computed once by the verifier.
    static func accepts(type: UnsafeRawBufferPointer?, required: [UInt8]?) -> Bool {
        guard let required else { return type.map { !Self.mediaType($0, is: Self.refreshType) } ?? true }
        return type.map { Self.mediaType($0, is: required) } ?? false
    }

    private static let refreshType = Array("refresh+jwt".utf8)

    /// The required `typ` without an `application/` prefix, lower-cased; nil for `.any`.
    var requiredType: [UInt8]? {
        guard case .required(let type) = self.type else { return nil }
        let lowered = type.lowercased()
        return Array((lowered.hasPrefix("application/") ? String(lowered.dropFirst("application/".count)) : lowered).utf8)
    }

    /// Whether `type` is `expected` (lower-case, unprefixed), ignoring ASCII case and an
    /// `application/` prefix, without allocating.
    static func mediaType(_ type: UnsafeRawBufferPointer, is expected: [UInt8]) -> Bool {
        var type = type[...]
        let prefix = Self.applicationPrefix
        if type.count > prefix.count, zip(type, prefix).allSatisfy({ lowercased($0) == $1 }) {
            type = type.dropFirst(prefix.count)
        }
        return type.count == expected.count && zip(type, expected).allSatisfy { lowercased($0) == $1 }
    }

    private static let applicationPrefix = Array("application/".utf8)

    @inline(__always)
    private static func lowercased(_ byte: UInt8) -> UInt8 {
        byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
    }
}
