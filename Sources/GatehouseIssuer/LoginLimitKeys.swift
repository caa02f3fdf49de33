// SPDX-License-Identifier: Apache-2.0
import GatehouseConfig
#if canImport(Glibc)
import Glibc
#endif

/// The login limit's counter keys for client addresses.
enum LoginLimitKeys {
    /// The counter of a client address: an IPv4 address alone, an IPv6 address by its /64 (one
    /// subscriber's network: a host there can pick any of 2^64 addresses); an IPv4-mapped IPv6
    /// address counts as its IPv4 address. Anything unparsable counts as itself.
    static func address(_ address: String) -> String {
        // Parsed as `trusted_proxies` parses addresses, so both read a client the same way.
        guard let bytes = TrustedProxies.bytes(of: address) else { return "address:" + address }
        if bytes.count == 4 { return "address:" + Self.text(bytes) }
        return "address:" + Self.text(Array(bytes[0..<8]) + [UInt8](repeating: 0, count: 8)) + "/64"
    }

    /// The canonical text of 4 or 16 address bytes.
    private static func text(_ bytes: [UInt8]) -> String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let family = bytes.count == 4 ? AF_INET : AF_INET6
        let written = bytes.withUnsafeBytes { raw in
            buffer.withUnsafeMutableBufferPointer { inet_ntop(family, raw.baseAddress, $0.baseAddress, socklen_t($0.count)) }
        }
        guard written != nil else { return bytes.map(String.init).joined(separator: ".") }
        return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }
}
