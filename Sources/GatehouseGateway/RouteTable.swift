// SPDX-License-Identifier: Apache-2.0
public import GatehouseConfig

/// The configured routes, longest prefix first.
public struct RouteTable: Sendable {
    /// Routes sorted by descending prefix length, so the first match is the longest.
    public let routes: [RouteConfig]

    public init(_ routes: [RouteConfig]) {
        self.routes = routes.sorted { $0.prefix.utf8.count > $1.prefix.utf8.count }
    }

    /// The route whose prefix is the longest prefix of the normalised `path`.
    public func route(for path: String) -> RouteConfig? {
        self.routes.first { path.hasPrefix($0.prefix) }
    }
}
