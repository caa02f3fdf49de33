// SPDX-License-Identifier: Apache-2.0
internal import CGatehouseOpenSSL

/// An asymmetric key held by libcrypto: RSA, EC on a NIST curve, or Ed25519; private or public only.
///
/// Immutable after creation, so one instance may be shared by every thread.
public final class EVPKey: @unchecked Sendable {
    /// The elliptic curves JOSE names.
    public enum Curve: String, Sendable, Hashable, CaseIterable {
        case p256 = "P-256"
        case p384 = "P-384"
        case p521 = "P-521"

        /// OpenSSL's group name.
        var groupName: String {
            switch self {
            case .p256: "prime256v1"
            case .p384: "secp384r1"
            case .p521: "secp521r1"
            }
        }

        /// Bytes in one coordinate, one scalar, and in each half of a JOSE r‖s signature.
        public var coordinateByteCount: Int {
            switch self {
            case .p256: 32
            case .p384: 48
            case .p521: 66
            }
        }

        init?(groupName: String) {
            switch groupName {
            case "prime256v1", "P-256", "secp256r1": self = .p256
            case "secp384r1", "P-384": self = .p384
            case "secp521r1", "P-521": self = .p521
            default: return nil
            }
        }
    }

    /// What kind of key this is.
    public enum Kind: Sendable, Hashable {
        case rsa(bits: Int)
        case ec(Curve)
        case ed25519
    }

    let pointer: OpaquePointer
    /// What kind of key this is.
    public let kind: Kind
    /// Whether the private half is present.
    public let isPrivate: Bool

