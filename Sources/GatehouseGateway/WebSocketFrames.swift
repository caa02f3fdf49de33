// SPDX-License-Identifier: Apache-2.0
import GatehouseCrypto

/// Reads the frame headers of one direction of a WebSocket tunnel (RFC 6455 §5.2) as its bytes
/// pass, never the payloads: so that the gateway knows where frames end (it may end a tunnel only
/// between frames) and sees a close frame go by. One per direction; no allocation per frame.
package struct WebSocketFrameScanner {
    package enum Failure: Error, Equatable {
        /// A 64-bit payload length with its most significant bit set (RFC 6455 §5.2 forbids it).
        case lengthTooLarge
    }

    /// The header of the frame being read: 2 to 14 bytes.
    private var header: (UInt64, UInt64) = (0, 0)
    private var headerCount = 0
    /// Payload bytes of the current frame still to pass.
    private var payloadRemaining: UInt64 = 0
    /// The opcode of the frame whose payload is passing.
    private var opcode: UInt8 = 0
    /// A whole close frame (opcode 8) went by.
    package private(set) var sawClose = false

    package init() {}

    /// No frame is partly read: a frame of the gateway's own may go in here.
    package var isBetweenFrames: Bool { self.headerCount == 0 && self.payloadRemaining == 0 }

    /// Reads `bytes`, the next of the stream, and returns how many of them it took: all, or with
    /// `stopAtBoundary` only those up to the end of the frame under way (none when between frames).
    package mutating func scan(_ bytes: UnsafeRawBufferPointer, stopAtBoundary: Bool = false) throws(Failure) -> Int {
        if stopAtBoundary, self.isBetweenFrames { return 0 }
        var index = 0
        while index < bytes.count {
            if self.payloadRemaining > 0 {
                let take = min(UInt64(bytes.count - index), self.payloadRemaining)
                index += Int(take)
                self.payloadRemaining -= take
                if self.payloadRemaining == 0 {
                    self.frameEnded()
                    if stopAtBoundary { return index }
                }
                continue
            }
            self.appendHeaderByte(bytes[index])
            index += 1
            guard let length = self.headerLength(), self.headerCount == length else { continue }
            self.opcode = self.byte(0) & 0x0F
            self.payloadRemaining = try self.payloadLength()
            self.headerCount = 0
            if self.payloadRemaining == 0 {
                self.frameEnded()
                if stopAtBoundary { return index }
            }
        }
        return index
    }

    private mutating func frameEnded() {
        if self.opcode == 0x8 { self.sawClose = true }
    }

    private mutating func appendHeaderByte(_ byte: UInt8) {
        if self.headerCount == 0 { self.header = (0, 0) }
        let shift = UInt64(8 * (self.headerCount % 8))
        if self.headerCount < 8 { self.header.0 |= UInt64(byte) << shift } else { self.header.1 |= UInt64(byte) << shift }
        self.headerCount += 1
    }

    private func byte(_ index: Int) -> UInt8 {
        let word = index < 8 ? self.header.0 : self.header.1
        return UInt8(truncatingIfNeeded: word >> UInt64(8 * (index % 8)))
    }

    /// The whole header's length, once its first two bytes are in.
    private func headerLength() -> Int? {
        guard self.headerCount >= 2 else { return nil }
        let second = self.byte(1)
        let extended = switch second & 0x7F {
        case 126: 2
        case 127: 8
        default: 0
        }
        return 2 + extended + (second & 0x80 != 0 ? 4 : 0)
    }

    private func payloadLength() throws(Failure) -> UInt64 {
        switch self.byte(1) & 0x7F {
        case 126:
            return UInt64(self.byte(2)) << 8 | UInt64(self.byte(3))
        case 127:
            var length: UInt64 = 0
            for index in 2..<10 { length = length << 8 | UInt64(self.byte(index)) }
            guard length >> 63 == 0 else { throw .lengthTooLarge }
            return length
        case let short:
            return UInt64(short)
        }
    }
}

/// Close frames the gateway writes itself when it ends a tunnel (RFC 6455 §5.5.1).
enum WebSocketClose {
    /// RFC 6455 §7.4.1.
    static let goingAway: UInt16 = 1001
    static let policyViolation: UInt16 = 1008

    /// A close frame with `code` and `reason` (at most 123 bytes): unmasked to a client, masked
    /// (with a fresh key) to a server.
    static func frame(code: UInt16, reason: String, masked: Bool) -> [UInt8] {
        var payload = [UInt8(code >> 8), UInt8(code & 0xFF)] + reason.utf8.prefix(123)
        var frame: [UInt8] = [0x88, UInt8(payload.count) | (masked ? 0x80 : 0)]
        if masked {
            let key = SecureRandom.bytes(4)
            frame += key
            for index in payload.indices { payload[index] ^= key[index % 4] }
        }
        return frame + payload
    }
}
