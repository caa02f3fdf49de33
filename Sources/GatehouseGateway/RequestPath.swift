// SPDX-License-Identifier: Apache-2.0
import GatehouseCrypto
import GatehouseHTTP1

/// A request target split into a normalised path and the raw query.
///
/// Normalisation decides what is matched and what is forwarded, so both see the same path: percent-
/// encoded unreserved characters are decoded (`%61pi` is `api`, `%2e%2e` is `..`), other escapes are
/// upper-cased and kept (`%2F` stays encoded and is no separator), `//` collapses, `.` and `..`
/// segments resolve. Without this, `/%61pi/` could miss an authenticated `/api/` route and reach an
/// upstream that decodes it.
///
/// Some bytes mean something else to some upstreams (DESIGN.md "Routing and headers"): `;` and
/// `%3B` start path parameters that Tomcat and Jetty drop (`/pub/..;/admin` is `/admin` there), and
/// `%2F`, `%5C` and `\` are separators to WSGI, Django, older Go and IIS. They are recorded in
/// `hazards`, in the path only (never the query); a route refuses `;` and `%2F` unless it keeps
/// them, and a backslash always. Since a route may keep `;`, a segment whose part before its first
/// `;` (or `%3B`) is `.` or `..` is resolved as a dot segment, as such an upstream reads it, and
/// `withoutParameters` is the path as it reads it (for the route check: see `RequestAuthorizer`).
public struct RequestPath: Sendable, Equatable {
    public let path: String
    /// The query without its `?`, as sent; nil when there was no `?`.
    public private(set) var query: String?
    /// What the raw path held that an upstream may read differently.
    public private(set) var hazards: Hazards = []

