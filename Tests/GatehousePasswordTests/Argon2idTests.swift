// SPDX-License-Identifier: Apache-2.0
import GatehousePassword
import Testing

@Suite("Argon2id")
struct Argon2idTests {
    /// Cheap parameters: the tests check behaviour, not cost.
    let cheap = Argon2Parameters(memoryKiB: 64, iterations: 1, parallelism: 1)

    @Test("RFC 9106 §5.3 test vector (with secret and associated data)")
    func rfc9106Vector() throws {
        let tag = try Argon2id.tag(
            password: [UInt8](repeating: 0x01, count: 32), salt: [UInt8](repeating: 0x02, count: 16),
            secret: [UInt8](repeating: 0x03, count: 8), associatedData: [UInt8](repeating: 0x04, count: 12),
            parameters: Argon2Parameters(memoryKiB: 32, iterations: 3, parallelism: 4)
        )
        let expected: [UInt8] = [
            0x0d, 0x64, 0x0d, 0xf5, 0x8d, 0x78, 0x76, 0x6c, 0x08, 0xc0, 0x37, 0xa3, 0x4a, 0x8b, 0x53, 0xc9,
            0xd0, 0x1e, 0xf0, 0x45, 0x2d, 0x75, 0xb6, 0x5e, 0xb5, 0x25, 0x20, 0xe9, 0x6b, 0x01, 0xe6, 0x59,
        ]
        #expect(tag == expected)
    }

    @Test("PHC strings verify the right password only, with a fresh salt each time")
    func hashAndVerify() throws {
        let password = Array("correct horse battery staple".utf8)
        let first = try Argon2id.hash(password: password, parameters: self.cheap)
        let second = try Argon2id.hash(password: password, parameters: self.cheap)
        #expect(first.hasPrefix("$argon2id$v=19$m=64,t=1,p=1$"))
        #expect(first != second, "salts differ")
        #expect(Argon2id.verify(password: password, encoded: first))
        #expect(!Argon2id.verify(password: Array("correct horse battery stapler".utf8), encoded: first))
        #expect(!Argon2id.verify(password: password, encoded: "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaA"))
        #expect(!Argon2id.verify(password: password, encoded: "plaintext"))
    }

    @Test("PHC parameters are read back and decide re-hashing")
    func rehash() throws {
        let encoded = try Argon2id.hash(password: [1, 2, 3], parameters: self.cheap)
        let phc = try #require(PHCString(encoded))
        #expect(phc.parameters == self.cheap && phc.version == 19)
        #expect(!phc.needsRehash(for: self.cheap))
        #expect(phc.needsRehash(for: .owasp))
        for bad in ["", "$argon2id$v=19$m=64,t=1$s$h", "$argon2id$v=19$m=64,t=1,p=0$s$h", "$argon2id$v=x$m=1,t=1,p=1$s$h"] {
            #expect(PHCString(bad) == nil, "\(bad)")
        }
    }

    @Test("libargon2 errors surface with their message")
    func errors() {
        #expect(throws: Argon2Error.self) {
            try Argon2id.tag(password: [1], salt: [1, 2], parameters: self.cheap)  // salt too short
        }
    }
}
