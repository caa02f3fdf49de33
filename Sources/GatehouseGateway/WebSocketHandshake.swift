// SPDX-License-Identifier: Apache-2.0
import GatehouseCrypto
import GatehouseHTTP1
import NIOHTTP1

/// A WebSocket opening handshake (RFC 6455 §4.1) as the gateway reads a request: only a request
/// with `Upgrade: websocket` and `Connection: upgrade` is one; it must then be a well-formed
/// version-13 handshake, or it is refused (400) before it reaches an upstream.
public struct WebSocketHandshake: Sendable, Equatable {
    /// `Sec-WebSocket-Key`: base64 of 16 bytes. The upstream's 101 must answer it.
    public let key: String

    enum Reading: Equatable {
        /// Not an upgrade to WebSocket: any `Upgrade` is removed and the request goes as plain HTTP.
        case none
        case handshake(WebSocketHandshake)
        /// An upgrade to WebSocket that breaks RFC 6455 §4.1, with why.
        case invalid(String)
    }

    static func read(method: HTTPMethod, version: HTTPVersion, fields: some HTTPFieldReading) -> Reading {
        var upgradeToWebSocket = false
        var connectionUpgrade = false
        var keys: [String] = []
        var versions = 0
        var version13 = false
        var body = false
        fields.forEachField { name, value in
            switch name.count {
            case 7 where ASCII.equalsIgnoringCase(name, "upgrade"):
                if Self.listContains(value, "websocket") { upgradeToWebSocket = true }
            case 10 where ASCII.equalsIgnoringCase(name, "connection"):
                if Self.listContains(value, "upgrade") { connectionUpgrade = true }
            case 17 where ASCII.equalsIgnoringCase(name, "sec-websocket-key"):
                keys.append(String(decoding: ASCII.trimmingWhitespace(value), as: UTF8.self))
            case 21 where ASCII.equalsIgnoringCase(name, "sec-websocket-version"):
                versions += 1
                version13 = ASCII.trimmingWhitespace(value).elementsEqual("13".utf8)
            case 14 where ASCII.equalsIgnoringCase(name, "content-length"):
                if !value.allSatisfy({ $0 == UInt8(ascii: "0") }) { body = true }
            case 17 where ASCII.equalsIgnoringCase(name, "transfer-encoding"):
                body = true
            default:
                break
            }
            return true
        }
        guard upgradeToWebSocket, connectionUpgrade else { return .none }
        guard method == .GET else { return .invalid("a WebSocket handshake must be a GET") }
        guard version == .http1_1 else { return .invalid("a WebSocket handshake must be HTTP/1.1") }
        guard !body else { return .invalid("a WebSocket handshake has no body") }
        guard versions == 1, version13 else { return .invalid("Sec-WebSocket-Version must be 13") }
        guard keys.count == 1, Self.isKey(keys[0]) else { return .invalid("Sec-WebSocket-Key must be one base64 value of 16 bytes") }
        return .handshake(WebSocketHandshake(key: keys[0]))
    }

    /// What the upstream's `Sec-WebSocket-Accept` must be.
    var expectedAccept: String? { WebSocketAccept.value(forKey: self.key) }

    /// Whether a 101's fields complete this handshake (RFC 6455 §4.1, the client's checks):
    /// `Upgrade: websocket`, `Connection: upgrade` and the accept value for our key. Anything else
    /// must not open a raw tunnel.
    func isAccepted(by fields: some HTTPFieldReading) -> Bool {
        var upgrade = false
        var connection = false
        var accepts: [String] = []
        fields.forEachField { name, value in
            switch name.count {
            case 7 where ASCII.equalsIgnoringCase(name, "upgrade"):
                upgrade = ASCII.equalsIgnoringCase(ASCII.trimmingWhitespace(value), "websocket")
            case 10 where ASCII.equalsIgnoringCase(name, "connection"):
                if Self.listContains(value, "upgrade") { connection = true }
            case 20 where ASCII.equalsIgnoringCase(name, "sec-websocket-accept"):
                accepts.append(String(decoding: ASCII.trimmingWhitespace(value), as: UTF8.self))
            default:
                break
            }
            return true
        }
        guard let expected = self.expectedAccept else { return false }
        return upgrade && connection && accepts == [expected]
    }

    /// Whether the comma-separated `list` holds `token` (ASCII case-insensitive).
    private static func listContains(_ list: UnsafeRawBufferPointer, _ token: StaticString) -> Bool {
        list.split(separator: UInt8(ascii: ",")).contains { ASCII.equalsIgnoringCase(ASCII.trimmingWhitespace(UnsafeRawBufferPointer(rebasing: $0)), token) }
    }

    /// 22 base64 characters and `==`: 16 bytes.
    private static func isKey(_ key: String) -> Bool {
        let bytes = Array(key.utf8)
        guard bytes.count == 24, bytes[22] == UInt8(ascii: "="), bytes[23] == UInt8(ascii: "=") else { return false }
        return bytes[..<22].allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "+"), UInt8(ascii: "/"):
                true
            default: false
            }
        }
    }
}