    /// Takes over one reference to `pointer`; frees it if the key is of no supported kind.
    init(takingOwnershipOf pointer: OpaquePointer) throws(OpenSSLError) {
        self.pointer = pointer
        if EVP_PKEY_is_a(pointer, "RSA") == 1 {
            self.kind = .rsa(bits: Int(EVP_PKEY_get_bits(pointer)))
            self.isPrivate = Self.hasBigNumber(pointer, OSSL_PKEY_PARAM_RSA_D)
        } else if EVP_PKEY_is_a(pointer, "EC") == 1 {
            var name = [CChar](repeating: 0, count: 64)
            var length = 0
            guard EVP_PKEY_get_utf8_string_param(pointer, OSSL_PKEY_PARAM_GROUP_NAME, &name, name.count, &length) == 1,
                let curve = Curve(groupName: name.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
            else {
                EVP_PKEY_free(pointer)
                throw OpenSSLError(operation: "EC key on an unsupported curve", details: [])
            }
            self.kind = .ec(curve)
            self.isPrivate = Self.hasBigNumber(pointer, OSSL_PKEY_PARAM_PRIV_KEY)
        } else if EVP_PKEY_is_a(pointer, "ED25519") == 1 {
            self.kind = .ed25519
            var length = 0
            self.isPrivate = EVP_PKEY_get_raw_private_key(pointer, nil, &length) == 1
        } else {
            EVP_PKEY_free(pointer)
            throw OpenSSLError(operation: "unsupported key type (RSA, EC or Ed25519 expected)", details: [])
        }
        OpenSSLError.clearQueue()
    }

    deinit {
        EVP_PKEY_free(self.pointer)
    }

    private static func hasBigNumber(_ key: OpaquePointer, _ name: String) -> Bool {
        var number: OpaquePointer? = nil
        defer { BN_clear_free(number) }
        return EVP_PKEY_get_bn_param(key, name, &number) == 1
    }

    // MARK: Generation

    /// What `generate` makes.
    public enum Specification: Sendable {
        case rsa(bits: Int)
        case ec(Curve)
        case ed25519
    }

    /// A fresh key pair.
    public static func generate(_ specification: Specification) throws(OpenSSLError) -> EVPKey {
        let algorithm: String
        switch specification {
        case .rsa: algorithm = "RSA"
        case .ec: algorithm = "EC"
        case .ed25519: algorithm = "ED25519"
        }
        guard let context = EVP_PKEY_CTX_new_from_name(nil, algorithm, nil) else {
            throw OpenSSLError.drain("EVP_PKEY_CTX_new_from_name(\(algorithm))")
        }
        defer { EVP_PKEY_CTX_free(context) }
        try check(EVP_PKEY_keygen_init(context), "EVP_PKEY_keygen_init")
        switch specification {
        case .rsa(let bits): try check(EVP_PKEY_CTX_set_rsa_keygen_bits(context, Int32(bits)), "set RSA bits")
        case .ec(let curve): try check(EVP_PKEY_CTX_set_group_name(context, curve.groupName), "set EC group")
        case .ed25519: break
        }
        var key: OpaquePointer? = nil
        try check(EVP_PKEY_generate(context, &key), "EVP_PKEY_generate")
        return try EVPKey(takingOwnershipOf: key!)
    }

    // MARK: PEM

    /// Reads an unencrypted private key (PKCS#8 or traditional) or a SubjectPublicKeyInfo public key.
    public convenience init(pem: String) throws(OpenSSLError) {
        var bytes = Array(pem.utf8)
        let key: OpaquePointer? = bytes.withUnsafeMutableBytes { buffer in
            // BIO_new_mem_buf does not copy: `buffer` outlives the BIO inside this closure.
            guard let bio = BIO_new_mem_buf(buffer.baseAddress, Int32(buffer.count)) else { return nil }
            defer { BIO_free(bio) }
            // The callback refuses every passphrase request: key files are unencrypted, and
            // libcrypto's default would prompt on the terminal.
            if let key = PEM_read_bio_PrivateKey(bio, nil, { _, _, _, _ in 0 }, nil) { return key }
            OpenSSLError.clearQueue()
            _ = BIO_ctrl(bio, BIO_CTRL_RESET, 0, nil)
            return PEM_read_bio_PUBKEY(bio, nil, { _, _, _, _ in 0 }, nil)
        }
        guard let key else { throw OpenSSLError.drain("reading PEM key (unencrypted PKCS#8 or public key expected)") }
        try self.init(takingOwnershipOf: key)
    }

    /// The private key as unencrypted PKCS#8 PEM.
    public func privateKeyPEM() throws(OpenSSLError) -> String {
        guard self.isPrivate else { throw OpenSSLError(operation: "writing a private key from a public key", details: []) }
        return try Self.writePEM("PEM_write_bio_PKCS8PrivateKey") { bio in
            PEM_write_bio_PKCS8PrivateKey(bio, self.pointer, nil, nil, 0, nil, nil)
        }
    }

    /// The public key as SubjectPublicKeyInfo PEM.
    public func publicKeyPEM() throws(OpenSSLError) -> String {
        try Self.writePEM("PEM_write_bio_PUBKEY") { bio in PEM_write_bio_PUBKEY(bio, self.pointer) }
    }

    private static func writePEM(_ operation: String, _ write: (OpaquePointer) -> Int32) throws(OpenSSLError) -> String {
        guard let bio = BIO_new(BIO_s_mem()) else { throw OpenSSLError.drain("BIO_new") }
        defer { BIO_free(bio) }
        try check(write(bio), operation)
        let pending = Int(BIO_ctrl_pending(bio))
        var bytes = [UInt8](repeating: 0, count: pending)
        let read = bytes.withUnsafeMutableBytes { BIO_read(bio, $0.baseAddress, Int32(pending)) }
        guard read == pending else { throw OpenSSLError.drain("BIO_read") }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The public half alone.
    public func publicKey() throws(OpenSSLError) -> EVPKey {
        var der: UnsafeMutablePointer<UInt8>? = nil
        let length = i2d_PUBKEY(self.pointer, &der)
        guard length > 0, let der else { throw OpenSSLError.drain("i2d_PUBKEY") }
        defer { CGatehouseOpenSSL_free(der) }
        var cursor: UnsafePointer<UInt8>? = UnsafePointer(der)
        guard let key = d2i_PUBKEY(nil, &cursor, Int(length)) else { throw OpenSSLError.drain("d2i_PUBKEY") }
        return try EVPKey(takingOwnershipOf: key)
    }
}
