// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Dispatch
import Foundation
import GatehouseConfig
import GatehouseGateway
import GatehouseJOSE
import NIOCore
import NIOPosix

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the gateway (and, once it exists, the issuer).",
        discussion: """
            Today the gateway runs alone: configurations need `issuer: {enabled: false}`; keys come from a \
            JWKS file, a PEM public key, an HMAC secret or an http:// jwks_url (https and the issuer come later).
            """
    )

    @OptionGroup var config: ConfigOption

    func run() async throws {
        guard let path = self.config.resolvedPath else {
            printError("error: no configuration. The development setup needs the issuer, which is not built yet; pass --config with issuer: {enabled: false}.")
            throw ExitCode(1)
        }
        let config: GatewayConfig
        do {
            config = try GatewayConfig.load(path: path)
            guard config.issuer == nil else {
                throw ValidationError("\(path): the issuer is not built yet; set issuer: {enabled: false} to run the gateway alone")
            }
            for provider in config.verify.providers {
                if case .jwksURL(let url) = provider.keys, !url.lowercased().hasPrefix("http://") {
                    throw ValidationError("\(path): jwks_url \(url): only http:// is fetched so far (https needs TLS, not built yet)")
                }
            }
        } catch let error as ValidationError {
            printError("error: \(error.message)")
            throw ExitCode(1)
        } catch {
            printError("error: \(error)")
            throw ExitCode(1)
        }

        // SIGTERM or SIGINT: stop accepting, let requests in flight finish within shutdown_grace,
        // exit 0.
        let (signals, continuation) = AsyncStream<Int32>.makeStream()
        var sources: [any DispatchSourceSignal] = []
        for signal in [SIGTERM, SIGINT] {
            Foundation.signal(signal, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signal, queue: .global())
            source.setEventHandler { continuation.yield(signal) }
            source.resume()
            sources.append(source)
        }

        let threads = config.threads == 0 ? System.coreCount : config.threads
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let server: GatewayServer
        let admin: any Channel
        do {
            server = try await GatewayServer.start(config: config, group: group, accessLog: config.accessLog ? .standardOutput : nil)
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
        var lines = [
            "gatehouse gateway listening on \(config.listen.host):\(server.port) (\(threads) event loops, issuer off)",
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
        try? await admin.close()
        try? await group.shutdownGracefully()
    }
}
