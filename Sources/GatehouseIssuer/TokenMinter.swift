// SPDX-License-Identifier: Apache-2.0
import GatehouseCrypto
import GatehouseJOSE
import GatehouseStore

/// Signs the issuer's access tokens (with the published signing key) and refresh tokens (HS256
/// under the refresh secret, no `kid`, `aud` the issuer itself; see `RefreshSecrets`), and derives
/// refresh-token ids.
///
/// Rotation is deterministic: the next refresh token's `jti` is an HMAC of the current one under
/// the rotation secret. Two concurrent refreshes with the same token therefore compute the same
/// next `jti`, the one the session's row expects after the first of them rotated it; the second
/// caller gets a token for it, equally valid. The database keeps only SHA-256 hashes of `jti`s.
struct TokenMinter: Sendable {
    let signer: Signer
    private let refreshSigner: Signer
    let issuer: String
    let audience: String
    /// Seconds.
    let accessTTL: Int64
    let refreshTTL: Int64
    private let rotation: PreparedMAC

    init(
        signer: Signer, refreshSecret: [UInt8], issuer: String, audience: String, accessTTL: Int64, refreshTTL: Int64, rotationSecret: [UInt8]
    ) throws(KeyError) {
        self.signer = signer
        self.refreshSigner = try Signer(material: .secret(refreshSecret), algorithm: .hs256, keyID: "")
        self.issuer = issuer
        self.audience = audience
        self.accessTTL = accessTTL
        self.refreshTTL = refreshTTL
        self.rotation = PreparedMAC(secret: rotationSecret, digest: .sha256)
    }

    /// 128 random bits, base64url: session ids, first refresh ids, access-token ids.
    static func randomID() -> String {
        Base64URL.encode(SecureRandom.bytes(16))
    }

    /// The `jti` of the refresh token that replaces the one with `id`.
    func nextRefreshID(after id: String) -> String {
        Base64URL.encode(self.rotation.authenticate(Array(("gatehouse-rotate:" + id).utf8)).prefix(16))
    }

    /// What the sessions table stores instead of a refresh token.
    static func hash(ofTokenID id: String) -> String {
        Hex.encode(Digest.sha256.hash(Array(id.utf8)))
    }

    struct Tokens: Sendable {
        let access: String
        let refresh: String
        let expiresIn: Int64
    }

    /// An access token and a refresh token (with `jti` `refreshID`) for `user` in session `sessionID`.
    /// `now` is in seconds.
    func tokens(for user: UserRecord, sessionID: String, refreshID: String, now: Int64) throws(KeyError) -> Tokens {
        let subject = String(user.id)
        var access = JSONObject([
            "iss": .string(self.issuer), "sub": .string(subject), "aud": .string(self.audience),
            "exp": .number(Double(now + self.accessTTL)), "iat": .number(Double(now)), "jti": .string(Self.randomID()),
            "sid": .string(sessionID), "user_id": .number(Double(user.id)),
        ])
        if let role = user.primaryRole { access["role"] = .string(role) }
        access["roles"] = .array(user.roles.map(JSONValue.string))
        access["scope"] = .string(user.permissions.joined(separator: " "))
        let refresh = JSONObject([
            "iss": .string(self.issuer), "sub": .string(subject), "aud": .string(self.issuer),
            "exp": .number(Double(now + self.refreshTTL)), "iat": .number(Double(now)), "jti": .string(refreshID),
            "sid": .string(sessionID),
        ])
        return Tokens(
            access: try self.signer.sign(access, type: "at+jwt"),
            refresh: try self.refreshSigner.sign(
                header: JSONObject(["alg": .string("HS256"), "typ": .string("refresh+jwt")]), payload: refresh.serializedBytes
            ),
            expiresIn: self.accessTTL
        )
    }
}
