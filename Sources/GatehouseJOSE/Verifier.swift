// SPDX-License-Identifier: Apache-2.0

/// Verifies compact JWS access tokens against a fixed policy and key set.
///
/// The order follows jwt-kit and RFC 7515 §5.2: size, shape, header; `alg` against the allow-list
/// before any key is touched; `crit`, `typ`; the key by `kid`; the signature over the original bytes;
/// only then the claims. Synchronous, lock-free and safe to call from any thread.
public struct Verifier: Sendable {
    public let policy: VerificationPolicy
    public let keys: KeySet

    public init(policy: VerificationPolicy, keys: KeySet) {
        self.policy = policy
        self.keys = keys
    }

    /// Verifies `token` at time `now` (seconds since the epoch).
    public func verify(_ token: String, now: Double) throws(JOSEError) -> VerifiedToken {
        var token = token
        return try token.withUTF8 { self.verify(UnsafeRawBufferPointer($0), now: now, checkingSignature: true) }.get()
    }

    /// Verifies the token in `bytes` (for callers that hold it in a network buffer).
    public func verify(_ bytes: UnsafeRawBufferPointer, now: Double) throws(JOSEError) -> VerifiedToken {
        try self.verify(bytes, now: now, checkingSignature: true).get()
    }

    /// The verification, optionally without the key lookup and signature (for `token inspect` with no keys).
    func verify(
        _ token: UnsafeRawBufferPointer, now: Double, checkingSignature: Bool
    ) -> Result<VerifiedToken, JOSEError> {
        guard token.count <= self.policy.maximumTokenBytes else {
            return .failure(JOSEError(.tokenTooLarge, "\(token.count) bytes, limit \(self.policy.maximumTokenBytes)"))
        }
        guard let segments = CompactSegments(token) else {
            return .failure(JOSEError(.malformed, "not three base64url segments separated by dots"))
        }
        let header: JOSEHeader
        switch segments.decodeJSONObject(segments.header, what: "header") {
        case .success(let json):
            do { header = try JOSEHeader(json: json) } catch { return .failure(error) }
        case .failure(let error):
            return .failure(error)
        }
        guard let algorithm = Algorithm(rawValue: header.algorithmName), self.policy.algorithms.contains(algorithm) else {
            return .failure(JOSEError(.algorithmNotAllowed, "alg \"\(header.algorithmName.prefix(16))\" is not allowed"))
        }
        if let critical = header.critical {
            return .failure(JOSEError(.critUnsupported, "no extension is understood (\(critical.count) named in crit)"))
        }
        guard self.policy.accepts(type: header.type) else {
            return .failure(JOSEError(.badType, "typ \(header.type.map { "\"\($0.prefix(32))\"" } ?? "absent") is not accepted"))
        }
        // The payload is decoded before the signature is checked, so that bad base64url is always
        // `malformed`, but parsed only after.
        let result = segments.withDecoded(segments.payload) { payload -> Result<ClaimSet, JOSEError> in
            if checkingSignature {
                switch self.keys.lookup(keyID: header.keyID, algorithm: algorithm) {
                case .unknownKeyID:
                    return .failure(JOSEError(.unknownKeyID, header.keyID == nil ? "no kid and not exactly one \(algorithm.rawValue) key" : "no key has this kid"))
                case .algorithmMismatch:
                    return .failure(JOSEError(.algorithmNotAllowed, "the key with this kid is not a \(algorithm.rawValue) key"))
                case .found(let key):
                    switch segments.verifySignature(with: key) {
                    case nil: return .failure(JOSEError(.malformed, "signature is not strict base64url"))
                    case false: return .failure(JOSEError(.badSignature))
                    case true: break
                    }
                }
            }
            return segments.parseJSONObject(payload, what: "payload").map(ClaimSet.init(json:))
        }
        let claims: ClaimSet
        switch result {
        case .success(let parsed): claims = parsed
        case .failure(let error): return .failure(error)
        case nil: return .failure(JOSEError(.malformed, "payload is not strict base64url"))
        }
        if let error = self.check(claims, now: now) { return .failure(error) }
        return .success(VerifiedToken(header: header, claims: claims, algorithm: algorithm))
    }

