// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Verifies compact JWS access tokens against a fixed policy and key set.
///
/// The order follows jwt-kit and RFC 7515 §5.2: size, shape, header; `alg` against the allow-list
/// before any key is touched; `crit`, `typ`; the key by `kid`; the signature over the original bytes;
/// only then the claims. Synchronous, lock-free and safe to call from any thread. A class, so that
/// the closures on the verify path retain one reference instead of copying every field.
public final class Verifier: Sendable {
    public let policy: VerificationPolicy
    public let keys: KeySet
    /// `policy.algorithms` as bits, so the per-token check hashes nothing.
    private let allowed: UInt16
    /// The policy's `typ`, normalised once.
    private let requiredType: [UInt8]?
    private let issuerBytes: [UInt8]?
    private let audienceBytes: [UInt8]?

    public init(policy: VerificationPolicy, keys: KeySet) {
        self.policy = policy
        self.keys = keys
        self.allowed = policy.algorithms.reduce(0) { $0 | $1.bit }
        self.requiredType = policy.requiredType
        self.issuerBytes = policy.issuer.map { Array($0.utf8) }
        self.audienceBytes = policy.audience.map { Array($0.utf8) }
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
        // Header and payload decode into one allocation, which the verified token keeps.
        guard let decoded = segments.decodeHeaderAndPayload() else {
            return .failure(JOSEError(.malformed, "header or payload is not strict base64url"))
        }
        let header: JOSEHeader
        do {
            header = try JOSEHeader(document: try InPlaceJSONObject(storage: decoded.bytes, document: decoded.header))
        } catch let error as JOSEError {
            return .failure(error)
        } catch {
            return .failure(JOSEError(.malformed, "header is not a JSON object (\(error))"))
        }
        guard let algorithm = header.algorithm, self.allowed & algorithm.bit != 0 else {
            return .failure(JOSEError(.algorithmNotAllowed, "alg \"\(header.algorithmName.prefix(16))\" is not allowed"))
        }
        if header.hasCritical {
            return .failure(JOSEError(.critUnsupported, "no extension named in crit is understood"))
        }
        let typeAccepted: Bool
        if let member = header.typeMember {
            typeAccepted = header.withBytes(of: member) { VerificationPolicy.accepts(type: $0, required: self.requiredType) }
                ?? header.type.map { type in
                    var type = type
                    return type.withUTF8 { VerificationPolicy.accepts(type: UnsafeRawBufferPointer($0), required: self.requiredType) }
                } ?? false
        } else {
            typeAccepted = VerificationPolicy.accepts(type: nil, required: self.requiredType)
        }
        guard typeAccepted else {
            return .failure(JOSEError(.badType, "typ \(header.type.map { "\"\($0.prefix(32))\"" } ?? "absent") is not accepted"))
        }
        // The payload was decoded before the signature is checked, so that bad base64url is always
        // `malformed`, but it is parsed only after.
        if checkingSignature {
            let lookup = header.keyIDMember.flatMap { member in header.withBytes(of: member) { self.keys.lookup(keyID: $0, algorithm: algorithm) } }
                ?? self.keys.lookup(keyID: header.keyID, algorithm: algorithm)
            switch lookup {
            case .unknownKeyID:
                return .failure(JOSEError(.unknownKeyID, header.keyIDMember == nil ? "no kid and not exactly one \(algorithm.rawValue) key" : "no key has this kid"))
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
        let claims: ClaimSet
        do { claims = ClaimSet(document: try InPlaceJSONObject(storage: decoded.bytes, document: decoded.payload)) } catch {
            return .failure(JOSEError(.malformed, "payload is not a JSON object (\(error))"))
        }
        if let error = self.check(claims, now: now) { return .failure(error) }
        return .success(VerifiedToken(header: header, claims: claims, algorithm: algorithm))
    }

    private static let exp = packed("exp"), nbf = packed("nbf"), iat = packed("iat"), iss = packed("iss")
    private static let sub = packed("sub"), jti = packed("jti"), sid = packed("sid"), aud = packed("aud")

    private static func packed(_ name: StaticString) -> UInt64 {
        packedNameKey(UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
    }

    /// A three-byte member name as its packed key; nil for any other length.
    @inline(__always)
    private static func packedName(_ member: InPlaceJSONObject.Member, in document: InPlaceJSONObject) -> UInt64? {
        if member.nameEscaped {
            let name = Array(document.name(of: member).utf8)
            return name.count == 3 ? name.withUnsafeBytes(packedNameKey) : nil
        }
        return member.name.count == 3 ? member.nameKey : nil
    }

    /// The registered claims' types, the time claims with leeway, `iss` and `aud`, in one pass over
    /// the claims (every name lookup would otherwise scan them again).
    private func check(_ claims: ClaimSet, now: Double) -> JOSEError? {
        var expiresAt: Double? = nil
        var notBefore: Double? = nil
        var issuedAt: Double? = nil
        var issuerMember: InPlaceJSONObject.Member? = nil
        var audienceMatched = false
        let audience = self.policy.audience
        let document = claims.document
        for member in document.members {
            // Registered claim names are all three ASCII letters: switch on them packed in an
            // integer, since a miss in a String switch costs a full comparison each.
            guard let packed = Self.packedName(member, in: document) else { continue }
            switch packed {
            case Self.exp, Self.nbf, Self.iat:
                guard case .number(let value) = member.value else { return JOSEError(.badClaim, "\(document.name(of: member)) is not a JSON number") }
                if packed == Self.exp { expiresAt = value } else if packed == Self.nbf { notBefore = value } else { issuedAt = value }
            case Self.iss, Self.sub, Self.jti, Self.sid:
                guard case .string = member.value else { return JOSEError(.badClaim, "\(document.name(of: member)) is not a string") }
                if packed == Self.iss { issuerMember = member }
            case Self.aud:
                switch member.value {
                case .string: audienceMatched = self.audienceBytes.map { document.stringValue(of: member, equals: $0) } ?? false
                case .container(.array(let values)):
                    for value in values {
                        guard case .string(let entry) = value else { return JOSEError(.badClaim, "aud holds a non-string") }
                        if entry == audience { audienceMatched = true }
                    }
                default: return JOSEError(.badClaim, "aud is neither a string nor an array of strings")
                }
            default: continue
            }
        }
        guard let expiresAt else { return JOSEError(.missingClaim, "exp is required") }
        let leeway = self.policy.leeway
        if now >= expiresAt + leeway { return JOSEError(.expired, "expired \(Int64(max(0, min(now - expiresAt, 1e15)))) s ago") }
        if let notBefore, now < notBefore - leeway { return JOSEError(.notYetValid) }
        if let issuedAt, issuedAt > now + leeway { return JOSEError(.issuedInFuture) }
        if let required = self.issuerBytes {
            guard let issuerMember, claims.document.stringValue(of: issuerMember, equals: required) else { return JOSEError(.badIssuer) }
        }
        if audience != nil, !audienceMatched { return JOSEError(.badAudience) }
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
        guard let base = token.baseAddress, token.count >= 5 else { return nil }
        // memchr scans a word at a time: the byte loop it replaced was 7 instructions a byte.
        func dot(after start: Int) -> Int? {
            guard start < token.count, let found = memchr(base + start, Int32(UInt8(ascii: ".")), token.count - start) else { return nil }
            return base.distance(to: UnsafeRawPointer(found))
        }
        guard let first = dot(after: 0), let second = dot(after: first + 1), dot(after: second + 1) == nil,
            first > 0, second > first + 1, second < token.count - 1
        else { return nil }
        self.token = token
        self.header = 0..<first
        self.payload = first + 1..<second
        self.signature = second + 1..<token.count
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

    /// A segment's decoded bytes, owned (the verified claims keep them); nil if not base64url.
    func decodedBytes(_ range: Range<Int>) -> [UInt8]? {
        guard let count = Base64URL.decodedCount(range.count) else { return nil }
        var valid = true
        let bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            let written = Base64URL.decode(self.segment(range), into: UnsafeMutableRawBufferPointer(buffer))
            valid = written != nil
            initialized = written ?? 0
        }
        return valid ? bytes : nil
    }

    /// Header and payload decoded into one array; nil if either is not base64url.
    func decodeHeaderAndPayload() -> (bytes: [UInt8], header: Range<Int>, payload: Range<Int>)? {
        guard let headerCount = Base64URL.decodedCount(self.header.count),
            let payloadCount = Base64URL.decodedCount(self.payload.count)
        else { return nil }
        var header = 0..<0
        var payload = 0..<0
        let bytes = [UInt8](unsafeUninitializedCapacity: headerCount + payloadCount) { buffer, initialized in
            let raw = UnsafeMutableRawBufferPointer(buffer)
            guard let h = Base64URL.decode(self.segment(self.header), into: UnsafeMutableRawBufferPointer(rebasing: raw[0..<headerCount])),
                let p = Base64URL.decode(self.segment(self.payload), into: UnsafeMutableRawBufferPointer(rebasing: raw[h...]))
            else { return }
            header = 0..<h
            payload = h..<h + p
            initialized = h + p
        }
        return bytes.count == headerCount + payloadCount ? (bytes, header, payload) : nil
    }

    /// A segment decoded and read in place as a JSON object.
    func decodeDocument(_ range: Range<Int>, what: String) -> Result<InPlaceJSONObject, JOSEError> {
        guard let bytes = self.decodedBytes(range) else { return .failure(JOSEError(.malformed, "\(what) is not strict base64url")) }
        do { return .success(try InPlaceJSONObject(bytes: bytes)) } catch {
            return .failure(JOSEError(.malformed, "\(what) is not a JSON object (\(error))"))
        }
    }

    /// A segment decoded and parsed into a JSON object (for display).
    func decodeJSONObject(_ range: Range<Int>, what: String) -> Result<JSONObject, JOSEError> {
        self.decodeDocument(range, what: what).map(\.object)
    }

    /// Whether the signature verifies; nil when it is not strict base64url.
    func verifySignature(with key: VerificationKey.Prepared) -> Bool? {
        self.withDecoded(self.signature) { signature in key.verify(signature: signature, message: self.signingInput) }
    }
}
