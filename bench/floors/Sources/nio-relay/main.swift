// nio-relay: the SwiftNIO floor. Every accepted connection gets one handler, which opens one
// TCP connection to the upstream and copies bytes 1:1 both ways: no HTTP parsing, no pool, one
// handler per channel. What Gatehouse adds on top of this is HTTP and policy; what this costs is
// what NIO itself costs for the same two sockets.
//
//   BENCH_LISTEN=127.0.0.1:18500 BENCH_UPSTREAM=127.0.0.1:18400 nio-relay
//   (or: nio-relay LISTEN UPSTREAM; RELAY_THREADS=n event loops, default 1)
//
// Back-pressure is swift-nio-examples' connect-proxy glue: a channel's `read()` is held while its
// partner is not writable and released when the partner becomes writable again. Closing: when
// either side closes (EOF, error, reset), the other side writes what it still has, shuts down its
// output and closes.

import NIOCore
import NIOPosix

#if canImport(Glibc)
    import Glibc
#endif

/// One per channel; the client's and the upstream's handlers are each other's partner.
final class RelayHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Set on the client side only: where to connect when the client's channel becomes active.
    private let upstream: SocketAddress?
    private var partner: RelayHandler?
    private var context: ChannelHandlerContext?
    /// A `read()` arrived while the partner could not take more bytes (or did not exist yet).
    private var pendingRead = false
    private var isWritable = true
    /// channelInactive has run (the handler stays in the pipeline a little longer).
    private var isClosed = false

    init(upstream: SocketAddress?) {
        self.upstream = upstream
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.isWritable = context.channel.isWritable
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        self.partner = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        guard let upstream = self.upstream else { return }
        let peer = RelayHandler(upstream: nil)
        let boundPeer = NIOLoopBound(peer, eventLoop: context.eventLoop)
        ClientBootstrap(group: context.eventLoop)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(boundPeer.value)
                }
            }
            .connect(to: upstream)
            .assumeIsolated()
            .whenComplete { result in
                switch result {
                case .success:
                    self.link(peer)
                case .failure:
                    context.close(promise: nil)
                }
            }
    }

    private func link(_ peer: RelayHandler) {
        guard self.context != nil, !self.isClosed else {
            // The client went away while the upstream connection was being made.
            peer.partnerClosed()
            return
        }
        self.partner = peer
        peer.partner = self
        self.readIfPending()
        peer.readIfPending()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.partner?.write(self.unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.partner?.flush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.isClosed = true
        let partner = self.partner
        self.partner = nil
        partner?.partner = nil
        partner?.partnerClosed()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        self.isWritable = context.channel.isWritable
        if self.isWritable { self.partner?.readIfPending() }
    }

    // Outbound `read()` (from autoRead): passed on only while the partner can take more.
    func read(context: ChannelHandlerContext) {
        if let partner = self.partner, partner.isWritable {
            context.read()
        } else {
            self.pendingRead = true
        }
    }

    private func readIfPending() {
        guard self.pendingRead, let context = self.context, self.partner?.isWritable == true else { return }
        self.pendingRead = false
        context.read()
    }

    private func write(_ buffer: ByteBuffer) {
        self.context?.write(self.wrapOutboundOut(buffer), promise: nil)
    }

    private func flush() {
        self.context?.flush()
    }

    /// The other side is gone: write what is queued, shut down the output, then close.
    private func partnerClosed() {
        guard let context = self.context, !self.isClosed else { return }
        let channel = context.channel
        let halfClosed = context.eventLoop.makePromise(of: Void.self)
        context.close(mode: .output, promise: halfClosed)
        halfClosed.futureResult.whenComplete { _ in channel.close(promise: nil) }
    }
}

/// "host:port" (or "http://host:port") from the first of the variables that is set, else from `argument`.
func address(_ names: [String], argument: Int) -> (host: String, port: Int) {
    var text: String?
    for name in names {
        if let value = getenv(name), !String(cString: value).isEmpty {
            text = String(cString: value)
            break
        }
    }
    if text == nil, CommandLine.arguments.count > argument { text = CommandLine.arguments[argument] }
    guard var value = text else { fail("\(names[0]) is not set (or pass LISTEN UPSTREAM as arguments)") }
    if let scheme = value.firstRange(of: "://") { value = String(value[scheme.upperBound...]) }
    while value.hasSuffix("/") { value.removeLast() }
    guard let colon = value.lastIndex(of: ":"), let port = Int(value[value.index(after: colon)...]) else {
        fail("\(names[0]): expected host:port, got \(value)")
    }
    return (String(value[..<colon]), port)
}

func fail(_ message: String) -> Never {
    var line = "nio-relay: \(message)\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    exit(2)
}

let listen = address(["BENCH_LISTEN"], argument: 1)
let upstream = address(["BENCH_UPSTREAM", "BENCH_UPSTREAM_URL"], argument: 2)
let threads = getenv("RELAY_THREADS").flatMap { Int(String(cString: $0)) } ?? 1
let upstreamAddress: SocketAddress
do {
    upstreamAddress = try SocketAddress(ipAddress: upstream.host, port: upstream.port)
} catch {
    fail("upstream \(upstream.host):\(upstream.port): \(error)")
}

let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, threads))
let server = try ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 4096)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
    .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(RelayHandler(upstream: upstreamAddress))
        }
    }
    .bind(host: listen.host, port: listen.port)
    .wait()
print("nio-relay: \(listen.host):\(listen.port) -> \(upstream.host):\(upstream.port), \(max(1, threads)) event loop(s)")
try server.closeFuture.wait()
