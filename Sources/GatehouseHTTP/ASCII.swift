// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Byte-wise comparisons of HTTP's case-insensitive ASCII tokens (header names, schemes).
package enum ASCII {
    /// `bytes` equal the lower-case `lowercase` in any casing (ASCII letters only; `| 0x20` maps
    /// no other byte of a header name onto a letter).
    @inline(__always)
    package static func equalsIgnoringCase(_ bytes: UnsafeBufferPointer<UInt8>, _ lowercase: StaticString) -> Bool {
        guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
        return lowercase.withUTF8Buffer { expected in
            for index in 0..<expected.count where bytes[index] | 0x20 != expected[index] { return false }
            return true
        }
    }

    /// `name` equals the lower-case `lowercase` in any casing.
    package static func equalsIgnoringCase(_ name: String, _ lowercase: StaticString) -> Bool {
        name.withUTF8Bytes { Self.equalsIgnoringCase($0, lowercase) }
    }
}

extension String {
    /// The UTF-8 bytes in one piece: no copy for the native strings NIO's decoder makes.
    @inline(__always)
    package func withUTF8Bytes<Result>(_ body: (UnsafeBufferPointer<UInt8>) -> Result) -> Result {
        if let result = self.utf8.withContiguousStorageIfAvailable(body) { return result }
        var copy = self
        return copy.withUTF8(body)
    }
}

extension Substring {
    /// Without leading and trailing spaces and tabs (HTTP's optional whitespace).
    public var trimmingSpaces: Substring {
        var slice = self
        while let first = slice.first, first == " " || first == "\t" { slice = slice.dropFirst() }
        while let last = slice.last, last == " " || last == "\t" { slice = slice.dropLast() }
        return slice
    }
}

/// Seconds since the epoch, for token time checks.
package func currentTime() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}
