// SPDX-License-Identifier: Apache-2.0
import GatehouseCrypto

/// Signs compact JWS tokens with one key and one algorithm.
public struct Signer: Sendable {
    public let algorithm: Algorithm
    public let keyID: String
    private let mac: PreparedMAC?
    private let signer: PreparedSigner?

    /// Fails when the key does not fit the algorithm, is public only, or is too weak
    /// (RSA under 2048 bits, an HMAC secret shorter than its digest).
    public init(material: KeyMaterial, algorithm: Algorithm, keyID: String) throws(KeyError) {
        switch (algorithm.family, material) {
        case (.hmac(let digest), .secret(let secret)):
            guard secret.count >= max(32, digest.byteCount) else {
                throw KeyError("\(algorithm.rawValue) needs a secret of at least \(max(32, digest.byteCount)) bytes")
            }
            self.mac = PreparedMAC(secret: secret, digest: digest)
            self.signer = nil
        case (.signature(let scheme), .asymmetric(let key)):
            guard key.isPrivate else { throw KeyError("signing needs a private key") }
            guard scheme.fits(key) else { throw KeyError("a \(key.kind) key cannot sign \(algorithm.rawValue)") }
            if case .rsa(let bits) = key.kind, bits < minimumRSABits {
                throw KeyError("RSA signing keys need at least \(minimumRSABits) bits")
            }
            self.mac = nil
            do { self.signer = try PreparedSigner(key: key, scheme: scheme) } catch { throw KeyError("\(error)") }
        default:
            throw KeyError("\(algorithm.rawValue) cannot be used with this kind of key")
        }
        self.algorithm = algorithm
        self.keyID = keyID
    }

    /// A compact JWS of `claims` with header `{"alg","kid","typ"}` (`typ` omitted when nil).
    public func sign(_ claims: JSONObject, type: String?) throws(KeyError) -> String {
        var header = JSONObject(["alg": .string(self.algorithm.rawValue), "kid": .string(self.keyID)])
        if let type { header["typ"] = .string(type) }
        return try self.sign(header: header, payload: claims.serializedBytes)
    }

    /// A compact JWS of arbitrary payload bytes under `header` (which must carry this signer's `alg`).
    public func sign(header: JSONObject, payload: [UInt8]) throws(KeyError) -> String {
        let signingInput = Base64URL.encode(header.serializedBytes) + "." + Base64URL.encode(payload)
        let signature: [UInt8]
        if let mac = self.mac {
            signature = mac.authenticate(Array(signingInput.utf8))
        } else if let signer = self.signer {
            do { signature = try signer.sign(Array(signingInput.utf8)) } catch { throw KeyError("signing failed: \(error)") }
        } else {
            throw KeyError("unreachable: init made a MAC or a signer")
        }
        return signingInput + "." + Base64URL.encode(signature)
    }
}
