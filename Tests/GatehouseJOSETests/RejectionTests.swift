// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatehouseCrypto
import GatehouseJOSE
import Testing

@Suite("One test per rejection rule, reason asserted")
struct RejectionTests {
    let factory: TokenFactory

    init() throws { self.factory = try TokenFactory() }

    @Test("a well-formed token verifies, through ES256 and HS256")
    func acceptsGoodTokens() throws {
        #expect(try self.factory.reason(self.factory.es256()) == nil)
        let hs = self.factory.hs256(header: JSONObject(["alg": .string("HS256"), "kid": .string("hs-1"), "typ": .string("at+jwt")]))
        #expect(try self.factory.reason(hs) == nil)
        let token = try self.factory.verifier().verify(self.factory.es256(), now: self.factory.now)
        #expect(token.claims.subject == "42" && token.claims.sessionID == "s-1" && token.algorithm == .es256)
    }

    @Test("rejects alg none in every casing, signed or not")
    func rejectsAlgNone() throws {
        for name in ["none", "None", "NONE", "nOnE"] {
            let header = JSONObject(["alg": .string(name), "typ": .string("at+jwt")])
            let unsigned = Base64URL.encode(Array(header.serialized.utf8)) + "."
                + Base64URL.encode(Array(self.factory.goodClaims.serialized.utf8))
            #expect(try self.factory.reason(unsigned + ".") == .malformed, "\(name), empty signature")
            #expect(try self.factory.reason(unsigned + ".AAAA") == .algorithmNotAllowed, "\(name)")
        }
    }

    @Test("rejects an algorithm outside the allow-list")
    func rejectsAlgorithmNotAllowed() throws {
        let key = try EVPKey.generate(.ec(.p384))
        let signer = try Signer(material: .asymmetric(key), algorithm: .es384, keyID: "ec-1")
        let token = try signer.sign(self.factory.goodClaims, type: "at+jwt")
        #expect(try self.factory.reason(token) == .algorithmNotAllowed)
        let header = with(self.factory.goodHeader, "alg", .string("XS256"))
        #expect(try self.factory.reason(self.factory.es256(header: header)) == .algorithmNotAllowed)
        #expect(try self.factory.reason(self.factory.es256(header: with(self.factory.goodHeader, "alg", nil))) == .malformed)
    }

    @Test("rejects HS256 keyed with the public key (algorithm confusion), with and without the EC kid")
    func rejectsPublicKeyAsHMACSecret() throws {
        let publicPEM = Array(try self.factory.ecKey.publicKeyPEM().utf8)
        let withKid = self.factory.hs256(header: JSONObject(["alg": .string("HS256"), "kid": .string("ec-1"), "typ": .string("at+jwt")]), secret: publicPEM)
        #expect(try self.factory.reason(withKid) == .algorithmNotAllowed)
        let rawPoint = JWK(key: self.factory.ecKey)
        let secret = Array(rawPoint.json.serialized.utf8)
        let withoutKid = self.factory.hs256(header: JSONObject(["alg": .string("HS256"), "typ": .string("at+jwt")]), secret: secret)
        // The only HS256 key is the real secret, so the forged tag fails.
        #expect(try self.factory.reason(withoutKid) == .badSignature)
        // An RSA public key never becomes an HMAC key either: a key set of one RSA key has no HS256 at all.
        let rsa = try EVPKey.generate(.rsa(bits: 2048))
        let keys = try KeySet([ConfiguredKey(keyID: "r", material: .asymmetric(try rsa.publicKey()))], allowed: Set(Algorithm.allCases))
        #expect(keys.keys[0].algorithms == [.rs256, .rs384, .rs512, .ps256, .ps384, .ps512])
    }

    @Test("rejects a missing or wrong typ, and a refresh token even under typ: any")
    func rejectsBadType() throws {
        #expect(try self.factory.reason(self.factory.es256(header: with(self.factory.goodHeader, "typ", nil))) == .badType)
        #expect(try self.factory.reason(self.factory.es256(header: with(self.factory.goodHeader, "typ", .string("JWT")))) == .badType)
        let refresh = try self.factory.es256(header: with(self.factory.goodHeader, "typ", .string("refresh+jwt")))
        #expect(try self.factory.reason(refresh) == .badType)
        #expect(try self.factory.reason(refresh, type: .any) == .badType)
        #expect(try self.factory.reason(self.factory.es256(header: with(self.factory.goodHeader, "typ", .string("JWT"))), type: .any) == nil)
        let prefixed = try self.factory.es256(header: with(self.factory.goodHeader, "typ", .string("application/AT+JWT")))
        #expect(try self.factory.reason(prefixed) == nil)
        #expect(try self.factory.reason(self.factory.es256(header: with(self.factory.goodHeader, "typ", .number(1)))) == .malformed)
    }

