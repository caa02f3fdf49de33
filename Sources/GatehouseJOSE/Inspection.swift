// SPDX-License-Identifier: Apache-2.0

/// What `gatehouse token inspect` reports about a token: everything readable, trusted or not.
public struct Inspection: Sendable {
    /// The signature check's outcome.
    public enum SignatureStatus: String, Sendable {
        case valid, invalid
        case unknownKey = "unknown_key"
        /// No keys were given.
        case unchecked
    }

    /// The header, if it decodes to a JSON object.
    public let header: JSONObject?
    /// The payload, if it decodes to JSON.
    public let claims: JSONValue?
    public let signature: SignatureStatus
    /// nil when the token is valid under the policy.
    public let rejection: JOSEError?

    /// Inspects `token`. With `verifier` nil, the signature is not checked and the verdict covers
    /// the rest (a token is then never `valid`).
    public init(token: String, verifier: Verifier?, now: Double) {
        var token = token
        let policy = verifier?.policy
            ?? VerificationPolicy(algorithms: Set(Algorithm.allCases), issuer: nil, audience: nil, type: .any)
        let effective = verifier ?? Verifier(policy: policy, keys: .empty)
        (self.header, self.claims, self.signature, self.rejection) = token.withUTF8 { utf8 in
            let bytes = UnsafeRawBufferPointer(utf8)
            let segments = CompactSegments(bytes)
            let header = segments.flatMap { try? $0.decodeJSONObject($0.header, what: "header").get() }
            let claims = segments.flatMap { segments in
                segments.withDecoded(segments.payload) { try? JSONReader.parse($0) } ?? nil
            }
            var signature = SignatureStatus.unchecked
            if let verifier, let segments, let header {
                if let name = header["alg"]?.stringValue, let algorithm = Algorithm(rawValue: name) {
                    switch verifier.keys.lookup(keyID: header["kid"]?.stringValue, algorithm: algorithm) {
                    case .found(let key): signature = segments.verifySignature(with: key) == true ? .valid : .invalid
                    case .unknownKeyID, .algorithmMismatch: signature = .unknownKey
                    }
                } else {
                    signature = .invalid  // alg none, or no algorithm at all: nothing verifies it
                }
            }
            var rejection: JOSEError? = nil
            if case .failure(let error) = effective.verify(bytes, now: now, checkingSignature: verifier != nil) {
                rejection = error
            }
            return (header, claims, signature, rejection)
        }
    }

    /// `"valid"` or the rejection reason; `"unchecked"` when no keys were given and nothing else failed.
    public var verdict: String {
        if let rejection { return rejection.reason.rawValue }
        return self.signature == .unchecked ? "unchecked" : "valid"
    }

    /// Whether the token is valid: its signature checked and every rule passed.
    public var isValid: Bool { self.verdict == "valid" }

    /// The report as one JSON object.
    public var json: JSONObject {
        var report = JSONObject()
        report["header"] = self.header.map { .object($0) } ?? .null
        report["claims"] = self.claims ?? .null
        report["signature"] = .string(self.signature.rawValue)
        report["verdict"] = .string(self.verdict)
        if let rejection, !rejection.detail.isEmpty { report["detail"] = .string(rejection.detail) }
        return report
    }
}
