// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `trusted_proxies`: addresses or CIDR blocks, IPv4 or IPv6, of the proxies whose forwarding
/// headers are believed — by the gateway (a client's `Forwarded`, `X-Real-IP`, … pass only from
/// them) and by the issuer (the login limit counts the last `X-Forwarded-For` hop they added).
public struct TrustedProxies: Sendable {
    private struct Block: Sendable {
        let network: [UInt8]
        let prefixLength: Int
    }

    /// An entry that is neither an address nor a CIDR block.
    public struct InvalidEntry: Error, CustomStringConvertible {
        public let entry: String
        public var description: String { "trusted_proxies: \(self.entry) is not an IP address or CIDR block" }
    }

    private let blocks: [Block]

    public static let none = TrustedProxies(blocks: [])

    private init(blocks: [Block]) { self.blocks = blocks }

    public init(_ entries: [String]) throws(InvalidEntry) {
        var blocks: [Block] = []
        for entry in entries {
            let parts = entry.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            guard parts.count <= 2, let network = Self.bytes(of: parts[0]) else { throw InvalidEntry(entry: entry) }
            var length = network.count * 8
            if parts.count == 2 {
                guard let parsed = Int(parts[1]), (0...network.count * 8).contains(parsed) else { throw InvalidEntry(entry: entry) }
                length = parsed
            }
            blocks.append(Block(network: network, prefixLength: length))
        }
        self.blocks = blocks
    }

    /// Whether `address` (an IP address as text) is in one of the blocks.
    public func contains(_ address: String) -> Bool {
        guard !self.blocks.isEmpty, let bytes = Self.bytes(of: address) else { return false }
        return self.blocks.contains { block in
            guard block.network.count == bytes.count else { return false }
            var remaining = block.prefixLength
            for (a, b) in zip(block.network, bytes) where remaining > 0 {
                let mask: UInt8 = remaining >= 8 ? 0xFF : ~(0xFF >> UInt8(remaining))
                if a & mask != b & mask { return false }
                remaining -= 8
            }
            return true
        }
    }

    /// The client a request stands for: the socket peer, or — when the peer is a trusted proxy —
    /// the last `X-Forwarded-For` hop it added.
    public func clientAddress(peer: String?, forwardedFor: [String]) -> String {
        let peer = peer ?? "unknown"
        guard self.contains(peer) else { return peer }
        // Hops are separated by commas; an address holds no white space.
        let hops = forwardedFor.flatMap { $0.split { $0 == "," || $0 == " " || $0 == "\t" } }
        return hops.last.map(String.init) ?? peer
    }

    /// The 4 or 16 bytes of an IPv4 or IPv6 address; an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`,
    /// how a dual-stack listener sees an IPv4 peer) is its 4 IPv4 bytes.
    public static func bytes(of address: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, address, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, address, &v6) == 1 else { return nil }
        let bytes = withUnsafeBytes(of: &v6) { Array($0) }
        if bytes[..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF { return Array(bytes[12...]) }
        return bytes
    }
}