    /// The registered claims' types, the time claims with leeway, `iss` and `aud`.
    private func check(_ claims: ClaimSet, now: Double) -> JOSEError? {
        let json = claims.json
        for name in ["exp", "nbf", "iat"] where json[name] != nil && json[name]?.numberValue == nil {
            return JOSEError(.badClaim, "\(name) is not a JSON number")
        }
        for name in ["iss", "sub", "jti", "sid"] where json[name] != nil && json[name]?.stringValue == nil {
            return JOSEError(.badClaim, "\(name) is not a string")
        }
        switch json["aud"] {
        case nil, .string: break
        case .array(let values) where values.allSatisfy({ $0.stringValue != nil }): break
        default: return JOSEError(.badClaim, "aud is neither a string nor an array of strings")
        }
        guard let expiresAt = claims.expiresAt else { return JOSEError(.missingClaim, "exp is required") }
        let leeway = self.policy.leeway
        if now >= expiresAt + leeway { return JOSEError(.expired, "expired \(Int64(max(0, min(now - expiresAt, 1e15)))) s ago") }
        if let notBefore = claims.notBefore, now < notBefore - leeway { return JOSEError(.notYetValid) }
        if let issuedAt = claims.issuedAt, issuedAt > now + leeway { return JOSEError(.issuedInFuture) }
        if let issuer = self.policy.issuer, claims.issuer != issuer { return JOSEError(.badIssuer) }
        if let audience = self.policy.audience, !claims.audience.contains(audience) { return JOSEError(.badAudience) }
        return nil
    }
}

/// The three segments of a compact JWS, as ranges into the token's bytes.
struct CompactSegments {
    let token: UnsafeRawBufferPointer
    let header: Range<Int>
    let payload: Range<Int>
    let signature: Range<Int>

    init?(_ token: UnsafeRawBufferPointer) {
        var dots: (Int, Int) = (-1, -1)
        for index in token.indices where token[index] == UInt8(ascii: ".") {
            if dots.0 < 0 { dots.0 = index } else if dots.1 < 0 { dots.1 = index } else { return nil }
        }
        guard dots.1 > dots.0, dots.0 > 0, dots.1 > dots.0 + 1, dots.1 < token.count - 1 else { return nil }
        self.token = token
        self.header = 0..<dots.0
        self.payload = dots.0 + 1..<dots.1
        self.signature = dots.1 + 1..<token.count
    }

    /// The bytes the signature covers: `header.payload` exactly as sent.
    var signingInput: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: self.token[0..<self.payload.upperBound]) }

    func segment(_ range: Range<Int>) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: self.token[range]) }

    /// Decodes a segment into a temporary buffer and hands the bytes to `body`; nil if not base64url.
    func withDecoded<R>(_ range: Range<Int>, _ body: (UnsafeRawBufferPointer) -> R) -> R? {
        guard let count = Base64URL.decodedCount(range.count) else { return nil }
        return withUnsafeTemporaryAllocation(byteCount: max(count, 1), alignment: 1) { buffer -> R? in
            guard let written = Base64URL.decode(self.segment(range), into: buffer) else { return nil }
            return body(UnsafeRawBufferPointer(rebasing: buffer[0..<written]))
        }
    }

    func decodeJSONObject(_ range: Range<Int>, what: String) -> Result<JSONObject, JOSEError> {
        self.withDecoded(range) { self.parseJSONObject($0, what: what) }
            ?? .failure(JOSEError(.malformed, "\(what) is not strict base64url"))
    }

    func parseJSONObject(_ bytes: UnsafeRawBufferPointer, what: String) -> Result<JSONObject, JOSEError> {
        do {
            guard let object = try JSONReader.parse(bytes).objectValue else {
                return .failure(JOSEError(.malformed, "\(what) is not a JSON object"))
            }
            return .success(object)
        } catch {
            return .failure(JOSEError(.malformed, "\(what) is not valid JSON (\(error))"))
        }
    }

    /// Whether the signature verifies; nil when it is not strict base64url.
    func verifySignature(with key: VerificationKey.Prepared) -> Bool? {
        self.withDecoded(self.signature) { signature in key.verify(signature: signature, message: self.signingInput) }
    }
}
