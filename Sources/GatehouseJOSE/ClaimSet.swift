// SPDX-License-Identifier: Apache-2.0

/// A JWT claims set (RFC 7519 §4), read in place. Accessors return nil when a claim is absent or not
/// of its type; the verifier has already refused registered claims of the wrong type.
public struct ClaimSet: Sendable {
    let document: InPlaceJSONObject

    init(document: InPlaceJSONObject) { self.document = document }

    /// Every claim in document order.
    public var json: JSONObject { self.document.object }

    /// The claim named `name`.
    public subscript(name: String) -> JSONValue? {
        for member in self.document.members where self.document.name(of: member) == name {
            return self.document.value(of: member)
        }
        return nil
    }

    /// The claim named `name` (a registered or well-known name of eight bytes at most), found without
    /// materialising the other claims.
    public func value(_ name: StaticString) -> JSONValue? {
        self.document.member(name).map(self.document.value(of:))
    }

    private func string(_ name: StaticString) -> String? {
        self.document.member(name).flatMap { self.document.value(of: $0).stringValue }
    }

    private func number(_ name: StaticString) -> Double? {
        guard case .number(let value)? = self.document.member(name)?.value else { return nil }
        return value
    }

    /// `iss`.
    public var issuer: String? { self.string("iss") }
    /// `sub`.
    public var subject: String? { self.string("sub") }
    /// `aud`, which RFC 7519 §4.1.3 allows as one string or an array of strings.
    public var audience: [String] {
        switch self.document.member("aud").map(self.document.value(of:)) {
        case .string(let value): [value]
        case .array(let values): values.compactMap(\.stringValue)
        default: []
        }
    }
    /// `exp`, seconds since the epoch.
    public var expiresAt: Double? { self.number("exp") }
    /// `nbf`.
    public var notBefore: Double? { self.number("nbf") }
    /// `iat`.
    public var issuedAt: Double? { self.number("iat") }
    /// `jti`.
    public var tokenID: String? { self.string("jti") }
    /// `sid`: the session the token belongs to.
    public var sessionID: String? { self.string("sid") }
}

/// A token whose signature, type, issuer, audience and time claims passed the verifier's policy.
public struct VerifiedToken: Sendable {
    public let header: JOSEHeader
    public let claims: ClaimSet
    public let algorithm: Algorithm
}
