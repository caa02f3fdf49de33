// SPDX-License-Identifier: Apache-2.0

/// Byte classes of RFC 9110 §5.6 and RFC 9112, as switches (the compiler turns them into range
/// checks; no table to load).
public enum ASCII {
    static let cr: UInt8 = 0x0D
    static let lf: UInt8 = 0x0A
    static let sp: UInt8 = 0x20
    static let htab: UInt8 = 0x09
    static let colon: UInt8 = 0x3A

    /// tchar (RFC 9110 §5.6.2).
    @inline(__always)
    static func isTChar(_ b: UInt8) -> Bool {
        switch b {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
            UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
            UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default: return false
        }
    }

    /// field-vchar / SP / HTAB (RFC 9110 §5.5): VCHAR, obs-text, SP, HTAB. Not NUL, CTLs, DEL.
    @inline(__always)
    static func isFieldByte(_ b: UInt8) -> Bool {
        b >= 0x20 ? b != 0x7F : b == htab
    }

    @inline(__always)
    static func isOWS(_ b: UInt8) -> Bool { b == sp || b == htab }

    @inline(__always)
    static func isDigit(_ b: UInt8) -> Bool { b &- 0x30 < 10 }

    @inline(__always)
    static func isAlpha(_ b: UInt8) -> Bool { (b | 0x20) &- 0x61 < 26 }

    /// The value of a hex digit (either case), or nil: chunk sizes here, percent-escapes in the
    /// gateway's path normalisation. (Writing hex is GatehouseCrypto's `Hex`.)
    @inline(__always)
    package static func hexValue(_ b: UInt8) -> UInt64? {
        switch b {
        case 0x30...0x39: return UInt64(b - 0x30)
        case 0x41...0x46: return UInt64(b - 0x41 + 10)
        case 0x61...0x66: return UInt64(b - 0x61 + 10)
        default: return nil
        }
    }

    /// qdtext (RFC 9110 §5.6.4).
    @inline(__always)
    static func isQDText(_ b: UInt8) -> Bool {
        b == htab || b == sp || b == 0x21 || (b >= 0x23 && b <= 0x5B) || (b >= 0x5D && b <= 0x7E) || b >= 0x80
    }

    /// `bytes` equals the lowercase ASCII `lowercase`, ignoring ASCII case. `bytes` are tchar or
    /// field bytes; `lowercase` holds only letters, digits and '-', so OR-ing 0x20 folds exactly.
    @inline(__always)
    public static func equalsIgnoringCase(_ bytes: UnsafeRawBufferPointer, _ lowercase: StaticString) -> Bool {
        guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
        let expected = lowercase.utf8Start
        for i in 0..<bytes.count {
            let b = bytes[i]
            let e = expected[i]
            if b != e && !(isAlpha(b) && (b | 0x20) == e) { return false }
        }
        return true
    }
}
