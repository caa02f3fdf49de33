// SPDX-License-Identifier: Apache-2.0
import GatehouseJOSE
import NIOCore

/// One event loop's counters. Plain integers: only the loop touches them, so recording costs no
/// atomic and no lock; a scrape sums the loops' copies on their own loops.
final class LoopMetrics {
    struct RequestKey: Hashable {
        let route: String
        let status: Int
    }

    /// Upper bounds of the upstream latency histogram, seconds (Prometheus' default buckets).
    static let bounds: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    struct Histogram {
        var buckets = [Int](repeating: 0, count: LoopMetrics.bounds.count)
        var sum = 0.0
        var count = 0

        mutating func observe(_ seconds: Double) {
            for (index, bound) in LoopMetrics.bounds.enumerated() where seconds <= bound { self.buckets[index] += 1 }
            self.sum += seconds
            self.count += 1
        }

        mutating func add(_ other: Histogram) {
            for index in self.buckets.indices { self.buckets[index] += other.buckets[index] }
            self.sum += other.sum
            self.count += other.count
        }
    }

    struct TunnelKey: Hashable {
        let route: String
        let reason: ConnectionStateMachine.TunnelEnd
    }

    var requests: [RequestKey: Int] = [:]
    var rejections: [RejectionReason: Int] = [:]
    var upstream: [String: Histogram] = [:]
    /// WebSocket tunnels open now, by route.
    var tunnelsOpen: [String: Int] = [:]
    var tunnelsClosed: [TunnelKey: Int] = [:]

    func tunnelOpened(route: String) {
        self.tunnelsOpen[route, default: 0] += 1
    }

    func tunnelClosed(route: String, reason: ConnectionStateMachine.TunnelEnd) {
        self.tunnelsOpen[route, default: 0] -= 1
        self.tunnelsClosed[TunnelKey(route: route, reason: reason), default: 0] += 1
    }

    func countRequest(route: String, status: Int) {
        self.requests[RequestKey(route: route, status: status), default: 0] += 1
    }

    func countRejection(_ reason: RejectionReason) {
        self.rejections[reason, default: 0] += 1
    }

    func observeUpstream(route: String, seconds: Double) {
        self.upstream[route, default: Histogram()].observe(seconds)
    }

    /// A copy of everything, for a scrape.
    var snapshot: MetricsSnapshot {
        MetricsSnapshot(
            requests: self.requests, rejections: self.rejections, upstream: self.upstream, tunnelsOpen: self.tunnelsOpen,
            tunnelsClosed: self.tunnelsClosed
        )
    }
}

@available(*, unavailable)
extension LoopMetrics: Sendable {}

/// The counters of one or more loops, summed.
struct MetricsSnapshot: Sendable {
    var requests: [LoopMetrics.RequestKey: Int] = [:]
    var rejections: [RejectionReason: Int] = [:]
    var upstream: [String: LoopMetrics.Histogram] = [:]
    var tunnelsOpen: [String: Int] = [:]
    var tunnelsClosed: [LoopMetrics.TunnelKey: Int] = [:]
    var cacheHits = 0
    var cacheMisses = 0
    var jwksRefreshes = (ok: 0, error: 0)
    var jwksRefusedSymmetricKeys = 0

    mutating func add(_ other: MetricsSnapshot) {
        for (key, count) in other.requests { self.requests[key, default: 0] += count }
        for (key, count) in other.rejections { self.rejections[key, default: 0] += count }
        for (key, histogram) in other.upstream { self.upstream[key, default: .init()].add(histogram) }
        for (key, count) in other.tunnelsOpen { self.tunnelsOpen[key, default: 0] += count }
        for (key, count) in other.tunnelsClosed { self.tunnelsClosed[key, default: 0] += count }
        self.cacheHits += other.cacheHits
        self.cacheMisses += other.cacheMisses
    }

