// SPDX-License-Identifier: Apache-2.0
import GatehouseConfig
import GatehouseJOSE
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// Keeps one `jwks_url` provider's keys current: fetched before the listener answers (up to
/// `jwks_startup_timeout`), refreshed by `Cache-Control: max-age` (default 5 minutes), refetched
/// when a token names an unknown `kid` (single flight, at most once per 5 s), and the last good
/// key set keeps serving while the endpoint is down (retries back off from 1 s to 30 s).
/// Confined to its event loop.
final class JWKSRefresher: @unchecked Sendable {
    let provider: ProviderConfig
    let url: UpstreamURL
    let loop: any EventLoop
    let maxTokenBytes: Int
    /// For an https URL: the system's CA bundle, or the provider's `ca_file`.
    private let tls: NIOSSLContext?
    /// Called with every new verifier.
    private let publish: @Sendable (Verifier) -> Void
    private let readiness: NIOLockedValueBox<Bool>

    private var inFlight = false
    /// When an unknown `kid` last caused a refetch (scheduled refreshes do not count).
    private var lastRefetch: NIODeadline?
    private var next: Scheduled<Void>?
    private var failures = 0
    private(set) var refreshes = (ok: 0, error: 0)
    /// Symmetric keys the endpoint published and that were refused (each fetch counts its own).
    private(set) var refusedSymmetricKeys = 0
    private var warnedOfSymmetricKeys = false
    /// Static: as a stored property, its initialiser inlined into `GatewayServer.start` crashed the
    /// release compiler (Swift 6.3.1, coroutine splitting).
    private static let logger = Logger(label: "gatehouse.jwks")

    static let defaultMaxAge = 300
    static let longestMaxAge = 86_400
    static let minimumRefetchInterval = TimeAmount.seconds(5)

    /// Throws when the TLS trust roots cannot be loaded (a bad `ca_file`).
    init(
        provider: ProviderConfig, url: UpstreamURL, loop: any EventLoop, maxTokenBytes: Int, publish: @escaping @Sendable (Verifier) -> Void
    ) throws {
        if url.scheme == "https" {
            guard case .jwksURL(_, let caFile) = provider.keys else { throw HTTPFetch.Failure(description: "not a jwks_url provider") }
            self.tls = try TLSContexts.client(caFile: caFile)
        } else {
            self.tls = nil
        }
        self.provider = provider
        self.url = url
        self.loop = loop
        self.maxTokenBytes = maxTokenBytes
        self.publish = publish
        self.readiness = NIOLockedValueBox(false)
    }

    /// Whether a key set has been loaded (for `/readyz`).
    var isReady: Bool { self.readiness.withLockedValue { $0 } }

    /// Starts fetching; the future completes with the first fetch (successful or not).
    func start() -> EventLoopFuture<Void> {
        self.loop.flatSubmit { self.refresh() }
    }

    /// A token named a `kid` this provider does not have: refetch unless one is under way or one
    /// ran in the last 5 s.
    func unknownKeyID() {
        self.loop.execute {
            guard !self.inFlight else { return }
            if let last = self.lastRefetch, NIODeadline.now() - last < Self.minimumRefetchInterval { return }
            self.lastRefetch = .now()
            _ = self.refresh()
        }
    }

    func stop() {
        self.loop.execute { self.next?.cancel() }
    }

    private func refresh() -> EventLoopFuture<Void> {
        self.inFlight = true
        self.next?.cancel()
        return HTTPFetch.get(self.url, tls: self.tls, on: self.loop, timeout: .seconds(10)).flatMapThrowing { document -> Int in
            let (keys, refusedSymmetric) = try ProviderConfig.keys(of: JWKS(jsonText: document.text), remote: true)
            self.refuseSymmetricKeys(refusedSymmetric)
            let verifier = try self.provider.makeVerifier(issuerConfig: nil, fetched: keys, maxTokenBytes: self.maxTokenBytes)
            self.publish(verifier)
            self.readiness.withLockedValue { $0 = true }
            return document.maxAge ?? Self.defaultMaxAge
        }.map { maxAge in
            if self.failures > 0 {
                Self.logger.info("JWKS fetch recovered", metadata: ["url": "\(self.url)", "failures": "\(self.failures)"])
            }
            self.failures = 0
            self.refreshes.ok += 1
            // max-age is the endpoint's number: kept between a second and a day.
            self.schedule(in: .seconds(Int64(min(max(1, maxAge), Self.longestMaxAge))))
        }.flatMapErrorThrowing { error in
            Self.logger.warning("JWKS fetch failed; the last good keys keep serving", metadata: ["url": "\(self.url)", "error": "\(error)"])
            // The last good keys keep serving; try again soon, backing off.
            self.failures += 1
            self.refreshes.error += 1
            self.schedule(in: .seconds(Int64(min(30, 1 << min(self.failures - 1, 5)))))
        }.always { _ in
            self.inFlight = false
        }
    }

    /// A published symmetric key is no secret: anyone could sign with it. Counted, and said once.
    private func refuseSymmetricKeys(_ count: Int) {
        guard count > 0 else { return }
        self.refusedSymmetricKeys += count
        if !self.warnedOfSymmetricKeys {
            self.warnedOfSymmetricKeys = true
            Self.logger.warning("symmetric (oct) keys in a remote JWKS are refused", metadata: ["url": "\(self.url)", "keys": "\(count)"])
        }
    }

    private func schedule(in delay: TimeAmount) {
        self.next = self.loop.scheduleTask(in: delay) { _ = self.refresh() }
    }
}
