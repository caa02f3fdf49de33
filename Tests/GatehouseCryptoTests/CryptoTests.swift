// SPDX-License-Identifier: Apache-2.0
@testable import GatehouseCrypto
import Foundation
import Testing

@Suite("small helpers: constant-time comparison, hex")
struct HelperTests {
    @Test("constantTimeEquals: equal bytes and strings only, any length")
    func constantTime() {
        func bytes(_ a: [UInt8], _ b: [UInt8]) -> Bool {
            a.withUnsafeBytes { a in b.withUnsafeBytes { b in constantTimeEquals(a, b) } }
        }
        #expect(bytes([], []) && bytes([1, 2, 3], [1, 2, 3]))
        #expect(!bytes([1, 2, 3], [1, 2, 4]) && !bytes([1, 2, 3], [1, 2]) && !bytes([], [0]))
        #expect(constantTimeEquals("", "") && constantTimeEquals("s3cr3t-é", "s3cr3t-é"))
        #expect(!constantTimeEquals("secret", "Secret") && !constantTimeEquals("secret", "secret ") && !constantTimeEquals("a", ""))
    }

    @Test("Hex: lower-case text of any bytes; a nibble's digit in either case")
    func hex() {
        #expect(Hex.encode([]) == "")
        #expect(Hex.encode([0x00, 0x01, 0x7F, 0x80, 0xAB, 0xFF]) == "00017f80abff")
        #expect(Hex.encode([UInt8](0...255)).count == 512)
        #expect(Hex.encode(ArraySlice([0xDE, 0xAD, 0xBE, 0xEF])) == "deadbeef")
        #expect((0...15).map { Hex.digit(UInt8($0)) } == Array("0123456789abcdef".utf8))
        #expect((0...15).map { Hex.digit(UInt8($0), uppercase: true) } == Array("0123456789ABCDEF".utf8))
        #expect(Hex.digit(0xF3) == UInt8(ascii: "3"), "only the low nibble counts")
    }
}

@Suite("libcrypto wrappers")
struct CryptoTests {
    static let specifications: [(EVPKey.Specification, SignatureScheme)] = [
        (.ec(.p256), .ecdsa(.sha256)), (.ec(.p384), .ecdsa(.sha384)), (.ec(.p521), .ecdsa(.sha512)),
        (.ed25519, .ed25519), (.rsa(bits: 2048), .rsaPKCS1(.sha256)), (.rsa(bits: 2048), .rsaPSS(.sha512)),
    ]

    @Test("generated keys survive a PEM round trip, private and public")
    func pemRoundTrip() throws {
        for (specification, scheme) in Self.specifications {
            let key = try EVPKey.generate(specification)
            #expect(key.isPrivate)
            let restored = try EVPKey(pem: try key.privateKeyPEM())
            #expect(restored.isPrivate && restored.kind == key.kind)
            let publicKey = try EVPKey(pem: try key.publicKeyPEM())
            #expect(!publicKey.isPrivate && publicKey.kind == key.kind)
            #expect(throws: OpenSSLError.self) { try publicKey.privateKeyPEM() }
            let message = Array("signed by \(scheme)".utf8)
            let signature = try restored.sign(message, scheme: scheme)
            let verifier = try PreparedVerifier(key: publicKey, scheme: scheme)
            #expect(signature.withUnsafeBytes { s in message.withUnsafeBytes { verifier.verify(signature: s, message: $0) } })
            #expect(throws: OpenSSLError.self) { try publicKey.sign(message, scheme: scheme) }
        }
    }

