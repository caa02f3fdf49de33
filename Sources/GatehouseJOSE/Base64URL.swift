// SPDX-License-Identifier: Apache-2.0

/// Strict base64url (RFC 4648 §5) as JWS uses it (RFC 7515 §2): no padding, no whitespace, nothing
/// outside the alphabet, and unused trailing bits zero, so every byte string has exactly one encoding.
public enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// 0–63 for alphabet bytes, 0xFF otherwise.
    private static let decodeTable: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (value, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(value) }
        return table
    }()

    /// The encoding of `bytes`.
    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        var output = [UInt8]()
        output.reserveCapacity((bytes.count * 4 + 2) / 3)
        var iterator = bytes.makeIterator()
        while let b0 = iterator.next() {
            let b1 = iterator.next()
            let b2 = iterator.next()
            output.append(alphabet[Int(b0 >> 2)])
            output.append(alphabet[Int((b0 & 0x03) << 4 | (b1 ?? 0) >> 4)])
            guard let b1 else { break }
            output.append(alphabet[Int((b1 & 0x0F) << 2 | (b2 ?? 0) >> 6)])
            guard let b2 else { break }
            output.append(alphabet[Int(b2 & 0x3F)])
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// How many bytes `count` encoded characters decode to, or nil if no valid encoding has that length.
    public static func decodedCount(_ count: Int) -> Int? {
        switch count % 4 {
        case 1: nil
        case 0: count / 4 * 3
        default: count / 4 * 3 + count % 4 - 1
        }
    }

    /// The table above, pre-shifted for each position of a quad (1 KiB each), with bit 31 marking
    /// bytes outside the alphabet: a quad decodes with four loads and three ORs.
    private static let quadTables: [UInt32] = {
        var tables = [UInt32](repeating: 0x8000_0000, count: 4 * 256)
        for (value, byte) in alphabet.enumerated() {
            for position in 0..<4 { tables[position * 256 + Int(byte)] = UInt32(value) << (18 - 6 * position) }
        }
        return tables
    }()

    /// Decodes `encoded` into `output` (at least `decodedCount` bytes); returns the byte count, or nil
    /// if `encoded` is not strict base64url.
    public static func decode(_ encoded: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) -> Int? {
        guard let count = decodedCount(encoded.count), output.count >= count else { return nil }
        guard count > 0 else { return 0 }
        let input = encoded.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let out = output.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let written = self.quadTables.withUnsafeBufferPointer { quads -> Int? in
            let q = quads.baseAddress!
            var written = 0
            var index = 0
            let whole = encoded.count & ~3
            // Four characters make three bytes; any character outside the alphabet sets bit 31 in `bad`.
            var bad: UInt32 = 0
            while index < whole {
                let word = q[Int(input[index])] | q[256 &+ Int(input[index &+ 1])]
                    | q[512 &+ Int(input[index &+ 2])] | q[768 &+ Int(input[index &+ 3])]
                bad |= word
                out[written] = UInt8(truncatingIfNeeded: word &>> 16)
                out[written &+ 1] = UInt8(truncatingIfNeeded: word &>> 8)
                out[written &+ 2] = UInt8(truncatingIfNeeded: word)
                written &+= 3
                index &+= 4
            }
            return bad & 0x8000_0000 == 0 ? written : nil
        }
        guard var written else { return nil }
        let index = encoded.count & ~3
        return self.decodeTable.withUnsafeBufferPointer { table -> Int? in
            let t = table.baseAddress!
            switch encoded.count &- index {
            case 2:
                let a = t[Int(input[index])], b = t[Int(input[index &+ 1])]
                // The unused low bits must be zero: one encoding per byte string.
                guard (a | b) & 0xC0 == 0, b & 0x0F == 0 else { return nil }
                out[written] = a &<< 2 | b &>> 4
                written &+= 1
            case 3:
                let a = t[Int(input[index])], b = t[Int(input[index &+ 1])], c = t[Int(input[index &+ 2])]
                guard (a | b | c) & 0xC0 == 0, c & 0x03 == 0 else { return nil }
                out[written] = a &<< 2 | b &>> 4
                out[written &+ 1] = b &<< 4 | c &>> 2
                written &+= 2
            default:
                break
            }
            return written
        }
    }

    /// The bytes `encoded` stands for, or nil if it is not strict base64url.
    public static func decode(_ encoded: some StringProtocol) -> [UInt8]? {
        var utf8 = Array(encoded.utf8)
        guard let count = decodedCount(utf8.count) else { return nil }
        var output = [UInt8](repeating: 0, count: count)
        let written = utf8.withUnsafeMutableBytes { input in
            output.withUnsafeMutableBytes { decode(UnsafeRawBufferPointer(input), into: $0) }
        }
        return written == nil ? nil : output
    }
}
