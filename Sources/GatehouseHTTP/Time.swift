// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Seconds since the epoch, for token time checks.
package func currentTime() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

/// RFC 3339 timestamps in UTC: `2026-12-07T23:13:40Z`, or with milliseconds
/// `2026-12-07T23:13:40.123Z` — the logs' `time`, the issuer's `created_at`.
public enum RFC3339 {
    /// The time `milliseconds` after the epoch, with its milliseconds (`fraction`) or without.
    public static func format(milliseconds: Int64, fraction: Bool = true) -> String {
        let second = milliseconds >= 0 ? milliseconds / 1000 : (milliseconds - 999) / 1000
        let rest = Int(milliseconds - second * 1000)
        return Self.dateTime(second: Int(second)) + (fraction ? Self.fraction(milliseconds: rest) : "Z")
    }

    /// Now, to the millisecond.
    public static func now() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Self.dateTime(second: Int(now.tv_sec)) + Self.fraction(milliseconds: Int(now.tv_nsec / 1_000_000))
    }

    /// `YYYY-MM-DDTHH:MM:SS` of a second since the epoch, without the zone: the costly part
    /// (`gmtime_r`), which a caller writing many timestamps may keep for the whole second.
    public static func dateTime(second: Int) -> String {
        var seconds = time_t(second)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let year = Int(parts.tm_year) + 1900
        guard (0...9999).contains(year) else { return "\(year)-\(parts.tm_mon + 1)-\(parts.tm_mday)T\(parts.tm_hour):\(parts.tm_min):\(parts.tm_sec)" }
        return String(unsafeUninitializedCapacity: 19) { output in
            func put(_ value: Int, digits: Int, at offset: Int) {
                var value = value
                for index in (0..<digits).reversed() {
                    output[offset + index] = UInt8(ascii: "0") + UInt8(value % 10)
                    value /= 10
                }
            }
            put(year, digits: 4, at: 0)
            output[4] = UInt8(ascii: "-")
            put(Int(parts.tm_mon) + 1, digits: 2, at: 5)
            output[7] = UInt8(ascii: "-")
            put(Int(parts.tm_mday), digits: 2, at: 8)
            output[10] = UInt8(ascii: "T")
            put(Int(parts.tm_hour), digits: 2, at: 11)
            output[13] = UInt8(ascii: ":")
            put(Int(parts.tm_min), digits: 2, at: 14)
            output[16] = UInt8(ascii: ":")
            put(Int(parts.tm_sec), digits: 2, at: 17)
            return 19
        }
    }

    /// `.mmmZ` for `milliseconds` (0...999): what follows `dateTime` — five bytes, a small string
    /// that allocates nothing.
    public static func fraction(milliseconds: Int) -> String {
        let value = min(max(milliseconds, 0), 999)
        return String(unsafeUninitializedCapacity: 5) { output in
            output[0] = UInt8(ascii: ".")
            output[1] = UInt8(ascii: "0") + UInt8(value / 100)
            output[2] = UInt8(ascii: "0") + UInt8(value / 10 % 10)
            output[3] = UInt8(ascii: "0") + UInt8(value % 10)
            output[4] = UInt8(ascii: "Z")
            return 5
        }
    }
}