    @Test("a prepared signer's signatures verify, again and again and from several threads; a public key cannot prepare one")
    func preparedSigner() async throws {
        for (specification, scheme) in Self.specifications {
            let key = try EVPKey.generate(specification)
            let signer = try PreparedSigner(key: key, scheme: scheme)
            let verifier = try PreparedVerifier(key: try key.publicKey(), scheme: scheme)
            #expect(throws: OpenSSLError.self) { try PreparedSigner(key: try key.publicKey(), scheme: scheme) }
            try await withThrowingTaskGroup(of: Bool.self) { group in
                for task in 0..<4 {
                    group.addTask {
                        var valid = true
                        for round in 0..<5 {
                            let message = Array("message \(task) \(round)".utf8)
                            let signature = try signer.sign(message)
                            valid = valid && signature.withUnsafeBytes { s in message.withUnsafeBytes { verifier.verify(signature: s, message: $0) } }
                        }
                        return valid
                    }
                }
                for try await valid in group { #expect(valid, "\(scheme)") }
            }
        }
    }

    @Test("PEM that is garbage, encrypted or of another key type is refused without a prompt")
    func badPEM() throws {
        #expect(throws: OpenSSLError.self) { try EVPKey(pem: "not a key") }
        #expect(throws: OpenSSLError.self) { try EVPKey(pem: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n") }
        // An encrypted PKCS#8 key (passphrase "secret") must fail at once instead of asking the terminal.
        let encrypted = """
            -----BEGIN ENCRYPTED PRIVATE KEY-----
            MIH0MF8GCSqGSIb3DQEFDTBSMDEGCSqGSIb3DQEFDDAkBBAqLHxEcRxgJB4sxdq1
            VqB3AgIIADAMBggqhkiG9w0CCQUAMB0GCWCGSAFlAwQBKgQQO3eXmTnkPaL/kC7X
            1a1h6ASBkKbodHEQeO3MPorr5yMdUA7F9toinPup7vUK1fi60u3q9PwmYyk026MQ
            fO09BPgz6KIvu+lz6X/Ict6RL7OPc++SUepDqh1BQGNHN4l74DIWO7tmwv2Ikn2r
            DT0MdTUAr3jOs0ouDF8Zb3qYfpsvKMwwR5ltJkPjkiLXkhxOBlk222IrS/byawZa
            3taUwsK1ig==
            -----END ENCRYPTED PRIVATE KEY-----
            """
        #expect(throws: OpenSSLError.self) { try EVPKey(pem: encrypted) }
    }

    @Test("a key refuses a scheme of another kind or curve")
    func schemeFit() throws {
        let p256 = try EVPKey.generate(.ec(.p256))
        #expect(throws: OpenSSLError.self) { try PreparedVerifier(key: p256, scheme: .ecdsa(.sha384)) }
        #expect(throws: OpenSSLError.self) { try PreparedVerifier(key: p256, scheme: .rsaPKCS1(.sha256)) }
        #expect(throws: OpenSSLError.self) { try p256.sign([1], scheme: .ed25519) }
    }

    @Test("EC points off the curve and mismatched private scalars are refused")
    func ecConsistency() throws {
        let key = try EVPKey.generate(.ec(.p256))
        var components = try #require(key.ecComponents())
        #expect(try EVPKey.ec(components).isPrivate)
        var offCurve = components
        offCurve.d = nil
        offCurve.y[31] ^= 1
        #expect(throws: OpenSSLError.self) { try EVPKey.ec(offCurve) }
        let other = try #require(try EVPKey.generate(.ec(.p256)).ecComponents())
        components.d = other.d
        #expect(throws: OpenSSLError.self) { try EVPKey.ec(components) }
        var short = other
        short.x.removeFirst()
        #expect(throws: OpenSSLError.self) { try EVPKey.ec(short) }
    }

    @Test("raw r‖s to DER: minimal integers, sign padding, P-521's long length form, range checks")
    func ecdsaDER() throws {
        func der(_ raw: [UInt8], _ curve: EVPKey.Curve) -> [UInt8]? {
            raw.withUnsafeBytes { input in
                withUnsafeTemporaryAllocation(byteCount: 160, alignment: 1) { output in
                    ECDSASignature.derFromRaw(input, curve: curve, into: output).map { Array(output[0..<$0]) }
                }
            }
        }
        let one = [UInt8](repeating: 0, count: 31) + [1]
        let high = [UInt8](repeating: 0, count: 31) + [0x80]
        #expect(der(one + high, .p256) == [0x30, 0x07, 0x02, 0x01, 0x01, 0x02, 0x02, 0x00, 0x80])
        #expect(der(one + one, .p384) == nil, "wrong size for the curve")
        #expect(der([UInt8](repeating: 0, count: 64), .p256) == nil)
        let n = EVPKey.Curve.p256.order
        var nMinusOne = n
        nMinusOne[31] -= 1
        #expect(der(n + one, .p256) == nil && der(one + n, .p256) == nil)
        let expectedLength = 2 + 2 + 33 + 2 + 1
        #expect(der(nMinusOne + one, .p256)?.count == expectedLength)
        // P-521: two 66-byte integers need a content length over 127.
        var r521 = EVPKey.Curve.p521.order
        r521[65] -= 1
        let long = try #require(der(r521 + r521, .p521))
        #expect(long[0] == 0x30 && long[1] == 0x81 && Int(long[2]) == long.count - 3)
        for curve in EVPKey.Curve.allCases { #expect(curve.order.count == curve.coordinateByteCount) }
        // And back: a real DER signature converts to raw r‖s of the curve's size.
        let key = try EVPKey.generate(.ec(.p521))
        #expect(try key.sign([1, 2, 3], scheme: .ecdsa(.sha512)).count == 132)
    }

    @Test("HMAC matches RFC 4231 test case 2 and compares in constant time")
    func hmac() {
        let mac = PreparedMAC(secret: Array("Jefe".utf8), digest: .sha256)
        let tag = mac.authenticate(Array("what do ya want for nothing?".utf8))
        #expect(tag.map { String(format: "%02x", $0) }.joined() == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        let message = Array("what do ya want for nothing?".utf8)
        #expect(tag.withUnsafeBytes { t in message.withUnsafeBytes { mac.verify(tag: t, message: $0) } })
        var wrong = tag
        wrong[31] ^= 1
        #expect(!wrong.withUnsafeBytes { t in message.withUnsafeBytes { mac.verify(tag: t, message: $0) } })
        #expect(!Array(tag[0..<16]).withUnsafeBytes { t in message.withUnsafeBytes { mac.verify(tag: t, message: $0) } })
    }

    @Test("SHA-2 digests match FIPS 180 'abc'")
    func digests() {
        let abc = Array("abc".utf8)
        #expect(Digest.sha256.hash(abc).prefix(4) == [0xba, 0x78, 0x16, 0xbf])
        #expect(Digest.sha384.hash(abc).prefix(4) == [0xcb, 0x00, 0x75, 0x3f])
        #expect(Digest.sha512.hash(abc).prefix(4) == [0xdd, 0xaf, 0x35, 0xa1])
        #expect(SecureRandom.bytes(32) != SecureRandom.bytes(32))
    }

    @Test("verifiers used from many threads at once agree, each thread with its own contexts")
    func concurrentVerification() async throws {
        let key = try EVPKey.generate(.ec(.p256))
        let verifier = try PreparedVerifier(key: try key.publicKey(), scheme: .ecdsa(.sha256))
        let mac = PreparedMAC(secret: SecureRandom.bytes(32), digest: .sha256)
        let message = Array("concurrent".utf8)
        let signature = try key.sign(message, scheme: .ecdsa(.sha256))
        let tag = mac.authenticate(message)
        var tampered = signature
        tampered[5] ^= 1
        let forged = tampered
        let results = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    var good = 0
                    for round in 0..<200 {
                        let candidate = round % 2 == 0 ? signature : forged
                        let ok = candidate.withUnsafeBytes { s in message.withUnsafeBytes { verifier.verify(signature: s, message: $0) } }
                        let macOK = tag.withUnsafeBytes { t in message.withUnsafeBytes { mac.verify(tag: t, message: $0) } }
                        if ok == (round % 2 == 0) && macOK { good += 1 }
                    }
                    return good
                }
            }
            return await group.reduce(0, +)
        }
        #expect(results == 1600)
    }

    @Test("a thread's context cache stays correct past its capacity")
    func contextCacheEviction() throws {
        let message = Array("m".utf8)
        var checks: [(PreparedMAC, [UInt8])] = []
        for _ in 0..<300 {
            let mac = PreparedMAC(secret: SecureRandom.bytes(32), digest: .sha256)
            checks.append((mac, mac.authenticate(message)))
        }
        for (mac, tag) in checks {
            #expect(tag.withUnsafeBytes { t in message.withUnsafeBytes { mac.verify(tag: t, message: $0) } })
        }
    }
}

@Suite struct WebSocketAcceptTests {
    @Test func rfc6455Example() {
        // RFC 6455 §1.3's worked example.
        #expect(WebSocketAccept.value(forKey: "dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }
}
