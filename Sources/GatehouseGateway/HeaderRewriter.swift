// SPDX-License-Identifier: Apache-2.0
import GatehouseCrypto
import GatehouseHTTP1
public import GatehouseHTTP
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
    /// Whether `Authorization` (and the gateway's access cookie, `accessCookie`) go upstream.
    public var forwardToken: Bool
    /// The name of the gateway's access-token cookie (`verify.cookie`), if any.
    public var accessCookie: String?
    /// The peer is one of `trusted_proxies`: its forwarding headers are believed and passed on.
    public var trustedPeer: Bool
    /// The request is a WebSocket handshake: `Upgrade: websocket` and `Connection: Upgrade` go
    /// upstream (every other `Upgrade` is removed as hop-by-hop).
    public var webSocket = false

    public init(
        clientAddress: String, scheme: String, upstreamAuthority: String, preserveHost: Bool, forwardToken: Bool, accessCookie: String? = nil,
        trustedPeer: Bool = false
    ) {
        self.clientAddress = clientAddress
        self.scheme = scheme
        self.upstreamAuthority = upstreamAuthority
        self.preserveHost = preserveHost
        self.forwardToken = forwardToken
        self.accessCookie = accessCookie
        self.trustedPeer = trustedPeer
    }
}

/// Where rewritten header fields go: an `HTTPHeaders`, or the bytes of a head being written.
protocol HeaderSink {
    mutating func add(name: String, value: String)
    /// A field as bytes: copied as they are into a head, no `String` made on the way.
    mutating func add(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)
}

extension HTTPHeaders: HeaderSink {
    mutating func add(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        self.add(name: String(decoding: name, as: UTF8.self), value: String(decoding: value, as: UTF8.self))
    }
}

/// Rewrites headers between client and upstream (DESIGN.md "Routing and headers"), in one pass
/// over the fields straight into the sink, each name classified by one look at its bytes.
public enum HeaderRewriter {
    /// What a header name means to the rewriting.
    enum FieldRole {
        case other
        /// Hop-by-hop (RFC 9110 §7.6.1 and the usual proxy ones): `Connection`, `Keep-Alive`, `TE`,
        /// `Trailer`, `Upgrade`, `Proxy-Connection`, `Proxy-Authorization`, `Proxy-Authenticate`.
        case hopByHop
        /// `X-User-*`, reading `_` as `-`: set by the gateway only.
        case identity
        case host, authorization, cookie, expect, transferEncoding, contentLength
        case forwardedFor, forwardedProto, forwardedHost, requestID
        /// `Forwarded`, `X-Real-IP`, `X-Forwarded-Port`, `X-Forwarded-Prefix`, `X-Original-URL`,
        /// `X-Rewrite-URL`: believed by upstreams (Symfony and IIS route by the last two), so only
        /// a trusted proxy's pass.
        case clientForwarding
        /// A forwarding header's name spelled with `_` for `-` (`X_Real_IP`): servers that map names
        /// to CGI variables (`HTTP_X_REAL_IP`) read it as the real one, so it never passes.
        case forwardingAlias
    }

