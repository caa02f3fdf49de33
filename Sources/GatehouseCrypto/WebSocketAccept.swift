// SPDX-License-Identifier: Apache-2.0
internal import CGatehouseOpenSSL

/// SHA-1 for the one place a protocol requires it: a WebSocket server's `Sec-WebSocket-Accept`
/// (RFC 6455 §4.2.2), which proves the server read the handshake, not that anything is secret.
public enum WebSocketAccept {
    /// RFC 6455 §1.3.
    static let guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    /// `Sec-WebSocket-Accept` for a handshake's `Sec-WebSocket-Key`: base64 (with padding) of
    /// `digest`; nil when this libcrypto has no SHA-1 (then no 101 can be checked: 502, no crash).
    public static func value(forKey key: String) -> String? {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        guard let bytes = Self.digest(forKey: key) else { return nil }
        var text: [UInt8] = []
        text.reserveCapacity(28)
        var index = 0
        while index < bytes.count {
            let count = min(3, bytes.count - index)
            var group = UInt32(bytes[index]) << 16
            if count > 1 { group |= UInt32(bytes[index + 1]) << 8 }
            if count > 2 { group |= UInt32(bytes[index + 2]) }
            for position in 0..<4 {
                text.append(position <= count ? alphabet[Int(group >> UInt32(18 - 6 * position) & 0x3F)] : UInt8(ascii: "="))
            }
            index += 3
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// The SHA-1 of `key` followed by the protocol's GUID: what the accept value encodes (base64).
    public static func digest(forKey key: String) -> [UInt8]? {
        let input = Array((key + Self.guid).utf8)
        var output = [UInt8](repeating: 0, count: 20)
        var length: UInt32 = 0
        let status = input.withUnsafeBytes { input in
            output.withUnsafeMutableBufferPointer { out in
                // An explicit fetch per handshake: one a connection, never per frame.
                guard let md = EVP_MD_fetch(nil, "SHA1", nil) else { return Int32(0) }
                defer { EVP_MD_free(md) }
                return EVP_Digest(input.baseAddress, input.count, out.baseAddress, &length, md, nil)
            }
        }
        return status == 1 && length == 20 ? output : nil
    }
}
