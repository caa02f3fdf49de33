// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatehouseCrypto
import GatehouseJOSE

/// Builds tokens with any header and payload, signed by real keys, for the rejection tests.
struct TokenFactory {
    let ecKey: EVPKey
    let ecKeyID = "ec-1"
    let hmacSecret = Array("0123456789abcdef0123456789abcdef".utf8)
    let hmacKeyID = "hs-1"
    let now: Double = 1_800_000_000

    init() throws {
        self.ecKey = try EVPKey.generate(.ec(.p256))
    }

    var keySet: KeySet {
        get throws {
            try KeySet(
                [
                    ConfiguredKey(keyID: self.ecKeyID, material: .asymmetric(self.ecKey)),
                    ConfiguredKey(keyID: self.hmacKeyID, material: .secret(self.hmacSecret)),
                ],
                allowed: [.es256, .hs256]
            )
        }
    }

    func policy(type: VerificationPolicy.TypeRule = .required("at+jwt")) -> VerificationPolicy {
        VerificationPolicy(algorithms: [.es256, .hs256], issuer: "https://issuer.test", audience: "api", type: type)
    }

    func verifier(type: VerificationPolicy.TypeRule = .required("at+jwt")) throws -> Verifier {
        Verifier(policy: self.policy(type: type), keys: try self.keySet)
    }

    var goodClaims: JSONObject {
        JSONObject([
            "iss": .string("https://issuer.test"), "sub": .string("42"), "aud": .string("api"),
            "exp": .number(self.now + 600), "iat": .number(self.now), "jti": .string("j-1"), "sid": .string("s-1"),
        ])
    }

    var goodHeader: JSONObject {
        JSONObject(["alg": .string("ES256"), "kid": .string(self.ecKeyID), "typ": .string("at+jwt")])
    }

    /// ES256 over exactly these header and payload bytes.
    func es256(headerText: String, payloadText: String) throws -> String {
        let input = Base64URL.encode(Array(headerText.utf8)) + "." + Base64URL.encode(Array(payloadText.utf8))
        let signature = try self.ecKey.sign(Array(input.utf8), scheme: .ecdsa(.sha256))
        return input + "." + Base64URL.encode(signature)
    }

    func es256(header: JSONObject? = nil, claims: JSONObject? = nil) throws -> String {
        try self.es256(headerText: (header ?? self.goodHeader).serialized, payloadText: (claims ?? self.goodClaims).serialized)
    }

    func hs256(header: JSONObject, claims: JSONObject? = nil, secret: [UInt8]? = nil) -> String {
        let input = Base64URL.encode(Array(header.serialized.utf8)) + "."
            + Base64URL.encode(Array((claims ?? self.goodClaims).serialized.utf8))
        let tag = PreparedMAC(secret: secret ?? self.hmacSecret, digest: .sha256).authenticate(Array(input.utf8))
        return input + "." + Base64URL.encode(tag)
    }

    /// The rejection reason, or nil when the token verifies.
    func reason(_ token: String, type: VerificationPolicy.TypeRule = .required("at+jwt"), at time: Double? = nil) throws -> RejectionReason? {
        let verifier = try self.verifier(type: type)
        do throws(JOSEError) {
            _ = try verifier.verify(token, now: time ?? self.now)
            return nil
        } catch {
            return error.reason
        }
    }
}

func with(_ object: JSONObject, _ name: String, _ value: JSONValue?) -> JSONObject {
    var copy = object
    copy[name] = value
    return copy
}

/// The RFC vectors shipped as a resource (see Vectors/make_vectors.py, which checks each with pyca/cryptography).
struct RFCVectors {
    struct JWSVector {
        let name: String
        let algorithm: Algorithm
        let key: JWK
        let token: String
        let deterministic: Bool
    }

    let jws: [JWSVector]
    let thumbprintKey: JWK
    let thumbprint: String

    static func load() throws -> RFCVectors {
        let url = Bundle.module.url(forResource: "rfc-jws-vectors", withExtension: "json", subdirectory: "Vectors")!
        let root = try JSONReader.parse(String(contentsOf: url, encoding: .utf8)).objectValue!
        let vectors = try root["jws"]!.arrayValue!.map { entry in
            let object = entry.objectValue!
            return JWSVector(
                name: object["name"]!.stringValue!, algorithm: Algorithm(rawValue: object["alg"]!.stringValue!)!,
                key: try JWK(json: object["key"]!.objectValue!), token: object["token"]!.stringValue!,
                deterministic: object["deterministic"] == .bool(true)
            )
        }
        let thumbprint = root["thumbprint"]!.objectValue!
        return RFCVectors(
            jws: vectors, thumbprintKey: try JWK(json: thumbprint["key"]!.objectValue!),
            thumbprint: thumbprint["thumbprint"]!.stringValue!
        )
    }
}
