// SPDX-License-Identifier: Apache-2.0
public import GatehouseCrypto

/// The JWS algorithms Gatehouse signs and verifies (RFC 7518 §3, RFC 8037 §3.1).
///
/// There is deliberately no `none`: an unsecured JWS cannot even be named.
public enum Algorithm: String, Sendable, Hashable, CaseIterable, Comparable {
    case hs256 = "HS256", hs384 = "HS384", hs512 = "HS512"
    case rs256 = "RS256", rs384 = "RS384", rs512 = "RS512"
    case ps256 = "PS256", ps384 = "PS384", ps512 = "PS512"
    case es256 = "ES256", es384 = "ES384", es512 = "ES512"
    case edDSA = "EdDSA"

    /// The algorithm a JWS `alg` names (exact, case-sensitive), without comparing against every case.
    @inline(__always)
    public init?(name: String) {
        guard let algorithm = Self.byName[name] else { return nil }
        self = algorithm
    }

    private static let byName: [String: Algorithm] = Dictionary(uniqueKeysWithValues: allCases.map { ($0.rawValue, $0) })

    /// The algorithm named by these bytes (a token's `alg`), compared without making a String.
    init?(name bytes: UnsafeRawBufferPointer) {
        for (algorithm, name) in Self.names where name.count == bytes.count && name.elementsEqual(bytes) {
            self = algorithm
            return
        }
        return nil
    }

    private static let names: [(Algorithm, [UInt8])] = allCases.map { ($0, Array($0.rawValue.utf8)) }

    /// One bit per algorithm, for allow-lists checked per token.
    var bit: UInt16 {
        switch self {
        case .hs256: 1 << 0
        case .hs384: 1 << 1
        case .hs512: 1 << 2
        case .rs256: 1 << 3
        case .rs384: 1 << 4
        case .rs512: 1 << 5
        case .ps256: 1 << 6
        case .ps384: 1 << 7
        case .ps512: 1 << 8
        case .es256: 1 << 9
        case .es384: 1 << 10
        case .es512: 1 << 11
        case .edDSA: 1 << 12
        }
    }

    /// How the algorithm uses its key.
    public enum Family: Sendable, Hashable {
        case hmac(Digest)
        case signature(SignatureScheme)
    }

    public var family: Family {
        switch self {
        case .hs256: .hmac(.sha256)
        case .hs384: .hmac(.sha384)
        case .hs512: .hmac(.sha512)
        case .rs256: .signature(.rsaPKCS1(.sha256))
        case .rs384: .signature(.rsaPKCS1(.sha384))
        case .rs512: .signature(.rsaPKCS1(.sha512))
        case .ps256: .signature(.rsaPSS(.sha256))
        case .ps384: .signature(.rsaPSS(.sha384))
        case .ps512: .signature(.rsaPSS(.sha512))
        case .es256: .signature(.ecdsa(.sha256))
        case .es384: .signature(.ecdsa(.sha384))
        case .es512: .signature(.ecdsa(.sha512))
        case .edDSA: .signature(.ed25519)
        }
    }

    /// Whether this is an HMAC algorithm (a shared secret, never a public key).
    public var isHMAC: Bool {
        if case .hmac = self.family { return true }
        return false
    }

    /// The algorithms a key of this kind can serve.
    public static func candidates(for kind: EVPKey.Kind) -> [Algorithm] {
        switch kind {
        case .rsa: [.rs256, .rs384, .rs512, .ps256, .ps384, .ps512]
        case .ec(.p256): [.es256]
        case .ec(.p384): [.es384]
        case .ec(.p521): [.es512]
        case .ed25519: [.edDSA]
        }
    }

    public static func < (lhs: Algorithm, rhs: Algorithm) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// Smallest RSA modulus accepted for signing or verifying (RFC 7518 §3.3).
public let minimumRSABits = 2048
