// SPDX-License-Identifier: Apache-2.0
import NIOHTTP1

/// The parts of a request line, as offsets into the head.
struct RequestLine: Sendable {
    var method: HTTPMethod
    var target: Range<Int>
    var version: HTTPVersion
}

/// The parts of a status line.
struct StatusLine: Sendable {
    var version: HTTPVersion
    var status: Int
    var reason: Range<Int>
}

enum StartLine {
    /// `method SP request-target SP HTTP-version` (RFC 9112 §3), exactly one SP between parts.
    static func parseRequest(_ bytes: UnsafeRawBufferPointer, _ line: Range<Int>) throws(HTTP1ParseError) -> RequestLine {
        var i = line.lowerBound
        while i < line.upperBound, ASCII.isTChar(bytes[i]) { i += 1 }
        let methodRange = line.lowerBound..<i
        guard i < line.upperBound else {
            throw HTTP1ParseError(Self.containsCR(bytes, line) ? .bareCR : .malformedRequestLine)
        }
        guard bytes[i] == ASCII.sp else { throw HTTP1ParseError(bytes[i] == ASCII.cr ? .bareCR : .methodNotToken) }
        guard !methodRange.isEmpty else { throw HTTP1ParseError(.methodNotToken) }
        // llhttp knows a fixed set of methods and refuses every other token; so do we, to stay at
        // least as strict as the decoder this replaces.
        guard let method = Methods.lookup(UnsafeRawBufferPointer(rebasing: bytes[methodRange])) else {
            throw HTTP1ParseError(.unknownMethod)
        }
        i += 1

        let targetStart = i
        while i < line.upperBound {
            let b = bytes[i]
            if b == ASCII.sp { break }
            // Visible ASCII only (RFC 9112 §3.2, RFC 3986 §2). Stricter than llhttp, which takes
            // HTAB, FF and obs-text in a path.
            guard b > 0x20 && b < 0x7F else { throw HTTP1ParseError(b == ASCII.cr ? .bareCR : .targetByte) }
            i += 1
        }
        let target = targetStart..<i
        guard !target.isEmpty else { throw HTTP1ParseError(.requestLineSpacing) }
        // Without a version this would be an HTTP/0.9 request line.
        guard i < line.upperBound else { throw HTTP1ParseError(.malformedRequestLine) }
        i += 1
        let version = try Self.parseVersion(bytes, i..<line.upperBound, request: true)
        try Self.checkTargetForm(UnsafeRawBufferPointer(rebasing: bytes[target]), method: method)
        return RequestLine(method: method, target: target, version: version)
    }

    /// `HTTP-version SP 3DIGIT SP reason-phrase` (RFC 9112 §4); like llhttp, `HTTP/1.1 200` with
    /// neither SP nor reason is accepted too.
    static func parseStatus(_ bytes: UnsafeRawBufferPointer, _ line: Range<Int>) throws(HTTP1ParseError) -> StatusLine {
        guard line.count >= 12 else {
            throw HTTP1ParseError(Self.containsCR(bytes, line) ? .bareCRInStatusLine : .malformedStatusLine)
        }
        let versionEnd = line.lowerBound + 8
        let version = try Self.parseVersion(bytes, line.lowerBound..<versionEnd, request: false)
        guard bytes[versionEnd] == ASCII.sp else { throw HTTP1ParseError(.malformedStatusLine) }
        let d0 = bytes[versionEnd + 1]
        let d1 = bytes[versionEnd + 2]
        let d2 = bytes[versionEnd + 3]
        // 3DIGIT, 100...999 (RFC 9110 §15: the first digit is the class, 1 to 5 defined).
        guard d0 >= 0x31 && d0 <= 0x39, ASCII.isDigit(d1), ASCII.isDigit(d2) else {
            throw HTTP1ParseError(.malformedStatusLine)
        }
        let status = Int(d0 - 0x30) * 100 + Int(d1 - 0x30) * 10 + Int(d2 - 0x30)
        var reasonStart = versionEnd + 4
        if reasonStart < line.upperBound {
            guard bytes[reasonStart] == ASCII.sp else {
                throw HTTP1ParseError(bytes[reasonStart] == ASCII.cr ? .bareCRInStatusLine : .malformedStatusLine)
            }
            reasonStart += 1
        }
        // reason-phrase = *( HTAB / SP / VCHAR / obs-text ); llhttp takes any byte but CR and LF.
        // llhttp (9.3) also takes the byte after a CR there as the end of the line: RFC 9112 §2.2
        // makes a bare CR invalid.
        for i in reasonStart..<line.upperBound where !ASCII.isFieldByte(bytes[i]) {
            throw HTTP1ParseError(bytes[i] == ASCII.cr ? .bareCRInStatusLine : .reasonByte)
        }
        return StatusLine(version: version, status: status, reason: reasonStart..<line.upperBound)
    }

