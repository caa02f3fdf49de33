// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import GatehouseConfig
import GatehouseGateway
import GatehouseHTTP
import GatehouseIssuer
import GatehouseStore
import NIOCore

/// Where `serve`'s gateway learns of ended sessions.
///
/// - With the issuer on, every session it ends reaches this process's gateway at once, and the
///   issuer's store is followed as well, for what other issuers and `gatehouse sessions revoke`
///   end (PostgreSQL: `LISTEN`, woken by `NOTIFY`; SQLite: read every 500 ms).
/// - `verify.revocation: {feed: postgres}` follows a PostgreSQL database the same way.
/// - `verify.revocation: {feed: poll}` asks an issuer's `GET /auth/revocations` every `interval`.
final class RevocationFeeds {
    let board: RevocationBoard
    private var followers: [RevocationFollower] = []
    private var poller: RevocationPoller?

    init(config: GatewayConfig) {
        // Entries outlive their tokens by the largest leeway any provider grants.
        self.board = RevocationBoard(retention: config.verify.providers.map(\.leeway).max() ?? .seconds(30))
    }

    func start(config: GatewayConfig, issuer: Issuer?, loop: any EventLoop) throws {
        if let issuer { self.follow(.store(issuer.store), interval: .milliseconds(500)) }
        switch config.verify.revocation {
        case .off: break
        case .postgres(let database): self.follow(.postgres(database), interval: .seconds(1))
        case .poll(let text, let secret, let interval, let caFile):
            // The configuration checked the URL; only its trust roots can fail here.
            guard let url = UpstreamURL(text) else { throw ValidationError("verify.revocation.url \(text) is not an http(s) URL") }
            do {
                self.poller = try RevocationPoller(url: url, secret: secret, interval: interval, caFile: caFile, board: self.board, loop: loop)
            } catch {
                throw ValidationError(error.description)
            }
        }
    }

    private func follow(_ source: RevocationFollower.Source, interval: Duration) {
        let board = self.board
        let feed = board.registerFeed()
        self.followers.append(
            RevocationFollower(
                source: source, interval: interval,
                deliver: { rows in
                    board.publish(rows.map { RevocationBoard.Entry(sessionID: $0.sessionID, expiresAt: Double($0.expiresAt) / 1000) })
                },
                loaded: { board.loaded(feed: feed) }
            )
        )
    }

    /// Waits until every feed has loaded once, or `timeout` has passed (then `/readyz` says 503
    /// until they have, and they keep trying).
    func waitUntilLoaded(timeout: Duration) async {
        let deadline = ContinuousClock.now + timeout
        while !self.board.isReady, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    /// What stops every feed started so far, for another task (the service group's): the poller
    /// before its next poll; the followers' threads are waited for (within one wait), so that
    /// none reads the issuer's store once its pools stop.
    var stopper: @Sendable () async -> Void {
        let followers = self.followers
        let poller = self.poller
        return {
            poller?.stop()
            followers.forEach { $0.stop() }
            for follower in followers { await follower.stopAndWait() }
        }
    }
}
