// SPDX-License-Identifier: Apache-2.0
import GatehouseCrypto

/// One key as configuration hands it over, before it is prepared.
public struct ConfiguredKey: Sendable {
    public var keyID: String?
    public var material: KeyMaterial
    /// The one algorithm the key is for (a JWK's `alg`), or nil to allow every algorithm its kind
    /// fits that the policy allows.
    public var algorithm: Algorithm?

    public init(keyID: String?, material: KeyMaterial, algorithm: Algorithm? = nil) {
        self.keyID = keyID
        self.material = material
        self.algorithm = algorithm
    }

    /// The key a JWK describes, with its `kid` (the RFC 7638 thumbprint when it has none) and `alg`.
    public init(jwk: JWK) throws(KeyError) {
        var algorithm: Algorithm? = nil
        if let name = jwk.algorithm {
            guard let known = Algorithm(rawValue: name) else { throw KeyError("JWK alg \"\(name)\" is not supported") }
            algorithm = known
        }
        self.init(keyID: jwk.keyID ?? jwk.thumbprint, material: try jwk.makeKey(), algorithm: algorithm)
    }
}

/// A key ready to verify: one prepared libcrypto context per algorithm it may serve.
public struct VerificationKey: Sendable {
    enum Prepared: Sendable {
        case signature(PreparedVerifier)
        case mac(PreparedMAC)

        @inline(__always)
        func verify(signature: UnsafeRawBufferPointer, message: UnsafeRawBufferPointer) -> Bool {
            switch self {
            case .signature(let verifier): verifier.verify(signature: signature, message: message)
            case .mac(let mac): mac.verify(tag: signature, message: message)
            }
        }
    }

    public let keyID: String?
    /// One entry per algorithm the key serves (a handful at most: scanned, not hashed).
    let prepared: [(algorithm: Algorithm, verifier: Prepared)]

    /// The algorithms this key verifies.
    public var algorithms: [Algorithm] { self.prepared.map(\.algorithm).sorted() }

    @inline(__always)
    func prepared(for algorithm: Algorithm) -> Prepared? {
        for entry in self.prepared where entry.algorithm == algorithm { return entry.verifier }
        return nil
    }
}

/// An immutable set of verification keys, looked up by `kid` (exactly) and algorithm.
///
/// The key decides the algorithm: a token's `alg` must be one its key was prepared for, so an RSA or
/// EC public key can never serve as an HMAC secret.
public struct KeySet: Sendable {
    private let byID: [String: VerificationKey]
    /// The same keys with their kid's bytes, searched linearly while there are few.
    private let smallByID: [([UInt8], VerificationKey)]
    /// Keys by algorithm, for tokens that carry no `kid`.
    private let byAlgorithm: [Algorithm: [VerificationKey]]
    /// Every key, in configuration order.
    public let keys: [VerificationKey]

    public static let empty = KeySet(prepared: [])

    private init(prepared keys: [VerificationKey]) {
        self.keys = keys
        var byID: [String: VerificationKey] = [:]
        var byAlgorithm: [Algorithm: [VerificationKey]] = [:]
        for key in keys {
            if let kid = key.keyID { byID[kid] = key }
            for entry in key.prepared { byAlgorithm[entry.algorithm, default: []].append(key) }
        }
        self.byID = byID
        self.smallByID = byID.count <= 8 ? byID.map { (Array($0.key.utf8), $0.value) } : []
        self.byAlgorithm = byAlgorithm
    }

    /// Prepares `keys` for the algorithms in `allowed`.
    ///
    /// A key that can serve none of them, an RSA key under 2048 bits, an HMAC secret shorter than its
    /// digest (RFC 7518 §3.2), or a repeated `kid` is an error — unless `skippingUnusable`, for a
    /// JWKS fetched from an identity provider that also publishes keys for other purposes.
    public init(_ keys: [ConfiguredKey], allowed: Set<Algorithm>, skippingUnusable: Bool = false) throws(KeyError) {
        var prepared: [VerificationKey] = []
        var seen: Set<String> = []
        for key in keys {
            let name = key.keyID.map { "key \"\($0)\"" } ?? "key without kid"
            do throws(KeyError) {
                if let kid = key.keyID, !seen.insert(kid).inserted { throw KeyError("\(name) appears twice") }
                prepared.append(try Self.prepare(key, allowed: allowed, name: name))
            } catch {
                if !skippingUnusable { throw error }
            }
        }
        self.init(prepared: prepared)
    }

