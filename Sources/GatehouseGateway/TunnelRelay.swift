// SPDX-License-Identifier: Apache-2.0
import NIOCore

/// The bytes of one WebSocket tunnel, both ways: where each direction's frames end, what the
/// gateway's own close frames did, and what the access-log line says when it ends. The
/// connection's state machine decides when it ends; this decides, for each read, how many of its
/// bytes still pass.
struct TunnelRelay {
    enum Side {
        case client, upstream
    }

    /// How a read from one side is handled.
    struct Pass: Equatable {
        /// Bytes at the front of the read that go to the other side.
        var forward: Int
        /// Then the gateway's close frame goes to the other side; relaying that way stops.
        var sendClose: Bool
    }

    /// One direction: the frames read from `side`, going to the other.
    private struct Direction {
        var scanner = WebSocketFrameScanner()
        /// No more is relayed this way: the gateway's close frame went, or the peer's own did.
        var closed = false
        var bytes = 0
    }

    private var fromClient = Direction()
    private var fromUpstream = Direction()
    let openedAt: NIODeadline
    /// The session of the token that opened it: revoking it ends the tunnel.
    let sessionID: String?
    /// The revocation list's revision last checked for `sessionID`.
    var checkedRevision = -1
    /// Why it ended, once known (the first cause counts).
    var endReason: ConnectionStateMachine.TunnelEnd?
    /// Both sockets are closing.
    var closing = false

    init(openedAt: NIODeadline, sessionID: String?) {
        self.openedAt = openedAt
        self.sessionID = sessionID
    }

    var bytesFromClient: Int { self.fromClient.bytes }
    var bytesFromUpstream: Int { self.fromUpstream.bytes }

    /// A read from `side`: all of it passes while the tunnel runs; while the gateway ends it, only
    /// the rest of the frame under way, then the gateway's close frame goes on instead of what
    /// follows (which is still read, for the client's close frame). A close frame of the peer's
    /// own that went by counts as the close: the gateway sends none after it (RFC 6455 §5.5.1).
    mutating func pass(_ bytes: UnsafeRawBufferPointer, from side: Side, ending: Bool) throws(WebSocketFrameScanner.Failure) -> Pass {
        switch side {
        case .client: return try Self.pass(bytes, through: &self.fromClient, ending: ending)
        case .upstream: return try Self.pass(bytes, through: &self.fromUpstream, ending: ending)
        }
    }

    private static func pass(_ bytes: UnsafeRawBufferPointer, through direction: inout Direction, ending: Bool) throws(WebSocketFrameScanner.Failure) -> Pass {
        direction.bytes += bytes.count
        if direction.closed {
            _ = try direction.scanner.scan(bytes)
            return Pass(forward: 0, sendClose: false)
        }
        guard ending else {
            let forward = try direction.scanner.scan(bytes)
            if direction.scanner.sawClose { direction.closed = true }
            return Pass(forward: forward, sendClose: false)
        }
        let forward = try direction.scanner.scan(bytes, stopAtBoundary: true)
        guard direction.scanner.isBetweenFrames else { return Pass(forward: forward, sendClose: false) }
        let sendClose = !direction.scanner.sawClose
        direction.closed = true
        // What follows is dropped; a bad header in it must not cost the close frame.
        _ = try? direction.scanner.scan(UnsafeRawBufferPointer(rebasing: bytes[forward...]))
        return Pass(forward: forward, sendClose: sendClose)
    }

    /// When the gateway begins to end the tunnel: which close frames can go at once (that
    /// direction is between frames and its peer sent no close); the others go when their frame
    /// under way ends.
    mutating func closesDue() -> (toClient: Bool, toUpstream: Bool) {
        func due(_ direction: inout Direction) -> Bool {
            guard !direction.closed, direction.scanner.isBetweenFrames else { return false }
            direction.closed = true
            return true
        }
        return (due(&self.fromUpstream), due(&self.fromClient))
    }

    /// Whether `side` sent a close frame of its own.
    func sawClose(from side: Side) -> Bool {
        switch side {
        case .client: self.fromClient.scanner.sawClose
        case .upstream: self.fromUpstream.scanner.sawClose
        }
    }

    /// The gateway ended the tunnel and the client answered with its close frame: both sockets close.
    var clientAnsweredClose: Bool { self.fromUpstream.closed && self.fromClient.scanner.sawClose }

    /// The close frame for why the gateway ends the tunnel (RFC 6455 §7.4.1).
    static func closeFrame(for reason: ConnectionStateMachine.TunnelEnd, masked: Bool) -> [UInt8] {
        switch reason {
        case .expired: WebSocketClose.frame(code: WebSocketClose.policyViolation, reason: "token expired", masked: masked)
        case .revoked: WebSocketClose.frame(code: WebSocketClose.policyViolation, reason: "session revoked", masked: masked)
        case .drain, .client, .upstream, .idle: WebSocketClose.frame(code: WebSocketClose.goingAway, reason: "gateway shutting down", masked: masked)
        }
    }
}