    @Test("rejects a token without exp, and exp that is not a number")
    func rejectsMissingOrBadExpiry() throws {
        #expect(try self.factory.reason(self.factory.es256(claims: with(self.factory.goodClaims, "exp", nil))) == .missingClaim)
        let asString = with(self.factory.goodClaims, "exp", .string("1800000600"))
        #expect(try self.factory.reason(self.factory.es256(claims: asString)) == .badClaim)
        for name in ["nbf", "iat"] {
            #expect(try self.factory.reason(self.factory.es256(claims: with(self.factory.goodClaims, name, .string("0")))) == .badClaim)
        }
    }

    @Test("exp honours the leeway exactly")
    func rejectsExpired() throws {
        let token = try self.factory.es256(claims: with(self.factory.goodClaims, "exp", .number(self.factory.now)))
        #expect(try self.factory.reason(token, at: self.factory.now + 29) == nil)
        #expect(try self.factory.reason(token, at: self.factory.now + 30) == .expired)
    }

    @Test("nbf in the future beyond the leeway is not yet valid")
    func rejectsNotYetValid() throws {
        let token = try self.factory.es256(claims: with(self.factory.goodClaims, "nbf", .number(self.factory.now + 31)))
        #expect(try self.factory.reason(token) == .notYetValid)
        let within = try self.factory.es256(claims: with(self.factory.goodClaims, "nbf", .number(self.factory.now + 30)))
        #expect(try self.factory.reason(within) == nil)
    }

    @Test("iat more than the leeway ahead is refused")
    func rejectsIssuedInFuture() throws {
        let token = try self.factory.es256(claims: with(self.factory.goodClaims, "iat", .number(self.factory.now + 31)))
        #expect(try self.factory.reason(token) == .issuedInFuture)
    }

    @Test("iss must match exactly")
    func rejectsIssuer() throws {
        for issuer: JSONValue? in [.string("https://issuer.test/"), .string("HTTPS://ISSUER.TEST"), nil] {
            #expect(try self.factory.reason(self.factory.es256(claims: with(self.factory.goodClaims, "iss", issuer))) == .badIssuer)
        }
        #expect(try self.factory.reason(self.factory.es256(claims: with(self.factory.goodClaims, "iss", .number(1)))) == .badClaim)
    }

    @Test("aud as a string or an array; otherwise bad_audience or bad_claim")
    func rejectsAudience() throws {
        let array = with(self.factory.goodClaims, "aud", .array([.string("other"), .string("api")]))
        #expect(try self.factory.reason(self.factory.es256(claims: array)) == nil)
        for audience: JSONValue? in [.string("other"), .array([.string("apis")]), .array([]), nil] {
            #expect(try self.factory.reason(self.factory.es256(claims: with(self.factory.goodClaims, "aud", audience))) == .badAudience)
        }
        let mixed = with(self.factory.goodClaims, "aud", .array([.string("api"), .number(1)]))
        #expect(try self.factory.reason(self.factory.es256(claims: mixed)) == .badClaim)
    }

    @Test("crit naming anything is unsupported; an empty or non-string crit is malformed")
    func rejectsCrit() throws {
        #expect(try self.factory.reason(self.factory.es256(header: with(self.factory.goodHeader, "crit", .array([.string("exp")])))) == .critUnsupported)
        #expect(try self.factory.reason(self.factory.es256(header: with(self.factory.goodHeader, "crit", .array([.string("b64")])))) == .critUnsupported)
        #expect(try self.factory.reason(self.factory.es256(header: with(self.factory.goodHeader, "crit", .array([])))) == .malformed)
        #expect(try self.factory.reason(self.factory.es256(header: with(self.factory.goodHeader, "crit", .array([.number(1)])))) == .malformed)
    }

    @Test("embedded jwk, jku, x5u and x5c are never trusted: an attacker's key in the header fails")
    func rejectsEmbeddedKeys() throws {
        let attacker = try EVPKey.generate(.ec(.p256))
        let attackerSigner = try Signer(material: .asymmetric(attacker), algorithm: .es256, keyID: "ec-1")
        let headers: [(String, JSONValue)] = [
            ("jwk", .object(JWK(key: attacker).json)), ("jku", .string("http://127.0.0.1:1/jwks.json")),
            ("x5u", .string("http://127.0.0.1:1/cert.pem")), ("x5c", .array([.string("MIIB")])),
        ]
        for (name, value) in headers {
            let header = with(self.factory.goodHeader, name, value)
            let token = try attackerSigner.sign(header: header, payload: Array(self.factory.goodClaims.serialized.utf8))
            #expect(try self.factory.reason(token) == .badSignature, "\(name)")
            // Signed by the real key, the header member is simply ignored.
            #expect(try self.factory.reason(self.factory.es256(header: header)) == nil, "\(name)")
        }
    }

