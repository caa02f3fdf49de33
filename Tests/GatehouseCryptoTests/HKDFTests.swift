// SPDX-License-Identifier: Apache-2.0
import GatehouseCrypto
import Testing

private func bytes(hex: String) -> [UInt8] {
    var result: [UInt8] = []
    var index = hex.startIndex
    while index < hex.endIndex {
        let next = hex.index(index, offsetBy: 2)
        result.append(UInt8(hex[index..<next], radix: 16)!)
        index = next
    }
    return result
}

@Suite("HKDF-SHA256")
struct HKDFTests {
    @Test("RFC 5869 A.1: basic test case with SHA-256")
    func rfc5869A1() throws {
        let okm = try HKDF.sha256(
            inputKeyMaterial: [UInt8](repeating: 0x0b, count: 22), salt: bytes(hex: "000102030405060708090a0b0c"),
            info: bytes(hex: "f0f1f2f3f4f5f6f7f8f9"), length: 42
        )
        #expect(okm == bytes(hex: "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"))
    }

    @Test("RFC 5869 A.3: zero-length salt and info")
    func rfc5869A3() throws {
        let okm = try HKDF.sha256(inputKeyMaterial: [UInt8](repeating: 0x0b, count: 22), info: [], length: 42)
        #expect(okm == bytes(hex: "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"))
    }

    @Test("private key bytes: the same for a key and its PEM round trip, different per key, refused for a public key")
    func privateKeyBytes() throws {
        for specification in [EVPKey.Specification.ec(.p256), .ec(.p521), .ed25519, .rsa(bits: 2048)] {
            let key = try EVPKey.generate(specification)
            let restored = try EVPKey(pem: try key.privateKeyPEM())
            let secret = try key.privateKeyBytes()
            #expect(secret.count >= 32)
            #expect(try restored.privateKeyBytes() == secret)
            #expect(try EVPKey.generate(specification).privateKeyBytes() != secret)
            #expect(throws: OpenSSLError.self) { try key.publicKey().privateKeyBytes() }
        }
    }
}
