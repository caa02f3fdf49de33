// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Dispatch
import Foundation
import GatehouseConfig
import GatehouseGateway
import GatehouseHTTP
import GatehouseIssuer
import GatehouseJOSE
import NIOCore
import NIOPosix
import ServiceLifecycle

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
    @Option(help: "auto (text on a terminal, JSON lines otherwise), text or json; default: the configuration's log_format.")
    var logFormat: GatewayConfig.LogFormat?

    func run() async throws {
        // SIGTERM or SIGINT: stop accepting, let requests in flight finish within shutdown_grace,
        // exit 0. Installed first, so that a signal during start-up is not lost; the service group
        // below is handed each one.
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
                group = MultiThreadedEventLoopGroup(numberOfThreads: config.threads == 0 ? Processors.available : config.threads)
            } else {
                let developmentGroup = MultiThreadedEventLoopGroup(numberOfThreads: Processors.available)
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
        // Background events (JWKS fetches, revocation feeds) in the access log's format, on
        // standard error, from here on.
        let log = ServeLog(self.logFormat ?? config.logFormat)
        EventLogHandler.bootstrap(format: log.format)

        let feeds = RevocationFeeds(config: config)
        var issuer: Issuer?
        if let issuerConfig = config.issuer {
            do {
                issuer = try Issuer.start(
                    config: issuerConfig, trustedProxies: config.trustedProxies, revocations: feeds.board,
                    tokenCacheSize: config.verify.tokenCacheSize
                )
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
                config: config, group: group, accessLog: config.accessLog ? .standardOutput(format: log.format) : nil, local: issuer.map(IssuerEndpoints.init),
                revocations: feeds.board
            )
        } catch {
            printError("error: cannot listen on \(config.listen): \(describeListenError(error))")
            throw ExitCode(1)
        }
        do {
            admin = try await server.startAdmin(host: config.adminListen.host, port: config.adminListen.port, group: group)
        } catch {
            printError("error: cannot listen on \(config.adminListen) (admin_listen): \(describeListenError(error))")
            throw ExitCode(1)
        }
        let mode = issuer.map { issuer in
            let store = issuer.config.database.hasPrefix("sqlite:") ? issuer.config.database : "postgresql"
            return "issuer on: iss \(issuer.config.issuer), \(store), keys \(issuer.jwks.keys.compactMap(\.keyID).joined(separator: ",")), "
                + "argon2 workers \(issuer.hashWorkers)"
        } ?? "issuer off"
        let loops = config.threads == 0 ? Processors.available : config.threads
        lines += [
            "gatehouse listening on \(config.listen.host):\(server.port) (\(config.tls == nil ? "" : "TLS, ")\(loops) event loop\(loops == 1 ? "" : "s"), \(mode))",
            "gatehouse admin listening on \(config.adminListen.host):\(admin.localAddress?.port ?? config.adminListen.port) (/healthz /readyz /metrics)",
        ]
        for provider in config.verify.providers {
            lines.append("  verifying iss \(provider.issuer) with \(provider.algorithms.sorted().map(\.rawValue).joined(separator: ","))")
        }
        for route in config.routes.sorted(by: { $0.prefix < $1.prefix }) {
            lines.append("  route \(route.prefix) -> \(route.upstream) (\(route.auth.rawValue))")
        }
        log.say(lines)
        log.say(config.warnings.map { "warning: " + $0 }, level: "warning")

        // The parts stop in reverse order: the admin listener closes, the gateway listener closes
        // and drains, then what the exchanges in flight may still need — the echo upstream, the
        // JWKS refreshers, the revocation feeds and the issuer's pools — stops after them.
        var parts: [ServePart] = []
        if let issuer { parts.append(ServePart("issuer pools") { try? await issuer.shutdown() }) }
        let stopFeeds = feeds.stopper
        parts.append(ServePart("revocation feeds") { await stopFeeds() })
        parts.append(ServePart("JWKS refreshers") { server.stopRefreshing() })
        if let echo { parts.append(ServePart("echo upstream") { try? await echo.close() }) }
        let grace = config.shutdownGrace
        parts.append(
            ServePart("gateway listener") {
                log.say(["gatehouse draining (up to \(Int(grace.seconds)) s)"])
                try? await server.drain(grace: grace)
            }
        )
        parts.append(ServePart("admin listener") { try? await admin.close() })
        let services = ServiceGroup.serve(parts)
        let forwarding = Task {
            for await _ in signals { await services.triggerGracefulShutdown() }
        }
        try await services.run()
        sources.forEach { $0.cancel() }
        continuation.finish()
        await forwarding.value
        try? await group.shutdownGracefully()
    }
}

extension GatewayConfig.LogFormat: ExpressibleByArgument {}

/// `serve`'s own lines (the listeners, the mode, the routes), in the access log's format: as they
/// are for a person at a terminal, one JSON object each otherwise.
struct ServeLog {
    let format: AccessLogSink.Format

    init(_ setting: GatewayConfig.LogFormat) {
        switch setting {
        case .text: self.format = .text
        case .json: self.format = .json
        case .auto: self.format = isatty(STDOUT_FILENO) == 1 ? .text : .json
        }
    }

    func say(_ lines: [String], level: String = "info") {
        guard !lines.isEmpty else { return }
        let text: String
        switch self.format {
        case .text:
            text = lines.map { $0 + "\n" }.joined()
        case .json:
            let time = RFC3339.now()
            text = lines.map { JSONObject(["time": .string(time), "level": .string(level), "msg": .string($0)]).serialized + "\n" }.joined()
        }
        FileHandle.standardOutput.write(Data(text.utf8))
    }
}

/// Why a listener could not be opened, in words: the usual errno cases plainly, anything else as
/// it came (TLS files that do not load say so themselves).
func describeListenError(_ error: any Error) -> String {
    guard let error = error as? IOError else { return "\(error)" }
    switch error.errnoCode {
    case EADDRINUSE: return "the address is already in use (another process listens there)"
    case EACCES: return "permission denied (ports below 1024 need privileges)"
    case EADDRNOTAVAIL: return "no interface of this machine has that address"
    default: return "\(error)"
    }
}