    @Test("duplicate member names in header or claims are malformed")
    func rejectsDuplicateMembers() throws {
        let header = #"{"alg":"ES256","kid":"ec-1","typ":"at+jwt","alg":"HS256"}"#
        #expect(try self.factory.reason(self.factory.es256(headerText: header, payloadText: self.factory.goodClaims.serialized)) == .malformed)
        let claims = #"{"iss":"https://issuer.test","aud":"api","exp":1800000600,"sub":"42","sub":"admin"}"#
        #expect(try self.factory.reason(self.factory.es256(headerText: self.factory.goodHeader.serialized, payloadText: claims)) == .malformed)
        // The same name spelled with an escape, a duplicate in the last bytes of the document (where
        // the name key is built byte by byte instead of by one load), and long names differing late.
        let payloads = [
            #"{"iss":"https://issuer.test","aud":"api","exp":1800000600,"exp":1}"#,
            #"{"iss":"https://issuer.test","aud":"api","exp":1800000600,"a":1,"a":2}"#,
            #"{"a":1,"a":2}"#,
            #"{"iss":"https://issuer.test","aud":"api","exp":1800000600,"abcdefghij":1,"abcdefghij":2}"#,
        ]
        for payload in payloads {
            #expect(try self.factory.reason(self.factory.es256(headerText: self.factory.goodHeader.serialized, payloadText: payload)) == .malformed, "\(payload)")
        }
        let distinct = #"{"iss":"https://issuer.test","aud":"api","exp":1800000600,"abcdefghij":1,"abcdefghik":2,"ex":3}"#
        #expect(try self.factory.reason(self.factory.es256(headerText: self.factory.goodHeader.serialized, payloadText: distinct)) == nil)
        // Registered claims spelled with escapes are still those claims.
        let escapedExp = #"{"iss":"https://issuer.test","aud":"api","exp":1}"#
        #expect(try self.factory.reason(self.factory.es256(headerText: self.factory.goodHeader.serialized, payloadText: escapedExp)) == .expired)
        let escapedAlg = #"{"alg":"ES256","kid":"ec-1","typ":"at+jwt"}"#
        #expect(try self.factory.reason(self.factory.es256(headerText: escapedAlg, payloadText: self.factory.goodClaims.serialized)) == nil)
    }

    @Test("NumericDate must be a JSON number in range: 1e309 is refused, not a crash")
    func rejectsOutOfRangeNumbers() throws {
        for exp in ["1e309", "-1e309", "1800000600e99999"] {
            let claims = #"{"iss":"https://issuer.test","aud":"api","exp":\#(exp)}"#
            #expect(try self.factory.reason(self.factory.es256(headerText: self.factory.goodHeader.serialized, payloadText: claims)) == .malformed, "\(exp)")
        }
        let huge = #"{"iss":"https://issuer.test","aud":"api","exp":1e300}"#
        #expect(try self.factory.reason(self.factory.es256(headerText: self.factory.goodHeader.serialized, payloadText: huge)) == nil)
        let past = #"{"iss":"https://issuer.test","aud":"api","exp":-1e300}"#
        #expect(try self.factory.reason(self.factory.es256(headerText: self.factory.goodHeader.serialized, payloadText: past)) == .expired)
    }

    @Test("tokens over the size limit are refused before parsing")
    func rejectsTooLarge() throws {
        let padding = String(repeating: "x", count: 9000)
        let token = try self.factory.es256(claims: with(self.factory.goodClaims, "pad", .string(padding)))
        #expect(try self.factory.reason(token) == .tokenTooLarge)
        #expect(try self.factory.reason(String(repeating: "a", count: 8193)) == .tokenTooLarge)
    }

