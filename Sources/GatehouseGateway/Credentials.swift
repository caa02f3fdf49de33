// SPDX-License-Identifier: Apache-2.0
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
    public init(headers: HTTPHeaders, cookie: String?) {
        var authorization: String? = nil
        for (name, value) in headers where HeaderRewriter.equalsIgnoringCase(name, "authorization") {
            guard authorization == nil else {
                self = .ambiguous
                return
            }
            authorization = value
        }
        if let authorization {
            // "Bearer" in any casing, then the token (RFC 6750 §2.1).
            let utf8 = authorization.utf8
            guard utf8.count >= 6, HeaderRewriter.equalsIgnoringCase(String(authorization.prefix(6)), "bearer"),
                utf8.count == 6 || authorization.dropFirst(6).first == " "
            else {
                self = .none
                return
            }
            let token = authorization.dropFirst(6).drop { $0 == " " }
            self = Self.isToken68(token) ? .bearer(String(token)) : .malformed
            return
        }
        if let cookie, let value = Self.cookieValue(named: cookie, in: headers) {
            self = Self.isToken68(Substring(value)) ? .cookie(value) : .malformed
            return
        }
        self = .none
    }

    /// The token, wherever it came from.
    public var token: String? {
        switch self {
        case .bearer(let token), .cookie(let token): return token
        case .none, .ambiguous, .malformed: return nil
        }
    }

    /// RFC 6750's b64token: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
    private static func isToken68(_ token: Substring) -> Bool {
        var token = token
        return token.withUTF8 { bytes in
            guard !bytes.isEmpty else { return false }
            var seenPadding = false
            for byte in bytes {
                switch byte {
                case UInt8(ascii: "="): seenPadding = true
                case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                    UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "+"), UInt8(ascii: "/"):
                    if seenPadding { return false }
                default: return false
                }
            }
            return true
        }
    }

    /// The value of cookie `name` from the `Cookie` header(s) (RFC 6265 §5.4).
    public static func cookieValue(named name: String, in headers: HTTPHeaders) -> String? {
        for header in headers["cookie"] {
            for pair in header.split(separator: ";") {
                let trimmed = pair.drop { $0 == " " }
                guard let equals = trimmed.firstIndex(of: "="), trimmed[..<equals] == name else { continue }
                var value = trimmed[trimmed.index(after: equals)...]
                if value.count >= 2, value.first == "\"", value.last == "\"" { value = value.dropFirst().dropLast() }
                return String(value)
            }
        }
        return nil
    }
}
