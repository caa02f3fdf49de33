// SPDX-License-Identifier: Apache-2.0
import GatehouseConfig
import GatehouseCrypto
import GatehouseJOSE

/// The secrets behind refresh tokens (DESIGN.md, "Tokens"). Refresh tokens are for issuers alone:
/// HS256 under `issuer.refresh_secret`, never a published key, no `kid`, `aud` the issuer's own URL,
/// so that a verifier that ignores `typ` still refuses one as an access token.
///
/// Without `refresh_secret`, both secrets come from the signing key's private bytes by HKDF-SHA256
/// (labels `gatehouse refresh-sign v1` and `gatehouse refresh-rotate v1`), which every issuer of a
/// deployment shares and nothing published reveals. With it, the configured secret signs and keys
/// the rotation itself (as before this change, so configured deployments keep their rotation); the
/// two uses cannot be confused: a rotation MACs `gatehouse-rotate:<jti>`, a signature a JWS signing
/// input, which always begins with the base64url of `{`.
struct RefreshSecrets {
    static let signLabel = Array("gatehouse refresh-sign v1".utf8)
    static let rotateLabel = Array("gatehouse refresh-rotate v1".utf8)

    /// Signs new refresh tokens.
    let signing: [UInt8]
    /// Keys `TokenMinter.nextRefreshID`.
    let rotation: [UInt8]
    /// Every secret whose refresh tokens are accepted, `signing` first: the secret derived from the
    /// signing key (also when `refresh_secret` is set, so that setting one ends no session), those
    /// derived from each of `previous_key_files` (rotating the signing key ends no session), and
    /// `previous_refresh_secrets`.
    let accepted: [[UInt8]]

    init(config: IssuerConfig, signingKey: EVPKey) throws {
        let master = try signingKey.privateKeyBytes()
        let derivedSigning = try HKDF.sha256(inputKeyMaterial: master, info: Self.signLabel, length: 32)
        if let secret = config.refreshSecret {
            self.signing = Array(secret.utf8)
            self.rotation = Array(secret.utf8)
        } else {
            self.signing = derivedSigning
            self.rotation = try HKDF.sha256(inputKeyMaterial: master, info: Self.rotateLabel, length: 32)
        }
        var accepted = [self.signing, derivedSigning]
        for path in config.signing.previousKeyFiles {
            // A previous key file holding only a public key derives nothing: its sessions' refresh
            // tokens were signed under its private bytes.
            let key = try KeyFiles.loadPEM(path)
            guard key.isPrivate else { continue }
            accepted.append(try HKDF.sha256(inputKeyMaterial: try key.privateKeyBytes(), info: Self.signLabel, length: 32))
        }
        accepted += config.previousRefreshSecrets.map { Array($0.utf8) }
        var seen: Set<[UInt8]> = []
        self.accepted = accepted.filter { seen.insert($0).inserted }
    }

    /// One verifier per accepted secret (tokens carry no `kid` to choose by): HS256 only, `iss`
    /// and `aud` both the issuer's URL, `typ` `refresh+jwt`.
    func verifiers(issuer: String) throws -> [Verifier] {
        try self.accepted.map { secret in
            Verifier(
                policy: VerificationPolicy(algorithms: [.hs256], issuer: issuer, audience: issuer, type: .required("refresh+jwt")),
                keys: try KeySet([ConfiguredKey(keyID: nil, material: .secret(secret))], allowed: [.hs256])
            )
        }
    }
}
