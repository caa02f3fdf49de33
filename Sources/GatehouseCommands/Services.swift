// SPDX-License-Identifier: Apache-2.0
import Logging
import ServiceLifecycle

/// One long-running part of `serve` as a swift-service-lifecycle `Service`.
///
/// The part is started before the group runs — listeners bound, first keys fetched, feeds
/// loaded — since `serve` announces its listeners only once they answer, and a part that cannot
/// start is one line and exit 1. `run` then lasts as long as the part: it returns once `stop` has
/// ended it, when the group shuts down gracefully (SIGTERM, SIGINT) or is cancelled.
struct ServePart: Service, CustomStringConvertible {
    let description: String
    private let stop: @Sendable () async -> Void

    init(_ description: String, stop: @escaping @Sendable () async -> Void) {
        self.description = description
        self.stop = stop
    }

    func run() async throws {
        // Returns at graceful shutdown, throws CancellationError when the group is cancelled:
        // either way the part stops.
        try? await gracefulShutdown()
        await self.stop()
    }
}

extension ServiceGroup {
    /// Static, as the gateway's loggers are (see `JWKSRefresher.logger`).
    private static let serveLogger = Logger(label: "gatehouse.lifecycle")

    /// `serve`'s group. It traps no signal itself: `serve` installs its SIGTERM and SIGINT sources
    /// before anything starts, so that a signal during start-up is not lost, and hands each to
    /// `triggerGracefulShutdown` (remembered when the group has not run yet). The parts stop one
    /// after another in reverse order of `parts`, each once the one after it has stopped.
    static func serve(_ parts: [ServePart]) -> ServiceGroup {
        ServiceGroup(services: parts, logger: Self.serveLogger)
    }
}