    /// The role of the header named by `bytes` (ASCII case-insensitive).
    static func role(of bytes: UnsafeRawBufferPointer) -> FieldRole {
        @inline(__always) func equals(_ lowercase: StaticString) -> Bool { ASCII.equalsIgnoringCase(bytes, lowercase) }
        switch bytes.count {
        case 2: if equals("te") { return .hopByHop }
        case 4: if equals("host") { return .host }
        case 6:
            if equals("expect") { return .expect }
            if equals("cookie") { return .cookie }
        case 7: if equals("upgrade") || equals("trailer") { return .hopByHop }
        case 9: if equals("forwarded") || equals("x-real-ip") { return .clientForwarding }
        case 10: if equals("connection") || equals("keep-alive") { return .hopByHop }
        case 12: if equals("x-request-id") { return .requestID }
        case 13:
            if equals("authorization") { return .authorization }
            if equals("x-rewrite-url") { return .clientForwarding }
        case 14:
            if equals("content-length") { return .contentLength }
            if equals("x-original-url") { return .clientForwarding }
        case 15: if equals("x-forwarded-for") { return .forwardedFor }
        case 16:
            if equals("x-forwarded-host") { return .forwardedHost }
            if equals("proxy-connection") { return .hopByHop }
            if equals("x-forwarded-port") { return .clientForwarding }
        case 17:
            if equals("transfer-encoding") { return .transferEncoding }
            if equals("x-forwarded-proto") { return .forwardedProto }
        case 18:
            if equals("proxy-authenticate") { return .hopByHop }
            if equals("x-forwarded-prefix") { return .clientForwarding }
        case 19: if equals("proxy-authorization") { return .hopByHop }
        default: break
        }
        if Self.isIdentityHeader(bytes) { return .identity }
        // Rare: a name with `_`, read as `-` the way CGI-style servers do, is one of the
        // forwarding headers (no name above has a `_`, so this looks once).
        if bytes.contains(UInt8(ascii: "_")) {
            let dashed = bytes.map { $0 == UInt8(ascii: "_") ? UInt8(ascii: "-") : $0 }
            switch dashed.withUnsafeBytes({ Self.role(of: $0) }) {
            case .forwardedFor, .forwardedProto, .forwardedHost, .requestID, .clientForwarding: return .forwardingAlias
            default: break
            }
        }
        return .other
    }

    /// Whether `bytes` begin with `x-user-` in any casing, `_` read as `-` (`X_User_Id` too).
    private static func isIdentityHeader(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count >= 7 else { return false }
        let prefix: StaticString = "x-user-"
        return prefix.withUTF8Buffer { expected in
            for index in 0..<7 {
                let byte = bytes[index]
                guard byte | 0x20 == expected[index] || (expected[index] == UInt8(ascii: "-") && byte == UInt8(ascii: "_")) else { return false }
            }
            return true
        }
    }

    /// The header names a `Connection` header lists (hop-by-hop for this message), but for
    /// `close` and `keep-alive`, which name no header. Empty, without allocating, in the usual case.
    private static func namedByConnection(_ fields: some HTTPFieldReading) -> [String] {
        var named: [String] = []
        fields.forEachField { name, value in
            guard name.count == 10, ASCII.equalsIgnoringCase(name, "connection") else { return true }
            for token in value.split(separator: UInt8(ascii: ",")) {
                let token = ASCII.trimmingWhitespace(UnsafeRawBufferPointer(rebasing: token))
                if !token.isEmpty, !ASCII.equalsIgnoringCase(token, "close"), !ASCII.equalsIgnoringCase(token, "keep-alive") {
                    named.append(String(decoding: token, as: UTF8.self).lowercased())
                }
            }
            return true
        }
        return named
    }

    private static func isNamed(_ name: UnsafeRawBufferPointer, in named: [String]) -> Bool {
        named.contains { $0.utf8.count == name.count && $0 == String(decoding: name, as: UTF8.self).lowercased() }
    }

    /// The request's id: the client's `X-Request-Id` when it is short printable ASCII, else a new one.
    public static func requestID(of fields: some HTTPFieldReading) -> String {
        var id: String?
        fields.forEachField { name, value in
            guard name.count == 12, ASCII.equalsIgnoringCase(name, "x-request-id") else { return true }
            let text = String(decoding: value, as: UTF8.self)
            id = Self.isAcceptableRequestID(text) ? text : Self.makeRequestID()
            return false
        }
        return id ?? Self.makeRequestID()
    }

    /// The request as the upstream sees it: hop-by-hop and client identity headers gone, the
    /// verified identity (if any) set, `X-Forwarded-*`, `X-Request-Id` (`requestID`, computed by
    /// `requestID(of:)` when nil) and `Host` filled in. Returns the request id.
    @discardableResult
    public static func rewriteRequest(
        _ headers: inout HTTPHeaders, identity: Identity?, context: ForwardingContext, requestID: String? = nil
    ) -> String {
        let requestID = requestID ?? Self.requestID(of: headers)
        var rewritten = HTTPHeaders()
        Self.writeRequestFields(of: headers, identity: identity, context: context, requestID: requestID, to: &rewritten)
        headers = rewritten
        return requestID
    }

