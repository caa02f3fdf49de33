// SPDX-License-Identifier: Apache-2.0
import NIOCore
import GatehouseHTTP1
import Synchronization

/// Limits a listener enforces per connection, from `gateway.conf`.
public struct ConnectionLimits: Sendable {
    /// Largest request head (every byte: request line, fields, line ends) accepted; beyond it, 431.
    public var maxHeaderBytes: Int
    /// Most header fields accepted; beyond it, 431.
    public var maxHeaderCount: Int
    /// Time to finish a request head once its first byte has arrived (slowloris).
    public var headerTimeout: TimeAmount
    /// Time a connection may wait for a next request without sending a byte.
    public var idleTimeout: TimeAmount
    /// Connections open at once; more are closed as soon as they are accepted.
    public var maxConnections: Int

    public init(maxHeaderBytes: Int = 32 * 1024, maxHeaderCount: Int = 100, headerTimeout: TimeAmount = .seconds(10),
                idleTimeout: TimeAmount = .seconds(60), maxConnections: Int = 16384) {
        self.maxHeaderBytes = maxHeaderBytes
        self.maxHeaderCount = maxHeaderCount
        self.headerTimeout = headerTimeout
        self.idleTimeout = idleTimeout
        self.maxConnections = maxConnections
    }

    /// What the request parser allows of a head.
    var parserLimits: HTTP1Limits { HTTP1Limits(maxHeadBytes: self.maxHeaderBytes, maxFieldCount: self.maxHeaderCount) }

    /// The connection's timeouts, as its state machine keeps them.
    var timeouts: ConnectionStateMachine.Timeouts { ConnectionStateMachine.Timeouts(head: self.headerTimeout, idle: self.idleTimeout) }
}

/// Counts a listener's open connections and closes those beyond `maxConnections` at once.
final class ConnectionCounter: Sendable {
    private let open = Atomic<Int>(0)
    let maximum: Int

    init(maximum: Int) { self.maximum = maximum }

    /// Admits a new connection, or returns false when the listener is full.
    func admit(_ channel: any Channel) -> Bool {
        let count = self.open.add(1, ordering: .relaxed).newValue
        channel.closeFuture.whenComplete { _ in self.open.subtract(1, ordering: .relaxed) }
        return count <= self.maximum
    }
}

extension Duration {
    /// The duration as NIO's time type (configured durations are at most 100 years: no overflow).
    var timeAmount: TimeAmount {
        let (seconds, attoseconds) = self.components
        return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