    private static func prepare(_ key: ConfiguredKey, allowed: Set<Algorithm>, name: String) throws(KeyError) -> VerificationKey {
        var candidates: [Algorithm]
        switch key.material {
        case .asymmetric(let evpKey):
            if case .rsa(let bits) = evpKey.kind, bits < minimumRSABits {
                throw KeyError("\(name): RSA keys need at least \(minimumRSABits) bits, this one has \(bits)")
            }
            candidates = Algorithm.candidates(for: evpKey.kind)
        case .secret(let secret):
            candidates = [.hs256, .hs384, .hs512].filter { algorithm in
                guard case .hmac(let digest) = algorithm.family else { return false }
                return secret.count >= digest.byteCount
            }
            if candidates.isEmpty { throw KeyError("\(name): HMAC secrets need at least 32 bytes") }
        }
        if let algorithm = key.algorithm {
            guard candidates.contains(algorithm) else { throw KeyError("\(name): its alg \(algorithm.rawValue) does not fit the key") }
            candidates = [algorithm]
        }
        candidates = candidates.filter(allowed.contains)
        guard !candidates.isEmpty else {
            throw KeyError("\(name) fits none of the allowed algorithms (\(allowed.sorted().map(\.rawValue).joined(separator: ", ")))")
        }
        var prepared: [(algorithm: Algorithm, verifier: VerificationKey.Prepared)] = []
        for algorithm in candidates {
            switch (algorithm.family, key.material) {
            case (.hmac(let digest), .secret(let secret)):
                prepared.append((algorithm, .mac(PreparedMAC(secret: secret, digest: digest))))
            case (.signature(let scheme), .asymmetric(let evpKey)):
                let publicKey: EVPKey
                do {
                    publicKey = evpKey.isPrivate ? try evpKey.publicKey() : evpKey
                    prepared.append((algorithm, .signature(try PreparedVerifier(key: publicKey, scheme: scheme))))
                } catch {
                    throw KeyError("\(name): \(error)")
                }
            default:
                throw KeyError("\(name) cannot serve \(algorithm.rawValue)")
            }
        }
        return VerificationKey(keyID: key.keyID, prepared: prepared)
    }

    /// The outcome of looking a token's key up.
    enum Lookup {
        case found(VerificationKey.Prepared)
        case unknownKeyID
        case algorithmMismatch
    }

    /// The prepared key for a token's `kid` and `alg`. Without a `kid`, only a lone key of that
    /// algorithm qualifies.
    func lookup(keyID: String?, algorithm: Algorithm) -> Lookup {
        if let keyID {
            guard let key = self.byID[keyID] else { return .unknownKeyID }
            guard let prepared = key.prepared(for: algorithm) else { return .algorithmMismatch }
            return .found(prepared)
        }
        guard let candidates = self.byAlgorithm[algorithm], candidates.count == 1 else { return .unknownKeyID }
        return .found(candidates[0].prepared(for: algorithm)!)
    }

    /// The same lookup with the kid as bytes, as the verifier reads it from the token.
    func lookup(keyID: UnsafeRawBufferPointer, algorithm: Algorithm) -> Lookup {
        guard self.smallByID.count == self.byID.count else {
            return self.lookup(keyID: String(decoding: keyID.bindMemory(to: UInt8.self), as: UTF8.self), algorithm: algorithm)
        }
        for (id, key) in self.smallByID where id.count == keyID.count && id.elementsEqual(keyID) {
            guard let prepared = key.prepared(for: algorithm) else { return .algorithmMismatch }
            return .found(prepared)
        }
        return .unknownKeyID
    }

    /// Whether no key is present.
    public var isEmpty: Bool { self.keys.isEmpty }
}