    /// What the rewriting of a request found that decides how it travels.
    struct RequestFacts {
        /// `Expect: 100-continue` was sent (and is not forwarded: the gateway answers it).
        var expectsContinue = false
        /// How the body goes upstream: NIO's decoder let through only `chunked` as the last
        /// coding, and never together with a length.
        var body = BodyFraming.none
    }

    /// Writes the forwarded request's fields (see `rewriteRequest`) to `sink`.
    @discardableResult
    static func writeRequestFields<Sink: HeaderSink>(
        of fields: some HTTPFieldReading, identity: Identity?, context: ForwardingContext, requestID: String, to sink: inout Sink
    ) -> RequestFacts {
        let named = Self.namedByConnection(fields)
        var facts = RequestFacts()
        var forwardedFor: String? = nil
        var sawHost = false
        fields.forEachField { name, value in
            let role = Self.role(of: name)
            if role == .host, !sawHost {
                sawHost = true
                Self.forwardedHostName.withUTF8Buffer { sink.add(name: UnsafeRawBufferPointer($0), value: value) }
            }
            if !named.isEmpty, Self.isNamed(name, in: named) { return true }
            switch role {
            case .hopByHop, .identity, .forwardedProto, .forwardedHost, .requestID, .forwardingAlias:
                return true
            case .forwardedFor:
                let text = String(decoding: value, as: UTF8.self)
                forwardedFor = forwardedFor.map { $0 + ", " + text } ?? text
                return true
            case .host:
                if !context.preserveHost { return true }
            case .authorization:
                if !context.forwardToken { return true }
            case .cookie:
                if !context.forwardToken, let accessCookie = context.accessCookie {
                    let kept = Self.removingCookie(named: accessCookie, from: String(decoding: value, as: UTF8.self))
                    if !kept.isEmpty { sink.add(name: String(decoding: name, as: UTF8.self), value: kept) }
                    return true
                }
            case .clientForwarding:
                if !context.trustedPeer { return true }
            case .expect:
                if ASCII.containsIgnoringCase(value, "100-continue") {
                    facts.expectsContinue = true
                    return true
                }
            case .transferEncoding:
                facts.body = .chunked
            case .contentLength:
                if facts.body == .none { facts.body = .raw }
            case .other:
                break
            }
            sink.add(name: name, value: value)
            return true
        }
        if !context.preserveHost { sink.add(name: "Host", value: context.upstreamAuthority) }
        if let identity { Self.writeIdentity(identity, to: &sink) }
        sink.add(name: "X-Forwarded-For", value: forwardedFor.map { $0 + ", " + context.clientAddress } ?? context.clientAddress)
        sink.add(name: "X-Forwarded-Proto", value: context.scheme)
        sink.add(name: "X-Request-Id", value: requestID)
        if context.webSocket {
            sink.add(name: "Connection", value: "Upgrade")
            sink.add(name: "Upgrade", value: "websocket")
        }
        return facts
    }

    /// Written beside the client's first `Host` as it is read (no copy of its value kept).
    private static let forwardedHostName: StaticString = "X-Forwarded-Host"

    /// `Cookie`'s value without the cookie `name` (RFC 6265 §4.2.1: pairs separated by `; `).
    static func removingCookie(named name: String, from value: String) -> String {
        CookiePair.pairs(of: value).filter { $0.name != name }.map(\.text).joined(separator: "; ")
    }