    /// Exactly `HTTP/1.0` or `HTTP/1.1`; other `HTTP/d.d` → 505; anything else is malformed.
    private static func parseVersion(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, request: Bool) throws(HTTP1ParseError) -> HTTPVersion {
        let v = UnsafeRawBufferPointer(rebasing: bytes[range])
        guard v.count == 8, v[0] == UInt8(ascii: "H"), v[1] == UInt8(ascii: "T"), v[2] == UInt8(ascii: "T"), v[3] == UInt8(ascii: "P"),
            v[4] == UInt8(ascii: "/"), ASCII.isDigit(v[5]), v[6] == UInt8(ascii: "."), ASCII.isDigit(v[7])
        else {
            if Self.containsCR(bytes, range) { throw HTTP1ParseError(.bareCR) }
            if request, Self.containsSP(bytes, range) { throw HTTP1ParseError(.requestLineSpacing) }
            // llhttp also speaks RTSP/1.0 and ICE/1.0 (RFC 9112 §2.3: HTTP-name is "HTTP").
            if v.starts(with: "RTSP/".utf8) || v.starts(with: "ICE/".utf8) { throw HTTP1ParseError(.protocolNotHTTP) }
            throw HTTP1ParseError(.malformedVersion)
        }
        guard v[5] == UInt8(ascii: "1"), v[7] == UInt8(ascii: "0") || v[7] == UInt8(ascii: "1") else {
            throw .unsupportedVersion
        }
        return v[7] == UInt8(ascii: "1") ? .http1_1 : .http1_0
    }

    /// RFC 9112 §3.2: origin-form for most methods, absolute-form for any, authority-form only and
    /// always for CONNECT, asterisk-form only for OPTIONS. Each form is also a subset of what
    /// llhttp's URL parser accepts.
    private static func checkTargetForm(_ t: UnsafeRawBufferPointer, method: HTTPMethod) throws(HTTP1ParseError) {
        if method == .CONNECT {
            guard Self.isAuthorityForm(t) else { throw HTTP1ParseError(.targetForm) }
            return
        }
        switch t[0] {
        case UInt8(ascii: "/"):
            return  // origin-form: any visible ASCII follows (llhttp splits it at ? and #).
        case UInt8(ascii: "*"):
            guard t.count == 1, method == .OPTIONS else { throw HTTP1ParseError(.targetForm) }
        default:
            guard Self.isAbsoluteForm(t) else { throw HTTP1ParseError(.targetForm) }
        }
    }

    /// `ALPHA+ "://" authority [ ("/" / "?") *VCHAR ]`: llhttp's schema is letters only and it
    /// wants `//`; RFC 9110 §4.2.1 refuses an empty host.
    private static func isAbsoluteForm(_ t: UnsafeRawBufferPointer) -> Bool {
        var i = 0
        while i < t.count, ASCII.isAlpha(t[i]) { i += 1 }
        guard i > 0, i + 3 <= t.count, t[i] == ASCII.colon, t[i + 1] == UInt8(ascii: "/"), t[i + 2] == UInt8(ascii: "/") else {
            return false
        }
        i += 3
        let authorityStart = i
        var ats = 0
        while i < t.count, t[i] != UInt8(ascii: "/"), t[i] != UInt8(ascii: "?") {
            guard Self.isAuthorityByte(t[i]) || t[i] == UInt8(ascii: "@") else { return false }
            if t[i] == UInt8(ascii: "@") { ats += 1 }
            i += 1
        }
        return i > authorityStart && ats <= 1 && t[i - 1] != UInt8(ascii: "@")
    }

