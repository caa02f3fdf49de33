// SPDX-License-Identifier: Apache-2.0
internal import CGatehouseOpenSSL
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The numbers of an RSA key, big-endian and unsigned; the private ones are nil for a public key.
public struct RSAComponents: Sendable, Equatable {
    public var modulus: [UInt8]
    public var publicExponent: [UInt8]
    public var privateExponent: [UInt8]?
    public var prime1: [UInt8]?
    public var prime2: [UInt8]?
    public var exponent1: [UInt8]?
    public var exponent2: [UInt8]?
    public var coefficient: [UInt8]?

    public init(
        modulus: [UInt8], publicExponent: [UInt8], privateExponent: [UInt8]? = nil,
        prime1: [UInt8]? = nil, prime2: [UInt8]? = nil,
        exponent1: [UInt8]? = nil, exponent2: [UInt8]? = nil, coefficient: [UInt8]? = nil
    ) {
        self.modulus = modulus
        self.publicExponent = publicExponent
        self.privateExponent = privateExponent
        self.prime1 = prime1
        self.prime2 = prime2
        self.exponent1 = exponent1
        self.exponent2 = exponent2
        self.coefficient = coefficient
    }
}

/// The coordinates (each exactly the curve's size) and, for a private key, the scalar of an EC key.
public struct ECComponents: Sendable, Equatable {
    public var curve: EVPKey.Curve
    public var x: [UInt8]
    public var y: [UInt8]
    public var d: [UInt8]?

    public init(curve: EVPKey.Curve, x: [UInt8], y: [UInt8], d: [UInt8]? = nil) {
        self.curve = curve
        self.x = x
        self.y = y
        self.d = d
    }
}

extension EVPKey {
    // MARK: Import

    /// An RSA key from its numbers. With `privateExponent`, a private key (the CRT numbers are optional
    /// but all-or-nothing).
    public static func rsa(_ components: RSAComponents) throws(OpenSSLError) -> EVPKey {
        let crt = [components.prime1, components.prime2, components.exponent1, components.exponent2, components.coefficient]
        let crtCount = crt.count { $0 != nil }
        guard crtCount == 0 || (crtCount == crt.count && components.privateExponent != nil) else {
            throw OpenSSLError(operation: "RSA key: p, q, dp, dq and qi come together, with d", details: [])
        }
        var numbers: [(String, [UInt8])] = [
            (OSSL_PKEY_PARAM_RSA_N, components.modulus), (OSSL_PKEY_PARAM_RSA_E, components.publicExponent),
        ]
        if let d = components.privateExponent { numbers.append((OSSL_PKEY_PARAM_RSA_D, d)) }
        if crtCount > 0 {
            numbers += [
                ("rsa-factor1", components.prime1!), ("rsa-factor2", components.prime2!),
                ("rsa-exponent1", components.exponent1!),
                ("rsa-exponent2", components.exponent2!),
                ("rsa-coefficient1", components.coefficient!),
            ]
        }
        return try fromData(
            algorithm: "RSA", isPrivate: components.privateExponent != nil, bigNumbers: numbers, strings: [], octets: []
        )
    }

    /// An EC key from its coordinates (and scalar). The point must lie on the curve.
    public static func ec(_ components: ECComponents) throws(OpenSSLError) -> EVPKey {
        let size = components.curve.coordinateByteCount
        guard components.x.count == size, components.y.count == size, components.d.map({ $0.count == size }) ?? true else {
            throw OpenSSLError(operation: "EC key: x, y and d must be exactly \(size) bytes on \(components.curve.rawValue)", details: [])
        }
        let point = [0x04] + components.x + components.y
        var numbers: [(String, [UInt8])] = []
        if let d = components.d { numbers.append((OSSL_PKEY_PARAM_PRIV_KEY, d)) }
        let key = try fromData(
            algorithm: "EC", isPrivate: components.d != nil, bigNumbers: numbers,
            strings: [(OSSL_PKEY_PARAM_GROUP_NAME, components.curve.groupName)],
            octets: [(OSSL_PKEY_PARAM_PUB_KEY, point)]
        )
        try key.checkConsistency()
        return key
    }

