// SPDX-License-Identifier: Apache-2.0

/// A JWT claims set (RFC 7519 §4). Accessors return nil when a claim is absent or not of its type;
/// the verifier has already refused registered claims of the wrong type.
public struct ClaimSet: Sendable {
    /// Every claim in document order.
    public let json: JSONObject

    public init(json: JSONObject) { self.json = json }

    public subscript(name: String) -> JSONValue? { self.json[name] }

    /// `iss`.
    public var issuer: String? { self.json["iss"]?.stringValue }
    /// `sub`.
    public var subject: String? { self.json["sub"]?.stringValue }
    /// `aud`, which RFC 7519 §4.1.3 allows as one string or an array of strings.
    public var audience: [String] {
        switch self.json["aud"] {
        case .string(let value): [value]
        case .array(let values): values.compactMap(\.stringValue)
        default: []
        }
    }
    /// `exp`, seconds since the epoch.
    public var expiresAt: Double? { self.json["exp"]?.numberValue }
    /// `nbf`.
    public var notBefore: Double? { self.json["nbf"]?.numberValue }
    /// `iat`.
    public var issuedAt: Double? { self.json["iat"]?.numberValue }
    /// `jti`.
    public var tokenID: String? { self.json["jti"]?.stringValue }
    /// `sid`: the session the token belongs to.
    public var sessionID: String? { self.json["sid"]?.stringValue }
}

/// A token whose signature, type, issuer, audience and time claims passed the verifier's policy.
public struct VerifiedToken: Sendable {
    public let header: JOSEHeader
    public let claims: ClaimSet
    public let algorithm: Algorithm
}