    /// `uri-host ":" port` (RFC 9112 §3.2.3), no userinfo.
    private static func isAuthorityForm(_ t: UnsafeRawBufferPointer) -> Bool {
        var colon = -1
        for i in 0..<t.count {
            guard Self.isAuthorityByte(t[i]) else { return false }
            if t[i] == ASCII.colon { colon = i }
        }
        guard colon > 0, colon < t.count - 1 else { return false }
        for i in (colon + 1)..<t.count where !ASCII.isDigit(t[i]) { return false }
        return true
    }

    /// unreserved / sub-delims / pct-encoded's "%" / ":" / "[" / "]" (RFC 3986 §3.2): all in llhttp's
    /// URL server characters.
    private static func isAuthorityByte(_ b: UInt8) -> Bool {
        if ASCII.isAlpha(b) || ASCII.isDigit(b) { return true }
        switch b {
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "!"), UInt8(ascii: "$"),
            UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "*"), UInt8(ascii: "+"),
            UInt8(ascii: ","), UInt8(ascii: ";"), UInt8(ascii: "="), UInt8(ascii: "%"), UInt8(ascii: ":"), UInt8(ascii: "["),
            UInt8(ascii: "]"):
            return true
        default:
            return false
        }
    }

    private static func containsCR(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Bool {
        for i in range where bytes[i] == ASCII.cr { return true }
        return false
    }

    private static func containsSP(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Bool {
        for i in range where bytes[i] == ASCII.sp { return true }
        return false
    }
}

/// The methods llhttp accepts with `HTTP/`: NIO's enum cases where there is one, `.RAW` otherwise.
enum Methods {
    private static let table: [(StaticString, HTTPMethod)] = [
        ("GET", .GET), ("PUT", .PUT), ("ACL", .ACL), ("HEAD", .HEAD), ("POST", .POST), ("COPY", .COPY), ("LOCK", .LOCK),
        ("MOVE", .MOVE), ("BIND", .BIND), ("LINK", .LINK), ("PATCH", .PATCH), ("TRACE", .TRACE), ("MKCOL", .MKCOL),
        ("MERGE", .MERGE), ("PURGE", .PURGE), ("NOTIFY", .NOTIFY), ("SEARCH", .SEARCH), ("UNLOCK", .UNLOCK),
        ("REBIND", .REBIND), ("UNBIND", .UNBIND), ("REPORT", .REPORT), ("DELETE", .DELETE), ("UNLINK", .UNLINK),
        ("CONNECT", .CONNECT), ("M-SEARCH", .MSEARCH), ("OPTIONS", .OPTIONS), ("PROPFIND", .PROPFIND),
        ("CHECKOUT", .CHECKOUT), ("PROPPATCH", .PROPPATCH), ("SUBSCRIBE", .SUBSCRIBE), ("MKCALENDAR", .MKCALENDAR),
        ("MKACTIVITY", .MKACTIVITY), ("UNSUBSCRIBE", .UNSUBSCRIBE), ("SOURCE", .SOURCE), ("QUERY", .RAW(value: "QUERY")),
    ]

    /// Methods are case-sensitive (RFC 9110 §9.1).
    static func lookup(_ bytes: UnsafeRawBufferPointer) -> HTTPMethod? {
        for (name, method) in Self.table where name.utf8CodeUnitCount == bytes.count {
            if memcmpEqual(bytes, name) { return method }
        }
        return nil
    }

    private static func memcmpEqual(_ bytes: UnsafeRawBufferPointer, _ name: StaticString) -> Bool {
        let p = name.utf8Start
        for i in 0..<bytes.count where bytes[i] != p[i] { return false }
        return true
    }
}