    /// An Ed25519 key from its 32-byte public key, or from its 32-byte private seed (whose public key
    /// must then match `publicKey` when both are given).
    public static func ed25519(publicKey: [UInt8], privateKey: [UInt8]? = nil) throws(OpenSSLError) -> EVPKey {
        guard publicKey.count == 32, privateKey.map({ $0.count == 32 }) ?? true else {
            throw OpenSSLError(operation: "Ed25519 key: x and d must be 32 bytes", details: [])
        }
        let pointer: OpaquePointer?
        if let privateKey {
            pointer = EVP_PKEY_new_raw_private_key_ex(nil, "ED25519", nil, privateKey, 32)
        } else {
            pointer = EVP_PKEY_new_raw_public_key_ex(nil, "ED25519", nil, publicKey, 32)
        }
        guard let pointer else { throw OpenSSLError.drain("Ed25519 key") }
        let key = try EVPKey(takingOwnershipOf: pointer)
        if privateKey != nil, key.ed25519PublicKey() != publicKey {
            throw OpenSSLError(operation: "Ed25519 key: x does not belong to d", details: [])
        }
        return key
    }

    private static func fromData(
        algorithm: String, isPrivate: Bool, bigNumbers: [(String, [UInt8])], strings: [(String, String)],
        octets: [(String, [UInt8])]
    ) throws(OpenSSLError) -> EVPKey {
        guard let builder = OSSL_PARAM_BLD_new() else { throw OpenSSLError.drain("OSSL_PARAM_BLD_new") }
        defer { OSSL_PARAM_BLD_free(builder) }
        var owned: [OpaquePointer] = []
        defer { owned.forEach { BN_clear_free($0) } }
        // The builder keeps every pointer it is given, names and values, until OSSL_PARAM_BLD_to_param:
        // Swift's temporary buffers would be gone by then, so copies are made and owned here. (The
        // names of the RSA CRT parameters are built by string concatenation in the headers, which
        // Swift cannot import: they are spelled out above.)
        var copies: [UnsafeMutableRawPointer] = []
        defer { copies.forEach { free($0) } }
        func copy(_ bytes: [UInt8]) -> UnsafeMutableRawPointer {
            let pointer = malloc(bytes.count + 1)!
            pointer.copyMemory(from: bytes, byteCount: bytes.count)
            pointer.storeBytes(of: 0, toByteOffset: bytes.count, as: UInt8.self)
            copies.append(pointer)
            return pointer
        }
        func name(_ name: String) -> UnsafeMutablePointer<CChar> {
            copy(Array(name.utf8)).assumingMemoryBound(to: CChar.self)
        }
        for (key, bytes) in bigNumbers {
            guard let number = BN_bin2bn(bytes, Int32(bytes.count), nil) else { throw OpenSSLError.drain("BN_bin2bn") }
            owned.append(number)
            try check(OSSL_PARAM_BLD_push_BN(builder, name(key), number), "OSSL_PARAM_BLD_push_BN(\(key))")
        }
        for (key, value) in strings {
            let utf8 = Array(value.utf8)
            let pointer = copy(utf8).assumingMemoryBound(to: CChar.self)
            try check(OSSL_PARAM_BLD_push_utf8_string(builder, name(key), pointer, utf8.count), "push \(key)")
        }
        for (key, value) in octets {
            try check(OSSL_PARAM_BLD_push_octet_string(builder, name(key), copy(value), value.count), "push \(key)")
        }
        guard let parameters = OSSL_PARAM_BLD_to_param(builder) else { throw OpenSSLError.drain("OSSL_PARAM_BLD_to_param") }
        defer { OSSL_PARAM_free(parameters) }
        guard let context = EVP_PKEY_CTX_new_from_name(nil, algorithm, nil) else {
            throw OpenSSLError.drain("EVP_PKEY_CTX_new_from_name(\(algorithm))")
        }
        defer { EVP_PKEY_CTX_free(context) }
        try check(EVP_PKEY_fromdata_init(context), "EVP_PKEY_fromdata_init")
        var key: OpaquePointer? = nil
        let selection = isPrivate ? CGatehouseOpenSSL_keypair_selection() : CGatehouseOpenSSL_public_key_selection()
        try check(EVP_PKEY_fromdata(context, &key, selection, parameters), "EVP_PKEY_fromdata(\(algorithm))")
        return try EVPKey(takingOwnershipOf: key!)
    }

