// SPDX-License-Identifier: Apache-2.0
import GatehouseCrypto
import Synchronization
public import NIOHTTP1

/// What the gateway knows about a request's connection, for the forwarding headers.
public struct ForwardingContext: Sendable {
    /// The client's address (the socket peer).
    public var clientAddress: String
    /// `http` or `https`: the scheme the client used.
    public var scheme: String
    /// `host:port` of the upstream, the `Host` sent unless the route preserves the client's.
    public var upstreamAuthority: String
    public var preserveHost: Bool
    public var forwardToken: Bool

    public init(clientAddress: String, scheme: String, upstreamAuthority: String, preserveHost: Bool, forwardToken: Bool) {
        self.clientAddress = clientAddress
        self.scheme = scheme
        self.upstreamAuthority = upstreamAuthority
        self.preserveHost = preserveHost
        self.forwardToken = forwardToken
    }
}

/// Rewrites headers between client and upstream (DESIGN.md "Routing and headers").
public enum HeaderRewriter {
    /// Hop-by-hop headers (RFC 9110 §7.6.1 and the usual proxy ones), removed in both directions.
    static let hopByHop = [
        "connection", "keep-alive", "te", "trailer", "upgrade", "proxy-connection", "proxy-authorization",
        "proxy-authenticate",
    ]

    /// ASCII case-insensitive equality, without allocating.
    @inline(__always)
    static func equalsIgnoringCase(_ name: String, _ lowercase: String) -> Bool {
        name.utf8.count == lowercase.utf8.count
            && zip(name.utf8, lowercase.utf8).allSatisfy { ($0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0) == $1 }
    }

    /// Removes `Connection`, every header it names, the other hop-by-hop headers and, when
    /// `identity` is set, every client identity header. Headers are only rebuilt when one is found.
    static func removeHopByHop(_ headers: inout HTTPHeaders, identityHeaders: Bool = false) {
        var named: [Substring] = []
        for value in headers["connection"] {
            for token in value.split(separator: ",") {
                let token = token.trimmingSpaces
                // `close` and `keep-alive` name no header worth a rebuild.
                if !token.isEmpty, !equalsIgnoringCase(String(token), "close") { named.append(token) }
            }
        }
        func drop(_ name: String) -> Bool {
            (identityHeaders && isIdentityHeader(name)) || hopByHop.contains { equalsIgnoringCase(name, $0) }
                || named.contains { equalsIgnoringCase(name, String($0).lowercased()) }
        }
        guard headers.contains(where: { drop($0.name) }) else { return }
        headers = HTTPHeaders(headers.filter { !drop($0.name) })
    }

    /// Whether `name` is an identity header, reading `_` as `-` (`X_User_Id` too).
    static func isIdentityHeader(_ name: String) -> Bool {
        let utf8 = name.utf8
        guard utf8.count >= 7 else { return false }
        for (byte, expected) in zip(utf8.prefix(7), "x-user-".utf8) {
            let lowered = byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte
            guard lowered == expected || (expected == UInt8(ascii: "-") && byte == UInt8(ascii: "_")) else { return false }
        }
        return true
    }

    /// The request's id: the client's `X-Request-Id` when it is short printable ASCII, else a new one.
    public static func requestID(of headers: HTTPHeaders) -> String {
        if let given = headers.first(name: "x-request-id"), Self.isAcceptableRequestID(given) { return given }
        return Self.makeRequestID()
    }

    /// The request as the upstream sees it: hop-by-hop and client identity headers gone, the
    /// verified identity (if any) set, `X-Forwarded-*`, `X-Request-Id` (`requestID`, computed by
    /// `requestID(of:)` when nil) and `Host` filled in. Returns the request id.
    @discardableResult
    public static func rewriteRequest(
        _ headers: inout HTTPHeaders, identity: Identity?, context: ForwardingContext, requestID: String? = nil
    ) -> String {
        let requestID = requestID ?? Self.requestID(of: headers)
        let clientHost = headers.first(name: "host")
        Self.removeHopByHop(&headers, identityHeaders: true)
        if let identity { Self.addIdentity(identity, to: &headers) }
        let forwardedFor = headers["x-forwarded-for"].joined(separator: ", ")
        headers.replaceOrAdd(name: "X-Forwarded-For", value: forwardedFor.isEmpty ? context.clientAddress : forwardedFor + ", " + context.clientAddress)
        headers.replaceOrAdd(name: "X-Forwarded-Proto", value: context.scheme)
        if let clientHost { headers.replaceOrAdd(name: "X-Forwarded-Host", value: clientHost) } else { headers.remove(name: "x-forwarded-host") }
        if headers.first(name: "x-request-id") != requestID { headers.replaceOrAdd(name: "X-Request-Id", value: requestID) }
        if !context.preserveHost { headers.replaceOrAdd(name: "Host", value: context.upstreamAuthority) }
        if !context.forwardToken { headers.remove(name: "authorization") }
        return requestID
    }

    /// `X-User-Id`, `X-User-Role`, `X-User-Roles`, `X-User-Scopes`; empty lists send no header
    /// rather than an empty value.
    public static func addIdentity(_ identity: Identity, to headers: inout HTTPHeaders) {
        headers.add(name: "X-User-Id", value: identity.userID)
        if let role = identity.role { headers.add(name: "X-User-Role", value: role) }
        if !identity.roles.isEmpty { headers.add(name: "X-User-Roles", value: identity.roles.joined(separator: ",")) }
        if !identity.scopes.isEmpty { headers.add(name: "X-User-Scopes", value: identity.scopes.joined(separator: ",")) }
    }

    /// The response as the client sees it: hop-by-hop headers gone.
    public static func rewriteResponse(_ headers: inout HTTPHeaders) {
        Self.removeHopByHop(&headers)
    }

    /// A client's request id is kept when it is short printable ASCII; otherwise a new one is made.
    static func isAcceptableRequestID(_ id: String) -> Bool {
        id.utf8.count <= 128 && Identity.isSafe(id)
    }

    /// A request id unique within the fleet: 64 random bits drawn once per process, then a
    /// per-thread counter (no random draw per request: OpenSSL's DRBG calls getpid every time).
    static func makeRequestID() -> String {
        RequestIDs.next()
    }
}

extension Substring {
    /// Without leading and trailing spaces and tabs (HTTP's optional whitespace).
    var trimmingSpaces: Substring {
        var slice = self
        while let first = slice.first, first == " " || first == "\t" { slice = slice.dropFirst() }
        while let last = slice.last, last == " " || last == "\t" { slice = slice.dropLast() }
        return slice
    }
}

/// Request ids: a random process prefix and a counter.
enum RequestIDs {
    private static let prefix: String = SecureRandom.bytes(8).map { String($0, radix: 16) }.map { $0.count == 1 ? "0" + $0 : $0 }.joined()
    private static let counter = Atomic<UInt64>(0)

    static func next() -> String {
        let value = Self.counter.add(1, ordering: .relaxed).newValue
        let hex = String(value, radix: 16)
        return Self.prefix + String(repeating: "0", count: 16 - hex.count) + hex
    }
}
