// SPDX-License-Identifier: Apache-2.0
import NIOCore

/// The bytes of one WebSocket tunnel, both ways: where each direction's frames end, what the
/// gateway's own close frames did, and what the access-log line says when it ends. The
/// connection's state machine decides when it ends; this decides, for each read, how many of its
/// bytes still pass.
struct TunnelRelay {
    /// How a read from one side is handled.
    struct Pass: Equatable {
        /// Bytes at the front of the read that go to the other side.
        var forward: Int
        /// Then the gateway's close frame goes to the other side; relaying that way stops.
        var sendClose: Bool
    }

    var fromClient = WebSocketFrameScanner()
    var fromUpstream = WebSocketFrameScanner()
    /// The gateway's close frame went that way: nothing more is relayed in that direction.
    var closeSentToClient = false
    var closeSentToUpstream = false
    var bytesFromClient = 0
    var bytesFromUpstream = 0
    let openedAt: NIODeadline
    /// The session of the token that opened it: revoking it ends the tunnel.
    let sessionID: String?
    /// The revocation list's revision last checked for `sessionID`.
    var checkedRevision = -1
    /// Why it ended, once known (the first cause counts).
    var endReason: ConnectionStateMachine.TunnelEnd?

    init(openedAt: NIODeadline, sessionID: String?) {
        self.openedAt = openedAt
        self.sessionID = sessionID
    }

    /// A read from the client: all of it passes while the tunnel runs; while the gateway ends it,
    /// only the rest of the frame under way, then the close frame goes upstream. What follows is
    /// read for the client's close frame only.
    mutating func fromClient(_ bytes: UnsafeRawBufferPointer, ending: Bool) throws(WebSocketFrameScanner.Failure) -> Pass {
        self.bytesFromClient += bytes.count
        return try Self.pass(bytes, scanner: &self.fromClient, closeSent: &self.closeSentToUpstream, ending: ending)
    }

    /// A read from the upstream, likewise; what follows the close frame to the client is dropped.
    mutating func fromUpstream(_ bytes: UnsafeRawBufferPointer, ending: Bool) throws(WebSocketFrameScanner.Failure) -> Pass {
        self.bytesFromUpstream += bytes.count
        return try Self.pass(bytes, scanner: &self.fromUpstream, closeSent: &self.closeSentToClient, ending: ending)
    }

    private static func pass(
        _ bytes: UnsafeRawBufferPointer, scanner: inout WebSocketFrameScanner, closeSent: inout Bool, ending: Bool
    ) throws(WebSocketFrameScanner.Failure) -> Pass {
        if closeSent {
            _ = try scanner.scan(bytes)
            return Pass(forward: 0, sendClose: false)
        }
        guard ending else { return Pass(forward: try scanner.scan(bytes), sendClose: false) }
        let forward = try scanner.scan(bytes, stopAtBoundary: true)
        guard scanner.isBetweenFrames else { return Pass(forward: forward, sendClose: false) }
        closeSent = true
        _ = try scanner.scan(UnsafeRawBufferPointer(rebasing: bytes[forward...]))
        return Pass(forward: forward, sendClose: true)
    }

    /// When the gateway begins to end the tunnel: which close frames can go at once (that
    /// direction is between frames); the others go when their frame under way ends.
    mutating func closesDue() -> (toClient: Bool, toUpstream: Bool) {
        let toClient = !self.closeSentToClient && self.fromUpstream.isBetweenFrames
        let toUpstream = !self.closeSentToUpstream && self.fromClient.isBetweenFrames
        if toClient { self.closeSentToClient = true }
        if toUpstream { self.closeSentToUpstream = true }
        return (toClient, toUpstream)
    }

    /// The gateway ended the tunnel and the client answered with its close frame: both sockets close.
    var clientAnsweredClose: Bool { self.closeSentToClient && self.fromClient.sawClose }

    /// The close frame for why the gateway ends the tunnel (RFC 6455 §7.4.1).
    static func closeFrame(for reason: ConnectionStateMachine.TunnelEnd, masked: Bool) -> [UInt8] {
        switch reason {
        case .expired: WebSocketClose.frame(code: WebSocketClose.policyViolation, reason: "token expired", masked: masked)
        case .revoked: WebSocketClose.frame(code: WebSocketClose.policyViolation, reason: "session revoked", masked: masked)
        case .drain, .client, .upstream, .idle: WebSocketClose.frame(code: WebSocketClose.goingAway, reason: "gateway shutting down", masked: masked)
        }
    }
}
