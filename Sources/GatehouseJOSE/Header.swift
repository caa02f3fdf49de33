// SPDX-License-Identifier: Apache-2.0

/// A JWS protected header as read from a token: parsed, not yet trusted.
///
/// Only `alg`, `kid`, `typ` and `crit` are read. `jwk`, `jku`, `x5u` and `x5c` are never looked at,
/// let alone fetched: keys come from configuration only.
public struct JOSEHeader: Sendable {
    /// Every member, for display.
    public let json: JSONObject
    /// `alg` as written (not necessarily an algorithm Gatehouse knows).
    public let algorithmName: String
    public let keyID: String?
    public let type: String?
    /// `crit`: names of extensions the token says must be understood.
    public let critical: [String]?

    init(json: JSONObject) throws(JOSEError) {
        guard let alg = json["alg"] else { throw JOSEError(.malformed, "header has no alg") }
        guard let algorithmName = alg.stringValue else { throw JOSEError(.malformed, "header alg is not a string") }
        self.algorithmName = algorithmName
        self.keyID = try Self.optionalString(json, "kid")
        self.type = try Self.optionalString(json, "typ")
        if let crit = json["crit"] {
            // RFC 7515 §4.1.11: a non-empty array of strings.
            guard let names = crit.arrayValue?.compactMap(\.stringValue), !names.isEmpty,
                names.count == crit.arrayValue?.count
            else { throw JOSEError(.malformed, "header crit is not a non-empty array of strings") }
            self.critical = names
        } else {
            self.critical = nil
        }
        self.json = json
    }

    private static func optionalString(_ json: JSONObject, _ name: String) throws(JOSEError) -> String? {
        guard let value = json[name] else { return nil }
        guard let string = value.stringValue else { throw JOSEError(.malformed, "header \(name) is not a string") }
        return string
    }
}
