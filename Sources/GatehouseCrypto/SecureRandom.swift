// SPDX-License-Identifier: Apache-2.0
internal import CGatehouseOpenSSL

/// Cryptographically secure random bytes from libcrypto's DRBG.
public enum SecureRandom {
    /// `count` random bytes.
    public static func bytes(_ count: Int) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: count)
        let status = output.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, Int32($0.count)) }
        // A DRBG that cannot seed leaves nothing safe to do.
        precondition(status == 1, "RAND_bytes failed")
        return output
    }
}

/// Compares two byte strings in time that depends only on their length.
public func constantTimeEquals(_ lhs: UnsafeRawBufferPointer, _ rhs: UnsafeRawBufferPointer) -> Bool {
    guard lhs.count == rhs.count else { return false }
    if lhs.isEmpty { return true }
    return CRYPTO_memcmp(lhs.baseAddress, rhs.baseAddress, lhs.count) == 0
}

/// Compares two strings' UTF-8 bytes in time that depends only on their length (a shared secret
/// against what a request presents).
public func constantTimeEquals(_ lhs: String, _ rhs: String) -> Bool {
    var lhs = lhs
    var rhs = rhs
    return lhs.withUTF8 { lhs in rhs.withUTF8 { rhs in constantTimeEquals(UnsafeRawBufferPointer(lhs), UnsafeRawBufferPointer(rhs)) } }
}
