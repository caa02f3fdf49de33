// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Dispatch
import Foundation
import GatehouseConfig
import GatehouseGateway
import GatehouseIssuer
import GatehouseJOSE
import NIOCore
import NIOPosix

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the gateway, and the issuer when it is enabled.",
        discussion: """
            Without any configuration (no --config, no $GATEHOUSE_CONFIG, no ./gateway.conf) it runs the \
            development setup: SQLite and a generated ES256 key under ./.gatehouse/, the issuer on \
            http://127.0.0.1:8080, and /demo/ (auth required) routed to a built-in echo upstream.
            """
    )

    @OptionGroup var config: ConfigOption

    func run() async throws {
        // SIGTERM or SIGINT: stop accepting, let requests in flight finish within shutdown_grace,
        // exit 0. Installed first, so that a signal during start-up is not lost.
        let (signals, continuation) = AsyncStream<Int32>.makeStream()
        var sources: [any DispatchSourceSignal] = []
        for signal in [SIGTERM, SIGINT] {
            Foundation.signal(signal, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signal, queue: .global())
            source.setEventHandler { continuation.yield(signal) }
            source.resume()
            sources.append(source)
        }

        var group: MultiThreadedEventLoopGroup?
        var lines: [String] = []
        var echo: (any Channel)?
        let config: GatewayConfig
        do {
            if let path = self.config.resolvedPath {
                config = try GatewayConfig.load(path: path)
                group = MultiThreadedEventLoopGroup(numberOfThreads: config.threads == 0 ? System.coreCount : config.threads)
            } else {
                let developmentGroup = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
                group = developmentGroup
                let setup = try await DevelopmentSetup.make(group: developmentGroup)
                config = setup.0
                echo = setup.echo
                lines += setup.lines
            }
        } catch let error as ValidationError {
            printError("error: \(error.message)")
            throw ExitCode(1)
        } catch {
            printError("error: \(error)")
            throw ExitCode(1)
        }
        guard let group else { throw ExitCode(1) }

        let feeds = RevocationFeeds(config: config)
        var issuer: Issuer?
        if let issuerConfig = config.issuer {
            do {
                issuer = try Issuer.start(config: issuerConfig, trustedProxies: config.trustedProxies, revocations: feeds.board)
            } catch {
                printError("error: the issuer cannot start: \(error)")
                throw ExitCode(1)
            }
        }
        do {
            try feeds.start(config: config, issuer: issuer, loop: group.next())
        } catch let error as ValidationError {
            printError("error: \(error.message)")
            throw ExitCode(1)
        }
        // Every revocation still relevant is loaded before the listener answers.
        await feeds.waitUntilLoaded(timeout: config.verify.jwksStartupTimeout)

        let server: GatewayServer
        let admin: any Channel
        do {
            server = try await GatewayServer.start(
                config: config, group: group, accessLog: config.accessLog ? .standardOutput : nil, local: issuer.map(IssuerEndpoints.init),
                revocations: feeds.board
            )
        } catch {
            printError("error: cannot listen on \(config.listen): \(error)")
            throw ExitCode(1)
        }
        do {
            admin = try await server.startAdmin(host: config.adminListen.host, port: config.adminListen.port, group: group)
        } catch {
            printError("error: cannot listen on \(config.adminListen) (admin_listen): \(error)")
            throw ExitCode(1)
        }
        let mode = issuer.map { issuer in
            let store = issuer.config.database.hasPrefix("sqlite:") ? issuer.config.database : "postgresql"
            return "issuer on: iss \(issuer.config.issuer), \(store), keys \(issuer.jwks.keys.compactMap(\.keyID).joined(separator: ","))"
        } ?? "issuer off"
        lines += [
            "gatehouse listening on \(config.listen.host):\(server.port) (\(config.tls == nil ? "" : "TLS, ")\(config.threads == 0 ? System.coreCount : config.threads) event loops, \(mode))",
            "gatehouse admin listening on \(config.adminListen.host):\(admin.localAddress?.port ?? config.adminListen.port) (/healthz /readyz /metrics)",
        ]
        for provider in config.verify.providers {
            lines.append("  verifying iss \(provider.issuer) with \(provider.algorithms.sorted().map(\.rawValue).joined(separator: ","))")
        }
        for route in config.routes.sorted(by: { $0.prefix < $1.prefix }) {
            lines.append("  route \(route.prefix) -> \(route.upstream) (\(route.auth.rawValue))")
        }
        FileHandle.standardOutput.write(Data((lines.joined(separator: "\n") + "\n").utf8))

        for await _ in signals { break }
        sources.forEach { $0.cancel() }
        FileHandle.standardOutput.write(Data("gatehouse draining (up to \(Int(config.shutdownGrace.seconds)) s)\n".utf8))
        try? await server.drain(grace: config.shutdownGrace)
        feeds.stop()
        try? await admin.close()
        try? await echo?.close()
        try? await issuer?.shutdown()
        try? await group.shutdownGracefully()
    }
}
