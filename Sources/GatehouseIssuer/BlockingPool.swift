// SPDX-License-Identifier: Apache-2.0
public import NIOCore
import NIOConcurrencyHelpers
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

/// Threads for blocking work (Argon2, SQLite, libpq) with a bounded queue: when `queueLimit` jobs
/// already wait, `run` fails at once with `BlockingPool.Saturated` (the caller answers 503 with
/// `Retry-After`) instead of queueing without end. Results come back on the caller's event loop.
public final class BlockingPool: Sendable {
    /// The queue is full.
    public struct Saturated: Error {}

    public let name: String
    public let threads: Int
    public let queueLimit: Int
    private let pool: NIOThreadPool
    /// Jobs submitted and not yet started.
    private let waiting = NIOLockedValueBox(0)

    /// `niceness` > 0 lowers the threads' scheduling priority (Linux: per thread), so that event
    /// loops win the CPU while hashes run.
    public init(name: String, threads: Int, queueLimit: Int, niceness: Int32 = 0) {
        self.name = name
        self.threads = threads
        self.queueLimit = queueLimit
        self.niceness = niceness
        self.pool = NIOThreadPool(numberOfThreads: threads)
        self.pool.start()
    }

    private let niceness: Int32

    /// Jobs waiting for a thread now (`gatehouse_argon2_queue_depth`).
    public var queueDepth: Int { self.waiting.withLockedValue { $0 } }

    /// Runs `work` on a pool thread; fails at once with `Saturated` when the queue is full.
    public func run<T: Sendable>(on eventLoop: any EventLoop, _ work: @escaping @Sendable () throws -> T) -> EventLoopFuture<T> {
        let admitted = self.waiting.withLockedValue { waiting in
            guard waiting < self.queueLimit else { return false }
            waiting += 1
            return true
        }
        guard admitted else { return eventLoop.makeFailedFuture(Saturated()) }
        let promise = eventLoop.makePromise(of: T.self)
        self.pool.submit { state in
            self.waiting.withLockedValue { $0 -= 1 }
            // Per job: one syscall beside milliseconds of hashing, and no thread is missed.
            if self.niceness > 0 { Self.lowerPriority(of: self.niceness) }
            guard case .active = state else {
                promise.fail(Saturated())
                return
            }
            promise.completeWith(Result { try work() })
        }
        return promise.futureResult
    }

    private static func lowerPriority(of niceness: Int32) {
        #if os(Linux)
        // Linux keeps the nice value per thread; `who` 0 is the calling thread.
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, niceness)
        #endif
    }

    public func shutdown() async throws {
        try await self.pool.shutdownGracefully()
    }
}