    /// Refuses a public point off the curve, or a private scalar that does not match its public point.
    private func checkConsistency() throws(OpenSSLError) {
        guard let context = EVP_PKEY_CTX_new_from_pkey(nil, self.pointer, nil) else {
            throw OpenSSLError.drain("EVP_PKEY_CTX_new_from_pkey")
        }
        defer { EVP_PKEY_CTX_free(context) }
        try check(EVP_PKEY_public_check(context), "EC public key check")
        if self.isPrivate { try check(EVP_PKEY_pairwise_check(context), "EC key pair check") }
    }

    // MARK: Export

    /// The RSA numbers, minimal big-endian; nil if this is not an RSA key.
    public func rsaComponents() -> RSAComponents? {
        guard case .rsa = self.kind else { return nil }
        func number(_ name: String) -> [UInt8]? { self.bigNumber(name, paddedTo: nil) }
        return RSAComponents(
            modulus: number(OSSL_PKEY_PARAM_RSA_N) ?? [], publicExponent: number(OSSL_PKEY_PARAM_RSA_E) ?? [],
            privateExponent: number(OSSL_PKEY_PARAM_RSA_D),
            prime1: number("rsa-factor1"), prime2: number("rsa-factor2"),
            exponent1: number("rsa-exponent1"), exponent2: number("rsa-exponent2"),
            coefficient: number("rsa-coefficient1")
        )
    }

    /// The EC coordinates and scalar, each padded to the curve's size; nil if this is not an EC key.
    public func ecComponents() -> ECComponents? {
        guard case .ec(let curve) = self.kind else { return nil }
        let size = curve.coordinateByteCount
        return ECComponents(
            curve: curve,
            x: self.bigNumber(OSSL_PKEY_PARAM_EC_PUB_X, paddedTo: size) ?? [],
            y: self.bigNumber(OSSL_PKEY_PARAM_EC_PUB_Y, paddedTo: size) ?? [],
            d: self.bigNumber(OSSL_PKEY_PARAM_PRIV_KEY, paddedTo: size)
        )
    }

    /// The raw 32-byte Ed25519 public key; nil if this is not an Ed25519 key.
    public func ed25519PublicKey() -> [UInt8]? {
        guard case .ed25519 = self.kind else { return nil }
        var bytes = [UInt8](repeating: 0, count: 32)
        var length = 32
        guard EVP_PKEY_get_raw_public_key(self.pointer, &bytes, &length) == 1, length == 32 else { return nil }
        return bytes
    }

    /// The raw 32-byte Ed25519 private seed; nil for a public key or another kind.
    public func ed25519PrivateKey() -> [UInt8]? {
        guard case .ed25519 = self.kind, self.isPrivate else { return nil }
        var bytes = [UInt8](repeating: 0, count: 32)
        var length = 32
        guard EVP_PKEY_get_raw_private_key(self.pointer, &bytes, &length) == 1, length == 32 else { return nil }
        return bytes
    }

    private func bigNumber(_ name: String, paddedTo size: Int?) -> [UInt8]? {
        var number: OpaquePointer? = nil
        defer { BN_clear_free(number) }
        guard EVP_PKEY_get_bn_param(self.pointer, name, &number) == 1, let number else {
            OpenSSLError.clearQueue()
            return nil
        }
        let length = size ?? Int((BN_num_bits(number) + 7) / 8)
        var bytes = [UInt8](repeating: 0, count: length)
        guard BN_bn2binpad(number, &bytes, Int32(length)) == length else { return nil }
        return bytes
    }
}
