// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif

/// Which peers are proxies whose `X-Forwarded-For` is believed (`trusted_proxies`: addresses or
/// CIDR blocks, IPv4 or IPv6), and so which address a login counts against.
struct TrustedProxies: Sendable {
    private struct Block: Sendable {
        let network: [UInt8]
        let prefixLength: Int
    }

    private let blocks: [Block]

    /// Fails with the entry that is neither an address nor a CIDR block.
    init(_ entries: [String]) throws(IssuerSetupError) {
        var blocks: [Block] = []
        for entry in entries {
            let parts = entry.split(separator: "/", maxSplits: 1).map(String.init)
            guard let network = Self.bytes(of: parts[0]) else { throw IssuerSetupError("trusted_proxies: \(entry) is not an IP address or CIDR block") }
            var length = network.count * 8
            if parts.count == 2 {
                guard let parsed = Int(parts[1]), (0...network.count * 8).contains(parsed) else {
                    throw IssuerSetupError("trusted_proxies: \(entry) has a bad prefix length")
                }
                length = parsed
            }
            blocks.append(Block(network: network, prefixLength: length))
        }
        self.blocks = blocks
    }

    func contains(_ address: String) -> Bool {
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
    func clientAddress(peer: String?, forwardedFor: [String]) -> String {
        let peer = peer ?? "unknown"
        guard self.contains(peer) else { return peer }
        let hops = forwardedFor.flatMap { $0.split(separator: ",") }.map { $0.trimmingSpaces() }.filter { !$0.isEmpty }
        return hops.last ?? peer
    }

    /// The 4 or 16 bytes of an IPv4 or IPv6 address.
    private static func bytes(of address: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, address, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, address, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }
}

extension Substring {
    func trimmingSpaces() -> String {
        String(self.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}

/// A configuration or start-up problem of the issuer, in one sentence.
public struct IssuerSetupError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Emails are trimmed and compared case-insensitively (stored lower-case).
public enum EmailAddress {
    /// The normalised address, or nil when it is not a plausible address: one `@`, a local part of
    /// 1–64 printable characters, a dotted domain of letters, digits and hyphens, 254 bytes at most.
    public static func normalize(_ raw: String) -> String? {
        let email = Substring(raw).trimmingSpaces().lowercased()
        guard email.utf8.count <= 254 else { return nil }
        let parts = email.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, (1...64).contains(parts[0].utf8.count),
            parts[0].unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value != 0x7F && $0 != "," && $0 != "<" && $0 != ">" })
        else { return nil }
        let labels = parts[1].split(separator: ".", omittingEmptySubsequences: false)
        guard labels.count >= 2, labels.allSatisfy({ label in
            !label.isEmpty && label.count <= 63 && !label.hasPrefix("-") && !label.hasSuffix("-")
                && label.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0.value > 0x7F }
        }) else { return nil }
        return email
    }
}
