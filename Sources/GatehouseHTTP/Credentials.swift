// SPDX-License-Identifier: Apache-2.0
public import GatehouseHTTP1
public import NIOHTTP1

/// Where a request's access token is, if anywhere.
public enum Credentials: Equatable, Sendable {
    /// No bearer token (no `Authorization` header, another scheme, no cookie).
    case none
    /// A token from `Authorization: Bearer`.
    case bearer(String)
    /// A token from the access-token cookie: a browser sends it by itself, so unsafe methods must
    /// show they come from the application (`CSRFCheck`).
    case cookie(String)
    /// Two `Authorization` headers: 400 `invalid_request`, never a guess at which one counts.
    case ambiguous
    /// `Bearer` with an empty or malformed token: 401 `malformed`.
    case malformed

    /// Reads the `Authorization` header (scheme case-insensitive, RFC 6750 §2.1), else the named
    /// access-token cookie.
    public init(fields headers: some HTTPFieldReading, cookie: String?) {
        var authorizations = 0
        var credentials = Credentials.none
        headers.forEachField { name, value in
            guard name.count == 13, ASCII.equalsIgnoringCase(name, "authorization") else { return true }
            authorizations += 1
            credentials = authorizations > 1 ? .ambiguous : Self.fromAuthorization(value)
            return authorizations < 2
        }
        if authorizations > 0 {
            self = credentials
            return
        }
        if let cookie, let value = Self.cookieValue(named: cookie, in: headers) {
            self = value.withUTF8Bytes { Self.isToken68(UnsafeRawBufferPointer($0)) } ? .cookie(value) : .malformed
            return
        }
        self = .none
    }

    /// A token from a WebSocket handshake's query parameter (`token_param`): a bearer token a
    /// browser put in the URL, since it cannot set `Authorization` on a WebSocket.
    public static func fromQueryParameter(_ value: String) -> Credentials {
        value.withUTF8Bytes { Self.isToken68(UnsafeRawBufferPointer($0)) } ? .bearer(value) : .malformed
    }

    public init(headers: HTTPHeaders, cookie: String?) {
        self.init(fields: headers, cookie: cookie)
    }

    /// The token, wherever it came from.
    public var token: String? {
        switch self {
        case .bearer(let token), .cookie(let token): return token
        case .none, .ambiguous, .malformed: return nil
        }
    }

    /// `Bearer` in any casing, spaces, then the token (RFC 6750 §2.1); another scheme is `.none`.
    /// Read as bytes: `Character`-wise slicing of the header cost more than the checks.
    private static func fromAuthorization(_ bytes: UnsafeRawBufferPointer) -> Credentials {
        guard bytes.count >= 6, ASCII.equalsIgnoringCase(UnsafeRawBufferPointer(rebasing: bytes[..<6]), "bearer"),
            bytes.count == 6 || bytes[6] == UInt8(ascii: " ")
        else { return .none }
        var start = 6
        while start < bytes.count, bytes[start] == UInt8(ascii: " ") { start += 1 }
        let token = UnsafeRawBufferPointer(rebasing: bytes[start...])
        return Self.isToken68(token) ? .bearer(String(decoding: token, as: UTF8.self)) : .malformed
    }

    /// RFC 6750's b64token: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
    private static func isToken68(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard !bytes.isEmpty else { return false }
        var index = 0
        while index < bytes.count, Self.isToken68Byte(bytes[index]) { index += 1 }
        guard index > 0 else { return false }
        while index < bytes.count, bytes[index] == UInt8(ascii: "=") { index += 1 }
        return index == bytes.count
    }

    /// ALPHA, DIGIT, `-`, `.`, `_`, `~`, `+`, `/`: one bit per ASCII byte in two masks.
    @inline(__always)
    private static func isToken68Byte(_ byte: UInt8) -> Bool {
        // Bits 43 (+), 45 (-), 46 (.), 47 (/) and 48...57 (digits).
        let low: UInt64 = 0x03FF_E800_0000_0000
        // Bits 65...90 (A-Z), 95 (_), 97...122 (a-z) and 126 (~), less 64.
        let high: UInt64 = 0x47FF_FFFE_87FF_FFFE
        switch byte {
        case 0..<64: return low & (1 << UInt64(byte)) != 0
        case 64..<128: return high & (1 << UInt64(byte - 64)) != 0
        default: return false
        }
    }

    /// The value of cookie `name` from the `Cookie` header(s) (RFC 6265 §5.4).
    public static func cookieValue(named name: String, in headers: some HTTPFieldReading) -> String? {
        for header in headers.values(named: "cookie") {
            for pair in CookiePair.pairs(of: header) where pair.name == name {
                var value = pair.value
                if value.count >= 2, value.first == "\"", value.last == "\"" { value = value.dropFirst().dropLast() }
                return String(value)
            }
        }
        return nil
    }
}

/// One `name=value` of a `Cookie` header, white space around the name and the value dropped as
/// servers drop it (Go's net/http trims spaces and tabs): what the gateway reads as its access
/// cookie is what it removes, and what an upstream would read.
package struct CookiePair {
    package var name: Substring
    package var value: Substring
    /// The pair as sent, trimmed.
    package var text: Substring

    package static func pairs(of header: String) -> [CookiePair] {
        header.split(separator: ";").map { part in
            let text = part.trimmingSpaces
            guard let equals = text.firstIndex(of: "=") else { return CookiePair(name: text, value: "", text: text) }
            return CookiePair(name: text[..<equals].trimmingSpaces, value: text[text.index(after: equals)...].trimmingSpaces, text: text)
        }
    }
}