    public struct Hazards: OptionSet, Sendable, Hashable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }

        /// `;` or `%3B`.
        public static let semicolon = Hazards(rawValue: 1)
        /// `%2F`.
        public static let encodedSlash = Hazards(rawValue: 2)
        /// `\` or `%5C`: no route keeps it (none of the upstreams that need `%2F` needs it, and a
        /// `..\` would be a dot segment to some).
        public static let backslash = Hazards(rawValue: 4)
    }

    /// Why a route with these settings must not see this path: nil when it may.
    public func refusal(keepSemicolons: Bool, keepEncodedSlashes: Bool) -> String? {
        if self.hazards.contains(.semicolon), !keepSemicolons { return "the path holds ; or %3B, which some servers read as path parameters" }
        if self.hazards.contains(.encodedSlash), !keepEncodedSlashes { return "the path holds %2F, which some servers read as a separator" }
        if self.hazards.contains(.backslash) { return "the path holds \\ or %5C, which some servers read as a separator" }
        return nil
    }

    /// The path as a server that drops path parameters reads it: every segment cut at its first
    /// `;` or `%3B`, empty segments gone (Tomcat also collapses `//`).
    public var withoutParameters: String {
        guard self.hazards.contains(.semicolon) else { return self.path }
        let segments = self.path.utf8.split(separator: UInt8(ascii: "/")).map { Self.beforeParameters(ArraySlice($0)) }.filter { !$0.isEmpty }
        let joined = "/" + segments.map { String(decoding: $0, as: UTF8.self) }.joined(separator: "/")
        return self.path.hasSuffix("/") && segments.count > 0 ? joined + "/" : joined
    }

    public enum Failure: Error, Equatable {
        /// Not origin-form or absolute-form, a fragment, a bad escape or a control character.
        case invalid
        /// `..` would climb above `/`.
        case aboveRoot
    }

    public init(target: String) throws(Failure) {
        var target = Substring(target)
        // Absolute-form (RFC 9112 §3.2.2): keep only the path and query.
        for scheme in ["http://", "https://"] where target.count > scheme.count && target.prefix(scheme.count).lowercased() == scheme {
            let rest = target.dropFirst(scheme.count)
            target = rest.firstIndex(where: { $0 == "/" || $0 == "?" }).map { rest[$0...] } ?? "/"
            if target.first == "?" { target = "/" + target }
        }
        guard target.first == "/", !target.contains("#") else { throw .invalid }
        let rawPath: Substring
        if let question = target.firstIndex(of: "?") {
            rawPath = target[..<question]
            self.query = String(target[target.index(after: question)...])
        } else {
            rawPath = target
            self.query = nil
        }
        (self.path, self.hazards) = try Self.normalize(rawPath)
    }

    private static func normalize(_ raw: Substring) throws(Failure) -> (String, Hazards) {
        // Most paths are already normal: no escape, no empty, "." or ".." segment, no odd byte.
        if Self.isAlreadyNormal(raw.utf8) { return (String(raw), []) }
        var hazards: Hazards = []
        let bytes = Array(raw.utf8)
        var decoded: [UInt8] = []
        decoded.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            guard byte > 0x20, byte < 0x7F else { throw .invalid }
            if byte == UInt8(ascii: "%") {
                guard index + 2 < bytes.count, let high = ASCII.hexValue(bytes[index + 1]), let low = ASCII.hexValue(bytes[index + 2]) else {
                    throw .invalid
                }
                let value = UInt8(high << 4 | low)
                if value == UInt8(ascii: ";") { hazards.insert(.semicolon) }
                if value == UInt8(ascii: "/") { hazards.insert(.encodedSlash) }
                if value == UInt8(ascii: "\\") { hazards.insert(.backslash) }
                if isUnreserved(value) {
                    decoded.append(value)
                } else {
                    decoded += [UInt8(ascii: "%"), Hex.digit(value >> 4, uppercase: true), Hex.digit(value, uppercase: true)]
                }
                index += 3
            } else {
                if byte == UInt8(ascii: ";") { hazards.insert(.semicolon) }
                if byte == UInt8(ascii: "\\") { hazards.insert(.backslash) }
                decoded.append(byte)
                index += 1
            }
        }
        var segments: [ArraySlice<UInt8>] = []
        for segment in decoded.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true) {
            let dots = Self.beforeParameters(segment)
            if dots.elementsEqual(".".utf8) { continue }
            if dots.elementsEqual("..".utf8) {
                guard !segments.isEmpty else { throw .aboveRoot }
                segments.removeLast()
                continue
            }
            segments.append(segment)
        }
        var path = "/" + segments.map { String(decoding: $0, as: UTF8.self) }.joined(separator: "/")
        // A trailing slash (or a final "." or "..") names a directory: keep it.
        let last = Self.beforeParameters(decoded.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).last ?? [])
        if !segments.isEmpty, decoded.last == UInt8(ascii: "/") || last.elementsEqual(".".utf8) || last.elementsEqual("..".utf8) {
            path += "/"
        }
        return (path, hazards)
    }

    /// A segment up to its first `;` or `%3B`: what decides whether it is a dot segment.
    private static func beforeParameters(_ segment: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var index = segment.startIndex
        while index < segment.endIndex {
            if segment[index] == UInt8(ascii: ";") { return segment[..<index] }
            if segment[index] == UInt8(ascii: "%"), index + 2 < segment.endIndex, segment[index + 1] == UInt8(ascii: "3"),
                segment[index + 2] == UInt8(ascii: "B")
            {
                return segment[..<index]
            }
            index += 1
        }
        return segment
    }

    private static func isAlreadyNormal(_ path: Substring.UTF8View) -> Bool {
        var previous: UInt8 = 0
        for byte in path {
            guard byte > 0x20, byte < 0x7F, byte != UInt8(ascii: "%"), byte != UInt8(ascii: ";"), byte != UInt8(ascii: "\\") else { return false }
            if previous == UInt8(ascii: "/"), byte == UInt8(ascii: "/") || byte == UInt8(ascii: ".") { return false }
            previous = byte
        }
        return true
    }

    private static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            true
        default: false
        }
    }

    /// The target to send upstream: `prefix` removed when the route strips it (the bare prefix
    /// becomes `/`), the upstream's base path in front, the query as it came.
    /// Takes every `name=value` pair named `name` out of the query and returns their values (as
    /// sent): a token in a URL goes no further than the gateway. Names are compared percent-decoded,
    /// as an upstream's framework reads them (`access%5Ftoken` is `access_token`), so that a second
    /// spelling can neither slip past nor be forwarded.
    public mutating func takeQueryParameter(_ name: String) -> [String] {
        guard let query = self.query else { return [] }
        var values: [String] = []
        var kept: [Substring] = []
        for pair in query.split(separator: "&", omittingEmptySubsequences: false) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if parts[0] == name || parts[0].contains("%") && Self.percentDecoded(parts[0]) == name {
                values.append(parts.count == 2 ? String(parts[1]) : "")
            } else {
                kept.append(pair)
            }
        }
        guard !values.isEmpty else { return [] }
        self.query = kept.isEmpty ? nil : kept.joined(separator: "&")
        return values
    }

    /// `text` with its `%XX` escapes decoded (others kept as they are).
    private static func percentDecoded(_ text: Substring) -> String {
        var bytes: [UInt8] = []
        var utf8 = Array(text.utf8)[...]
        while let byte = utf8.popFirst() {
            if byte == UInt8(ascii: "%"), utf8.count >= 2, let high = ASCII.hexValue(utf8[utf8.startIndex]),
                let low = ASCII.hexValue(utf8[utf8.startIndex + 1])
            {
                bytes.append(UInt8(high << 4 | low))
                utf8 = utf8.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    public func forwardedTarget(stripping prefix: String?, basePath: String) -> String {
        var path = self.path
        if let prefix, path.hasPrefix(prefix) {
            path = String(path.dropFirst(prefix.count))
            if !path.hasPrefix("/") { path = "/" + path }
        }
        return basePath + path + (self.query.map { "?" + $0 } ?? "")
    }
}
