// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Foundation
import GatehouseConfig
import GatehouseGateway
import NIOCore
import NIOPosix

struct EchoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "echo",
        abstract: "A tiny upstream: answers every request with the request it saw, as JSON; echoes WebSocket messages.",
        discussion: """
            The answer: {"method", "path" (without the query), "query" (raw), "headers": {lower-case \
            name: [values in order]}, "body_bytes", "body_sha256"}. A WebSocket handshake (GET with \
            Upgrade: websocket, RFC 6455 version 13, any path) gets its 101, then every text or binary \
            message comes back as one message (fragments reassembled; 16 MiB at most), a ping its \
            pong, a close frame its code; protocol errors close with 1002, text that is not UTF-8 \
            with 1007. For demos and tests.
            """
    )

    @Option(help: "host:port to listen on (port 0 picks a free one).") var listen: String = "127.0.0.1:9000"

    func run() async throws {
        guard let address = ListenAddress(self.listen) else { throw ValidationError("--listen must be host:port") }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let channel: any Channel
        do {
            channel = try await HTTPListener.bind(host: address.host, port: address.port, group: group, webSocketEcho: true) { _ in
                EchoHandler()
            }
        } catch {
            printError("error: cannot listen on \(address): \(describeListenError(error))")
            throw ExitCode(1)
        }
        // Unbuffered, so that whoever started it with port 0 can read the port at once.
        let bound = channel.localAddress.map { "\($0.ipAddress ?? address.host):\($0.port ?? address.port)" } ?? "\(address)"
        FileHandle.standardOutput.write(Data("gatehouse echo listening on \(bound)\n".utf8))
        try await channel.closeFuture.get()
    }
}
