// SPDX-License-Identifier: Apache-2.0
internal import CGatehouseOpenSSL

/// HKDF (RFC 5869) with SHA-256: extract-then-expand, through libcrypto's `EVP_KDF` "HKDF".
public enum HKDF {
    /// `length` bytes (at most 255 × 32) derived from `inputKeyMaterial`, bound to `info`; an
    /// empty `salt` means RFC 5869's default (32 zero bytes).
    public static func sha256(
        inputKeyMaterial: [UInt8], salt: [UInt8] = [], info: [UInt8], length: Int
    ) throws(OpenSSLError) -> [UInt8] {
        precondition(length > 0 && length <= 255 * 32, "HKDF-SHA256 output must be 1 to 8160 bytes")
        var output = [UInt8](repeating: 0, count: length)
        let status = inputKeyMaterial.withUnsafeBufferPointer { ikm in
            salt.withUnsafeBufferPointer { salt in
                info.withUnsafeBufferPointer { info in
                    output.withUnsafeMutableBufferPointer { out in
                        CGatehouseOpenSSL_hkdf_sha256(
                            ikm.baseAddress, ikm.count, salt.baseAddress, salt.count, info.baseAddress, info.count, out.baseAddress, out.count
                        )
                    }
                }
            }
        }
        try check(status, "HKDF-SHA256")
        return output
    }
}

extension EVPKey {
    /// The private key's own secret bytes, as input keying material for derived secrets: the EC
    /// scalar padded to the curve's size, the Ed25519 seed, the RSA key as PKCS#1 DER. None of it is
    /// ever published (unlike anything derived from the public half or its PEM's public parts).
    public func privateKeyBytes() throws(OpenSSLError) -> [UInt8] {
        guard self.isPrivate else { throw OpenSSLError(operation: "reading private key bytes of a public key", details: []) }
        switch self.kind {
        case .ec:
            guard let scalar = self.ecComponents()?.d else { throw OpenSSLError.drain("reading the EC private scalar") }
            return scalar
        case .ed25519:
            guard let seed = self.ed25519PrivateKey() else { throw OpenSSLError.drain("reading the Ed25519 private key") }
            return seed
        case .rsa:
            var der: UnsafeMutablePointer<UInt8>? = nil
            let length = i2d_PrivateKey(self.pointer, &der)
            guard length > 0, let der else { throw OpenSSLError.drain("i2d_PrivateKey") }
            defer {
                OPENSSL_cleanse(der, Int(length))
                CGatehouseOpenSSL_free(der)
            }
            return Array(UnsafeBufferPointer(start: der, count: Int(length)))
        }
    }
}
