// SPDX-License-Identifier: Apache-2.0
import Foundation
public import GatehouseCrypto
public import GatehouseJOSE

/// Reads key files named by the configuration.
public enum KeyFiles {
    /// The PEM key at `path` (private PKCS#8 or public SubjectPublicKeyInfo).
    public static func loadPEM(_ path: String) throws(KeyError) -> EVPKey {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw KeyError("cannot read key file \(path): \(error.localizedDescription)")
        }
        do { return try EVPKey(pem: text) } catch { throw KeyError("\(path): \(error)") }
    }

    /// The JWKS document at `path`.
    public static func loadJWKS(_ path: String) throws(KeyError) -> JWKS {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw KeyError("cannot read JWKS file \(path): \(error.localizedDescription)")
        }
        do { return try JWKS(jsonText: text) } catch { throw KeyError("\(path): \(error.message)") }
    }
}

extension IssuerConfig {
    /// The signing key and the previous keys, each with its kid (the RFC 7638 thumbprint), for the
    /// issuer's JWKS and for the local verifier.
    public func loadVerificationKeys() throws(KeyError) -> [ConfiguredKey] {
        var keys: [ConfiguredKey] = []
        for path in [self.signing.keyFile] + self.signing.previousKeyFiles {
            let key = try KeyFiles.loadPEM(path)
            let publicKey: EVPKey
            do { publicKey = try key.publicKey() } catch { throw KeyError("\(path): \(error)") }
            keys.append(ConfiguredKey(keyID: JWK(key: publicKey).thumbprint, material: .asymmetric(publicKey)))
        }
        return keys
    }
}

extension ProviderConfig {
    /// The verifier for this provider, with keys read from files (or handed over: `keys: local`'s
    /// from the issuer's configuration, `jwks_url`'s as `fetched`, the gateway's to fetch and
    /// sort with `keys(of:remote:)`).
    public func makeVerifier(issuerConfig: IssuerConfig?, fetched: [ConfiguredKey]? = nil, maxTokenBytes: Int) throws(KeyError) -> Verifier {
        let configured: [ConfiguredKey]
        var skipping = false
        switch self.keys {
        case .local:
            guard let issuerConfig else { throw KeyError("keys: local needs the issuer enabled") }
            configured = try issuerConfig.loadVerificationKeys()
        case .jwksURL(let url, _):
            guard let fetched else { throw KeyError("keys from \(url) have not been fetched") }
            configured = fetched
            skipping = true
        case .jwksFile(let path):
            configured = try Self.keys(of: KeyFiles.loadJWKS(path), remote: false).keys
        case .publicKeyFile(let path, let keyID):
            let key = try KeyFiles.loadPEM(path)
            let publicKey: EVPKey
            do { publicKey = try key.publicKey() } catch { throw KeyError("\(path): \(error)") }
            configured = [ConfiguredKey(keyID: keyID ?? JWK(key: publicKey).thumbprint, material: .asymmetric(publicKey))]
        case .secret(let secret, let keyID):
            configured = [ConfiguredKey(keyID: keyID, material: .secret(secret))]
        }
        let keySet = try KeySet(configured, allowed: self.algorithms, skippingUnusable: skipping)
        let policy = VerificationPolicy(
            algorithms: self.algorithms, issuer: self.issuer, audience: self.audience, type: self.type,
            leeway: self.leeway.seconds, maximumTokenBytes: maxTokenBytes
        )
        return Verifier(policy: policy, keys: keySet)
    }

    /// The signature keys of a JWKS. Keys for encryption or key agreement are skipped: `use: enc`,
    /// an OKP curve other than Ed25519 (X25519), and in a `remote` set an `alg` that is no JWS
    /// algorithm (Keycloak's `RSA-OAEP`; in a local file that is an error). A `remote` set
    /// (`jwks_url`) is published, so a symmetric (`oct`) key in it is no secret: it is refused,
    /// never made an HMAC key, and counted in `refusedSymmetric`.
    public static func keys(of jwks: JWKS, remote: Bool) throws(KeyError) -> (keys: [ConfiguredKey], refusedSymmetric: Int) {
        var keys: [ConfiguredKey] = []
        var refusedSymmetric = 0
        for jwk in jwks.keys where jwk.use != "enc" {
            if remote, let name = jwk.algorithm, Algorithm(rawValue: name) == nil { continue }
            if jwk.keyType == "OKP", jwk.json["crv"]?.stringValue != "Ed25519" { continue }
            if remote, jwk.keyType == "oct" {
                refusedSymmetric += 1
                continue
            }
            keys.append(try ConfiguredKey(jwk: jwk))
        }
        return (keys, refusedSymmetric)
    }
}
