// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatehouseConfig
import GatehouseCrypto
import GatehouseGateway
import GatehouseHTTP
import GatehouseIssuer
import GatehouseStore
import GatehouseTestSupport
import NIOCore
import NIOPosix

/// Which database a test runs on.
enum Backend: String, CaseIterable, CustomStringConvertible, Sendable {
    case sqlite, postgres

    var description: String { self.rawValue }

    func makeURL() throws -> String {
        switch self {
        case .sqlite: return "sqlite:" + NSTemporaryDirectory() + "gatehouse-issuer-\(UUID().uuidString).db"
        case .postgres: return try TestPostgres.shared.get().makeDatabase()
        }
    }
}

/// A real Gatehouse (gateway + issuer) on 127.0.0.1 with an echo upstream behind `/echo/`,
/// talking to a real database; requests go over real sockets.
final class Harness: @unchecked Sendable {
    let group: MultiThreadedEventLoopGroup
    let server: GatewayServer
    let issuer: Issuer
    let echo: any Channel
    let database: String
    let keyFile: String
    /// The revoked sessions, as `serve` keeps them: the issuer publishes here, the gateway reads.
    let revocations: RevocationBoard
    var port: Int { self.server.port }
    var store: Store { self.issuer.store }

    struct Options {
        var signing = "{ alg: ES256, key_file: \(Harness.sharedKeyFile) }"
        var argon2 = "{ memory_kib: 1024, iterations: 1, parallelism: 1 }"
        var issuer = ""
        var top = ""
    }

    /// A test key shared by every harness of the process (key generation is not what is tested).
    static let sharedKeyFile: String = {
        let path = NSTemporaryDirectory() + "gatehouse-issuer-test-\(getpid()).pem"
        let pem = try! EVPKey.generate(.ec(.p256)).privateKeyPEM()
        try! pem.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }()

    private init(
        group: MultiThreadedEventLoopGroup, server: GatewayServer, issuer: Issuer, echo: any Channel, database: String, keyFile: String,
        revocations: RevocationBoard
    ) {
        self.revocations = revocations
        self.group = group
        self.server = server
        self.issuer = issuer
        self.echo = echo
        self.database = database
        self.keyFile = keyFile
    }

    /// Starts a server on `database` (a new one of `backend` when nil), runs `body`, stops it.
    static func with<T>(
        _ backend: Backend, database: String? = nil, options: Options = Options(), _ body: (Harness) async throws -> T
    ) async throws -> T {
        let harness = try await Self.start(database: database ?? backend.makeURL(), options: options)
        do {
            let result = try await body(harness)
            try await harness.stop()
            return result
        } catch {
            try? await harness.stop()
            throw error
        }
    }

    static func start(database: String, options: Options) async throws -> Harness {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let echo = try await HTTPListener.bind(host: "127.0.0.1", port: 0, group: group) { _ in EchoHandler() }
        let yaml = """
            listen: 127.0.0.1:0
            access_log: false
            \(options.top)
            issuer:
              issuer: http://gatehouse.test
              audience: api
              signing: \(options.signing)
              database: \(database)
              argon2: \(options.argon2)
            \(options.issuer.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
            routes:
              - prefix: /echo/
                upstream: http://127.0.0.1:\(echo.localAddress!.port!)
                auth: required
            """
        let config = try GatewayConfig.parse(yaml, file: "test.conf", baseDirectory: NSTemporaryDirectory())
        let revocations = RevocationBoard()
        let issuer = try Issuer.start(
            config: config.issuer!, trustedProxies: config.trustedProxies, revocations: revocations, tokenCacheSize: config.verify.tokenCacheSize
        )
        let server = try await GatewayServer.start(
            config: config, group: group, host: "127.0.0.1", port: 0, local: IssuerEndpoints(issuer: issuer), revocations: revocations
        )
        return Harness(
            group: group, server: server, issuer: issuer, echo: echo, database: database, keyFile: Self.sharedKeyFile, revocations: revocations
        )
    }

    func stop() async throws {
        try await self.server.stop()
        try await self.echo.close()
        try await self.issuer.shutdown()
        try await self.group.shutdownGracefully()
    }

    // MARK: Requests

    func post(_ path: String, _ json: [String: Any], headers: [(String, String)] = []) throws -> RawHTTPClient.Response {
        let body = try JSONSerialization.data(withJSONObject: json)
        return try RawHTTPClient.request(
            port: self.port, "POST", path, headers: [("Content-Type", "application/json")] + headers, body: Array(body)
        )
    }

    func post(_ path: String, _ json: [String: Any], bearer: String) throws -> RawHTTPClient.Response {
        try self.post(path, json, headers: [("Authorization", "Bearer \(bearer)")])
    }

    func get(_ path: String, bearer: String? = nil) throws -> RawHTTPClient.Response {
        try RawHTTPClient.request(port: self.port, "GET", path, headers: bearer.map { [("Authorization", "Bearer \($0)")] } ?? [])
    }

    func register(_ email: String, password: String = "correct horse battery", name: String? = nil) throws -> Tokens {
        var body: [String: Any] = ["email": email, "password": password]
        if let name { body["name"] = name }
        return try Tokens(self.post("/auth/register", body), expecting: 201)
    }

    func login(_ email: String, password: String = "correct horse battery", from address: String? = nil) throws -> RawHTTPClient.Response {
        try self.post("/auth/login", ["email": email, "password": password], headers: address.map { [("X-Forwarded-For", $0)] } ?? [])
    }

    func refresh(_ token: String) throws -> RawHTTPClient.Response {
        try self.post("/auth/refresh", ["refresh_token": token])
    }
}

/// A token response.
struct Tokens {
    let access: String
    let refresh: String
    let json: [String: Any]

    struct Unexpected: Error, CustomStringConvertible {
        let description: String
    }

    init(_ response: RawHTTPClient.Response, expecting status: Int = 200) throws {
        guard response.status == status, let json = response.json, let access = json["access_token"] as? String,
            let refresh = json["refresh_token"] as? String
        else { throw Unexpected(description: "expected a \(status) token response, got \(response.status) \(response.text)") }
        self.access = access
        self.refresh = refresh
        self.json = json
    }
}

/// The decoded parts of a compact JWS (no verification: tests check what the issuer wrote).
func decode(_ token: String) -> (header: [String: Any], claims: [String: Any]) {
    let parts = token.split(separator: ".").map { part -> [String: Any] in
        var text = part.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while text.count % 4 != 0 { text += "=" }
        return (try? JSONSerialization.jsonObject(with: Data(base64Encoded: text) ?? Data())) as? [String: Any] ?? [:]
    }
    return (parts[0], parts[1])
}
