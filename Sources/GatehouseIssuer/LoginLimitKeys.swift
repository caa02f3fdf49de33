// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif

/// The login limit's counter keys for client addresses.
enum LoginLimitKeys {
    /// The counter of a client address: an IPv4 address alone, an IPv6 address by its /64 (one
    /// subscriber's network: a host there can pick any of 2^64 addresses); an IPv4-mapped IPv6
    /// address counts as its IPv4 address. Anything unparsable counts as itself.
    static func address(_ address: String) -> String {
        var v4 = in_addr()
        if inet_pton(AF_INET, address, &v4) == 1 { return "address:" + Self.text(withUnsafeBytes(of: &v4) { Array($0) }) }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, address, &v6) == 1 else { return "address:" + address }
        let bytes = withUnsafeBytes(of: &v6) { Array($0) }
        if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF {
            return "address:" + Self.text(Array(bytes[12..<16]))
        }
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
