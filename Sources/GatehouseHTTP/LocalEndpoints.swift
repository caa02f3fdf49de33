// SPDX-License-Identifier: Apache-2.0
public import GatehouseJOSE
public import NIOCore
public import NIOHTTP1

/// Endpoints the gateway's listener serves itself instead of routing (the issuer's `/auth/*`,
/// `/users/me`, `/.well-known/*`). The gateway reads the body (up to `maximumBodyBytes`, else
/// 413) and hands over the whole request; the answer comes back as a future, so the endpoint can
/// do its blocking work on its own thread pools.
public protocol LocalEndpoints: Sendable {
    /// The metrics label when `path` (normalised, without the query) is served here; nil otherwise.
    func route(for path: String) -> String?
    var maximumBodyBytes: Int { get }
    func respond(to request: LocalRequest, on eventLoop: any EventLoop) -> EventLoopFuture<LocalResponse>
    /// Whether the endpoints can serve (their database answers), for `/readyz`.
    func checkReady(on eventLoop: any EventLoop) -> EventLoopFuture<Bool>
    /// Prometheus lines of the endpoints' own (e.g. `gatehouse_argon2_queue_depth`).
    var metricsText: String { get }
    /// Hits and misses of the endpoints' own verified-token cache, counted with the gateway's in
    /// `gatehouse_token_cache_*`.
    var tokenCacheCounts: (hits: Int, misses: Int) { get }
}

extension LocalEndpoints {
    public var tokenCacheCounts: (hits: Int, misses: Int) { (0, 0) }
}

/// A whole request for `LocalEndpoints`.
public struct LocalRequest: Sendable {
    public var head: HTTPRequestHead
    /// Normalised, without the query.
    public var path: String
    public var query: String?
    public var body: ByteBuffer
    /// The socket peer's address (no port).
    public var peerAddress: String?

    public init(head: HTTPRequestHead, path: String, query: String?, body: ByteBuffer, peerAddress: String?) {
        self.head = head
        self.path = path
        self.query = query
        self.body = body
        self.peerAddress = peerAddress
    }
}

/// A whole response from `LocalEndpoints`.
public struct LocalResponse: Sendable {
    public var status: HTTPResponseStatus
    public var headers: HTTPHeaders
    public var body: [UInt8]

    /// A response with `body` (`Content-Length` is added by the gateway).
    public init(status: HTTPResponseStatus, headers: HTTPHeaders = [:], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A JSON response, never cached.
    public init(status: HTTPResponseStatus, json: String, headers: HTTPHeaders = [:]) {
        self.init(status: status, jsonBytes: Array(json.utf8), headers: headers)
    }

    /// A JSON response of `object`, never cached.
    public init(status: HTTPResponseStatus, object: JSONObject, headers: HTTPHeaders = [:]) {
        self.init(status: status, jsonBytes: object.serializedBytes, headers: headers)
    }

    /// The response of `error`: its JSON body, its status and its headers.
    public init(error: HTTPError) {
        self.init(status: error.status, json: error.body, headers: error.extraHeaders)
    }

    private init(status: HTTPResponseStatus, jsonBytes: [UInt8], headers: HTTPHeaders) {
        var headers = headers
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Cache-Control", value: "no-store")
        self.init(status: status, headers: headers, body: jsonBytes)
    }
}