    /// `/auth/verify`'s answer: all four identity headers, empty when the token has no such claim,
    /// so that a proxy copying only the headers it is given (Envoy's `allowed_upstream_headers`)
    /// overwrites whatever the client sent under those names.
    public static func addIdentity(_ identity: Identity, to headers: inout HTTPHeaders) {
        headers.add(name: "X-User-Id", value: identity.userID)
        headers.add(name: "X-User-Role", value: identity.role ?? "")
        headers.add(name: "X-User-Roles", value: identity.rolesHeader ?? "")
        headers.add(name: "X-User-Scopes", value: identity.scopesHeader ?? "")
    }

    /// Upstream, empty lists send no header rather than an empty value (the client's are gone).
    static func writeIdentity<Sink: HeaderSink>(_ identity: Identity, to sink: inout Sink) {
        sink.add(name: "X-User-Id", value: identity.userID)
        if let role = identity.role { sink.add(name: "X-User-Role", value: role) }
        if let roles = identity.rolesHeader { sink.add(name: "X-User-Roles", value: roles) }
        if let scopes = identity.scopesHeader { sink.add(name: "X-User-Scopes", value: scopes) }
    }

    /// The response as the client sees it: hop-by-hop headers gone.
    public static func rewriteResponse(_ headers: inout HTTPHeaders) {
        var rewritten = HTTPHeaders()
        Self.writeResponseFields(of: headers, dropTransferEncoding: false, to: &rewritten)
        headers = rewritten
    }

    /// What the rewriting of a response found about its body's framing.
    struct ResponseFacts {
        var chunked = false
        var hasLength = false
    }

    /// Writes the response's fields but the hop-by-hop ones (and `Transfer-Encoding` when
    /// `dropTransferEncoding`: the body is relayed without chunks) to `sink`.
    @discardableResult
    static func writeResponseFields<Sink: HeaderSink>(of fields: some HTTPFieldReading, dropTransferEncoding: Bool, to sink: inout Sink) -> ResponseFacts {
        let named = Self.namedByConnection(fields)
        var facts = ResponseFacts()
        fields.forEachField { name, value in
            if !named.isEmpty, Self.isNamed(name, in: named) { return true }
            switch Self.role(of: name) {
            case .hopByHop: return true
            case .transferEncoding:
                facts.chunked = true
                if dropTransferEncoding { return true }
            case .contentLength: facts.hasLength = true
            default: break
            }
            sink.add(name: name, value: value)
            return true
        }
        return facts
    }

    /// A WebSocket 101's fields as the client gets them: the upstream's end-to-end fields
    /// (`Sec-WebSocket-Accept`, `-Protocol`, `-Extensions`, cookies…) without hop-by-hop ones and
    /// without `Content-Length` or `Transfer-Encoding` (RFC 9110 §8.6, §6.1: none on a 1xx), then
    /// the upgrade's own two.
    static func writeSwitchingFields<Sink: HeaderSink>(of fields: some HTTPFieldReading, to sink: inout Sink) {
        let named = Self.namedByConnection(fields)
        fields.forEachField { name, value in
            if !named.isEmpty, Self.isNamed(name, in: named) { return true }
            switch Self.role(of: name) {
            case .hopByHop, .transferEncoding, .contentLength: return true
            default: sink.add(name: name, value: value)
            }
            return true
        }
        sink.add(name: "Upgrade", value: "websocket")
        sink.add(name: "Connection", value: "Upgrade")
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

/// Request ids: a random process prefix and a counter, 32 hex digits.
enum RequestIDs {
    /// The 16 hex digits of 64 random bits, drawn once.
    private static let prefix: [UInt8] = Array(Hex.encode(SecureRandom.bytes(8)).utf8)
    private static let counter = Atomic<UInt64>(0)

    static func next() -> String {
        let value = Self.counter.add(1, ordering: .relaxed).newValue
        let prefix = Self.prefix
        // Written in place: one allocation per id.
        return String(unsafeUninitializedCapacity: 32) { digits in
            for index in 0..<16 { digits[index] = prefix[index] }
            for index in 0..<16 { digits[16 + index] = Hex.digit(UInt8(truncatingIfNeeded: value >> (60 - 4 * UInt64(index)))) }
            return 32
        }
    }
}