    /// Prometheus text exposition format 0.0.4, with DESIGN.md's metric names.
    var prometheusText: String {
        var lines: [String] = []
        lines.append("# HELP gatehouse_requests_total Requests answered, by route prefix and status.")
        lines.append("# TYPE gatehouse_requests_total counter")
        for (key, count) in self.requests.sorted(by: { ($0.key.route, $0.key.status) < ($1.key.route, $1.key.status) }) {
            lines.append("gatehouse_requests_total{route=\"\(Self.escape(key.route))\",status=\"\(key.status)\"} \(count)")
        }
        lines.append("# HELP gatehouse_token_rejections_total Tokens refused, by reason.")
        lines.append("# TYPE gatehouse_token_rejections_total counter")
        for reason in RejectionReason.allCases {
            lines.append("gatehouse_token_rejections_total{reason=\"\(reason.rawValue)\"} \(self.rejections[reason] ?? 0)")
        }
        lines.append("# HELP gatehouse_upstream_duration_seconds Time from forwarding a request to the end of its response.")
        lines.append("# TYPE gatehouse_upstream_duration_seconds histogram")
        for (route, histogram) in self.upstream.sorted(by: { $0.key < $1.key }) {
            let label = "route=\"\(Self.escape(route))\""
            for (index, bound) in LoopMetrics.bounds.enumerated() {
                lines.append("gatehouse_upstream_duration_seconds_bucket{\(label),le=\"\(bound)\"} \(histogram.buckets[index])")
            }
            lines.append("gatehouse_upstream_duration_seconds_bucket{\(label),le=\"+Inf\"} \(histogram.count)")
            lines.append("gatehouse_upstream_duration_seconds_sum{\(label)} \(histogram.sum)")
            lines.append("gatehouse_upstream_duration_seconds_count{\(label)} \(histogram.count)")
        }
        lines.append("# HELP gatehouse_websocket_tunnels WebSocket tunnels open, by route prefix.")
        lines.append("# TYPE gatehouse_websocket_tunnels gauge")
        for (route, count) in self.tunnelsOpen.sorted(by: { $0.key < $1.key }) {
            lines.append("gatehouse_websocket_tunnels{route=\"\(Self.escape(route))\"} \(count)")
        }
        lines.append("# HELP gatehouse_websocket_closed_total WebSocket tunnels ended, by route prefix and reason.")
        lines.append("# TYPE gatehouse_websocket_closed_total counter")
        for (key, count) in self.tunnelsClosed.sorted(by: { ($0.key.route, $0.key.reason.rawValue) < ($1.key.route, $1.key.reason.rawValue) }) {
            lines.append("gatehouse_websocket_closed_total{route=\"\(Self.escape(key.route))\",reason=\"\(key.reason.rawValue)\"} \(count)")
        }
        lines.append("# HELP gatehouse_token_cache_hits_total Tokens found in the verified-token cache.")
        lines.append("# TYPE gatehouse_token_cache_hits_total counter")
        lines.append("gatehouse_token_cache_hits_total \(self.cacheHits)")
        lines.append("# HELP gatehouse_token_cache_misses_total Tokens looked up and not found in the verified-token cache.")
        lines.append("# TYPE gatehouse_token_cache_misses_total counter")
        lines.append("gatehouse_token_cache_misses_total \(self.cacheMisses)")
        lines.append("# HELP gatehouse_jwks_refresh_total JWKS fetches of jwks_url providers, by result.")
        lines.append("# TYPE gatehouse_jwks_refresh_total counter")
        lines.append("gatehouse_jwks_refresh_total{result=\"ok\"} \(self.jwksRefreshes.ok)")
        lines.append("gatehouse_jwks_refresh_total{result=\"error\"} \(self.jwksRefreshes.error)")
        lines.append("# HELP gatehouse_jwks_keys_refused_total Keys of jwks_url sets refused: symmetric keys are no secret once published.")
        lines.append("# TYPE gatehouse_jwks_keys_refused_total counter")
        lines.append("gatehouse_jwks_keys_refused_total{reason=\"symmetric\"} \(self.jwksRefusedSymmetricKeys)")
        return lines.joined(separator: "\n") + "\n"
    }

    /// Label values escape backslash, double quote and newline.
    private static func escape(_ value: String) -> String {
        var escaped = ""
        for character in value {
            switch character {
            case "\\": escaped += "\\\\"
            case "\"": escaped += "\\\""
            case "\n": escaped += "\\n"
            default: escaped.append(character)
            }
        }
        return escaped
    }
}
