// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatehouseConfig
import GatehouseCrypto
import GatehouseGateway
import NIOCore

/// `serve` without any configuration: an embedded SQLite file and a generated ES256 key under
/// `./.gatehouse/`, the issuer on with `iss` `http://127.0.0.1:8080`, the listener on
/// 127.0.0.1:8080, and `/demo/` (auth required) routed to a built-in echo upstream (HTTP and
/// WebSocket).
enum DevelopmentSetup {
    static let directory = ".gatehouse"

    /// Prepares `./.gatehouse/`, starts the echo upstream on `group`, and returns the configuration
    /// with the lines that say what was set up.
    static func make(group: any EventLoopGroup) async throws -> (GatewayConfig, echo: any Channel, lines: [String]) {
        let directory = URL(fileURLWithPath: Self.directory, isDirectory: true).standardizedFileURL
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let keyPath = directory.appendingPathComponent("es256.pem").path
        var lines = ["development setup (no gateway.conf): state in \(directory.path)"]
        if !FileManager.default.fileExists(atPath: keyPath) {
            let pem = try EVPKey.generate(.ec(.p256)).privateKeyPEM()
            // 0600 from the first byte, as `keys generate` writes it.
            try KeysCommand.Generate.writePrivate(Array(pem.utf8), to: keyPath)
            lines.append("  generated an ES256 signing key: \(keyPath)")
        }
        let echo = try await HTTPListener.bind(host: "127.0.0.1", port: 0, group: group, webSocketEcho: true) { _ in EchoHandler() }
        let echoPort = echo.localAddress?.port ?? 0
        let yaml = """
            listen: 127.0.0.1:8080
            admin_listen: 127.0.0.1:9901
            issuer:
              issuer: http://127.0.0.1:8080
              audience: api
              signing: { alg: ES256, key_file: es256.pem }
              database: sqlite:gatehouse.db
            routes:
              - prefix: /demo/
                upstream: http://127.0.0.1:\(echoPort)
                auth: required
            """
        let config = try GatewayConfig.parse(yaml, file: "<development setup>", baseDirectory: directory.path)
        lines.append("  built-in echo upstream on 127.0.0.1:\(echoPort) for /demo/")
        return (config, echo, lines)
    }
}
