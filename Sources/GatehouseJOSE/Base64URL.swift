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

    /// Decodes `encoded` into `output` (at least `decodedCount` bytes); returns the byte count, or nil
    /// if `encoded` is not strict base64url.
    public static func decode(_ encoded: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) -> Int? {
        guard let count = decodedCount(encoded.count), output.count >= count else { return nil }
        return self.decodeTable.withUnsafeBufferPointer { table -> Int? in
            var written = 0
            var index = 0
            let whole = encoded.count / 4 * 4
            while index < whole {
                let a = table[Int(encoded[index])], b = table[Int(encoded[index + 1])]
                let c = table[Int(encoded[index + 2])], d = table[Int(encoded[index + 3])]
                guard (a | b | c | d) & 0xC0 == 0 else { return nil }
                output[written] = a << 2 | b >> 4
                output[written + 1] = b << 4 | c >> 2
                output[written + 2] = c << 6 | d
                written += 3
                index += 4
            }
            switch encoded.count - whole {
            case 2:
                let a = table[Int(encoded[index])], b = table[Int(encoded[index + 1])]
                guard (a | b) & 0xC0 == 0, b & 0x0F == 0 else { return nil }
                output[written] = a << 2 | b >> 4
                written += 1
            case 3:
                let a = table[Int(encoded[index])], b = table[Int(encoded[index + 1])]
                let c = table[Int(encoded[index + 2])]
                guard (a | b | c) & 0xC0 == 0, c & 0x03 == 0 else { return nil }
                output[written] = a << 2 | b >> 4
                output[written + 1] = b << 4 | c >> 2
                written += 2
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
