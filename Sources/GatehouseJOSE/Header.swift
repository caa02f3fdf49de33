// SPDX-License-Identifier: Apache-2.0

/// A JWS protected header as read from a token: parsed, not yet trusted.
///
/// Only `alg`, `kid`, `typ` and `crit` are read. `jwk`, `jku`, `x5u` and `x5c` are never looked at,
/// let alone fetched: keys come from configuration only.
public struct JOSEHeader: Sendable {
    let document: InPlaceJSONObject
    /// The algorithm `alg` names, nil if it names none Gatehouse knows (`none` included).
    let algorithm: Algorithm?
    let keyIDMember: InPlaceJSONObject.Member?
    let typeMember: InPlaceJSONObject.Member?
    /// Whether `crit` is present (it is then a non-empty array of strings).
    let hasCritical: Bool

    init(document: InPlaceJSONObject) throws(JOSEError) {
        guard let alg = document.member("alg") else { throw JOSEError(.malformed, "header has no alg") }
        guard case .string(let range, let escaped) = alg.value else { throw JOSEError(.malformed, "header alg is not a string") }
        self.algorithm = escaped
            ? Algorithm(name: document.string(range, escaped: true))
            : document.withBytes { Algorithm(name: UnsafeRawBufferPointer(rebasing: $0[range])) }
        self.keyIDMember = try Self.optionalString(document, "kid")
        self.typeMember = try Self.optionalString(document, "typ")
        if let crit = document.member("crit") {
            // RFC 7515 §4.1.11: a non-empty array of strings.
            guard case .container(.array(let names)) = crit.value, !names.isEmpty, names.allSatisfy({ $0.stringValue != nil }) else {
                throw JOSEError(.malformed, "header crit is not a non-empty array of strings")
            }
            self.hasCritical = true
        } else {
            self.hasCritical = false
        }
        self.document = document
    }

    private static func optionalString(_ document: InPlaceJSONObject, _ name: StaticString) throws(JOSEError) -> InPlaceJSONObject.Member? {
        guard let member = document.member(name) else { return nil }
        guard case .string = member.value else { throw JOSEError(.malformed, "header \(name) is not a string") }
        return member
    }

    /// Every member, for display.
    public var json: JSONObject { self.document.object }
    /// `alg` as written (not necessarily an algorithm Gatehouse knows).
    public var algorithmName: String { self.document.member("alg").map { self.document.value(of: $0).stringValue ?? "" } ?? "" }
    public var keyID: String? { self.keyIDMember.map { self.document.value(of: $0).stringValue ?? "" } }
    public var type: String? { self.typeMember.map { self.document.value(of: $0).stringValue ?? "" } }

    /// The bytes of a string member (unescaped strings only), handed to `body`.
    func withBytes<R>(of member: InPlaceJSONObject.Member, _ body: (UnsafeRawBufferPointer) -> R) -> R? {
        guard case .string(let range, false) = member.value else { return nil }
        return self.document.withBytes { body(UnsafeRawBufferPointer(rebasing: $0[range])) }
    }
}