    @Test("kid is matched exactly; without kid only a lone key of the algorithm qualifies")
    func rejectsUnknownKeyID() throws {
        #expect(try self.factory.reason(self.factory.es256(header: with(self.factory.goodHeader, "kid", .string("EC-1")))) == .unknownKeyID)
        #expect(try self.factory.reason(self.factory.es256(header: with(self.factory.goodHeader, "kid", .string("ec-1 ")))) == .unknownKeyID)
        #expect(try self.factory.reason(self.factory.es256(header: with(self.factory.goodHeader, "kid", nil))) == nil)
        // With two ES256 keys a kid-less token names none of them.
        let second = try EVPKey.generate(.ec(.p256))
        let keys = try KeySet(
            [ConfiguredKey(keyID: "ec-1", material: .asymmetric(self.factory.ecKey)), ConfiguredKey(keyID: "ec-2", material: .asymmetric(second))],
            allowed: [.es256]
        )
        let verifier = Verifier(policy: self.factory.policy(), keys: keys)
        #expect(throws: JOSEError(.unknownKeyID)) {
            try verifier.verify(self.factory.es256(header: with(self.factory.goodHeader, "kid", nil)), now: self.factory.now)
        }
        #expect(throws: JOSEError(.malformed)) {
            try verifier.verify(self.factory.es256(header: with(self.factory.goodHeader, "kid", .number(1))), now: self.factory.now)
        }
    }

    @Test("not strict base64url or not three segments: malformed")
    func rejectsMalformedShape() throws {
        let token = try self.factory.es256()
        let parts = token.split(separator: ".").map(String.init)
        let cases = [
            token + ".", "." + token, parts[0] + "." + parts[1], parts[0] + ".." + parts[2],
            parts[0] + "=." + parts[1] + "." + parts[2], parts[0] + "." + parts[1] + " ." + parts[2],
            parts[0].replacingOccurrences(of: "e", with: "+") + "." + parts[1] + "." + parts[2],
            parts[0] + "." + parts[1] + "." + parts[2] + "==", "", "...", "a.b.c",
            parts[0] + "." + parts[1] + ".\u{00e9}",
        ]
        for bad in cases {
            #expect(try self.factory.reason(bad) == .malformed, "\(bad.prefix(60))")
        }
    }

    @Test("a changed signature, payload or header fails the signature")
    func rejectsTampering() throws {
        let token = try self.factory.es256()
        var parts = token.split(separator: ".").map(String.init)
        var claims = self.factory.goodClaims
        claims["sub"] = .string("1")
        parts[1] = Base64URL.encode(Array(claims.serialized.utf8))
        #expect(try self.factory.reason(parts.joined(separator: ".")) == .badSignature)
        var signature = Base64URL.decode(token.split(separator: ".")[2])!
        signature[10] ^= 1
        #expect(try self.factory.reason(token.split(separator: ".")[0..<2].joined(separator: ".") + "." + Base64URL.encode(signature)) == .badSignature)
    }

    @Test("ECDSA r = s = 0 (CVE-2022-21449), r or s = n, and DER signatures are refused")
    func rejectsBadECDSASignatures() throws {
        let input = try self.factory.es256().split(separator: ".")[0..<2].joined(separator: ".")
        let order: [UInt8] = [
            0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
        ]
        let one = [UInt8](repeating: 0, count: 31) + [1]
        let valid = Base64URL.decode(try self.factory.es256().split(separator: ".")[2])!
        let signatures: [[UInt8]] = [
            [UInt8](repeating: 0, count: 64), order + one, one + order, order + order,
            [UInt8](repeating: 0xff, count: 64), Array(valid[0..<63]), valid + [0],
        ]
        for signature in signatures {
            #expect(try self.factory.reason(input + "." + Base64URL.encode(signature)) == .badSignature)
        }
        let der = try self.factory.ecKey.sign(Array(input.utf8), scheme: .ecdsa(.sha256))
        #expect(try self.factory.reason(input + "." + Base64URL.encode(der)) == nil, "raw r‖s of the real key passes")
    }

    @Test("weak keys are refused when the key set is built")
    func rejectsWeakKeys() throws {
        let small = try EVPKey.generate(.rsa(bits: 1024))
        #expect(throws: KeyError.self) {
            try KeySet([ConfiguredKey(keyID: "r", material: .asymmetric(small))], allowed: [.rs256])
        }
        #expect(throws: KeyError.self) {
            try KeySet([ConfiguredKey(keyID: "h", material: .secret(Array("short".utf8)))], allowed: [.hs256])
        }
        #expect(throws: KeyError.self) {
            try Signer(material: .asymmetric(small), algorithm: .rs256, keyID: "r")
        }
        // A JWKS from an IdP may carry keys we cannot use: they are skipped, not fatal.
        let keys = try KeySet([ConfiguredKey(keyID: "r", material: .asymmetric(small))], allowed: [.rs256], skippingUnusable: true)
        #expect(keys.isEmpty)
    }
}
