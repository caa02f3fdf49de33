// SPDX-License-Identifier: Apache-2.0

/// Hexadecimal text of bytes: lower-case for digests (the database, `body_sha256`), request ids
/// and JSON's `\u00XX`; upper-case for the percent-escapes of a normalised path (RFC 3986 §6.2.2.1).
/// Reading hex digits is GatehouseHTTP1's `ASCII.hexValue` (chunk sizes, percent-escapes).
public enum Hex {
    /// `bytes` as lower-case hexadecimal text, two digits a byte.
    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        String(unsafeUninitializedCapacity: bytes.count * 2) { output in
            var index = 0
            for byte in bytes {
                output[index] = Self.digit(byte >> 4)
                output[index + 1] = Self.digit(byte & 0x0F)
                index += 2
            }
            return index
        }
    }

    /// The ASCII digit of `nibble` (0...15; higher bits are ignored): `0`–`9`, then `a`–`f`, or
    /// `A`–`F` when `uppercase`. No table, so no allocation and no bounds check.
    @inlinable
    public static func digit(_ nibble: UInt8, uppercase: Bool = false) -> UInt8 {
        let value = nibble & 0x0F
        return value < 10 ? UInt8(ascii: "0") + value : (uppercase ? UInt8(ascii: "A") : UInt8(ascii: "a")) + value - 10
    }
}
