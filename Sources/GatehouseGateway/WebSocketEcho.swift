// SPDX-License-Identifier: Apache-2.0
import NIOCore
import NIOHTTP1
import NIOWebSocket

/// `gatehouse echo`'s WebSocket side (RFC 6455), after NIO's upgrader has answered the handshake
/// with `101`: every text or binary message comes back as one message (a fragmented one is
/// reassembled first), a ping gets its pong, a close frame gets its code back and the connection
/// ends. Protocol errors close with `1002`, text that is not UTF-8 with `1007` (checked fragment by
/// fragment, so a bad fragment fails at once), a frame or message over ``maxMessageBytes`` with
/// `1009`. No extension is negotiated, so any RSV bit is a protocol error.
///
/// Bounded: a message is held until its last fragment, never beyond ``maxMessageBytes``, and
/// nothing more is read while the echoes wait for a peer that does not read them.
final class WebSocketEcho: ChannelDuplexHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    /// The largest frame and the largest message: 16 MiB, Autobahn's largest (cases 9.1.6, 9.2.6).
    static let maxMessageBytes = 16 << 20

    /// A fragmented message being reassembled.
    private struct Message {
        var opcode: WebSocketOpcode
        var payload: ByteBuffer
        var utf8 = UTF8Validator()
    }

    private var message: Message?
    /// A close frame went out: whatever still arrives is dropped.
    private var isClosing = false
    /// A read asked for while the channel was not writable, issued when it becomes writable.
    private var isReadPending = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.isClosing else { return }
        let frame = self.unwrapInboundIn(data)
        guard frame.maskKey != nil, !frame.rsv1, !frame.rsv2, !frame.rsv3 else {
            return self.fail(context: context, .protocolError)
        }
        switch frame.opcode {
        case .text, .binary:
            guard self.message == nil else { return self.fail(context: context, .protocolError) }
            self.message = Message(opcode: frame.opcode, payload: context.channel.allocator.buffer(capacity: 0))
            self.append(context: context, frame)
        case .continuation:
            guard self.message != nil else { return self.fail(context: context, .protocolError) }
            self.append(context: context, frame)
        case .ping:
            context.write(self.wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)), promise: nil)
        case .pong:
            break
        case .connectionClose:
            self.closeReceived(context: context, payload: frame.unmaskedData)
        default:
            self.fail(context: context, .protocolError)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            context.read()
        } else {
            self.isReadPending = true
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, self.isReadPending {
            self.isReadPending = false
            context.read()
        }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch error as? NIOWebSocketError {
        case .invalidFrameLength?: self.fail(context: context, .messageTooLarge)
        case .fragmentedControlFrame?, .multiByteControlFrameLength?: self.fail(context: context, .protocolError)
        default: context.close(promise: nil)
        }
    }

    /// Adds a data frame to the message; echoes the message after its last fragment.
    private func append(context: ChannelHandlerContext, _ frame: WebSocketFrame) {
        guard var message = self.message else { return }
        self.message = nil
        let data = frame.unmaskedData
        guard message.payload.readableBytes + data.readableBytes <= Self.maxMessageBytes else {
            return self.fail(context: context, .messageTooLarge)
        }
        if message.opcode == .text {
            let valid = data.withUnsafeReadableBytes { message.utf8.consume($0) }
            guard valid, !frame.fin || message.utf8.isComplete else { return self.fail(context: context, .dataInconsistentWithMessage) }
        }
        if frame.fin, message.payload.readableBytes == 0 {
            // Unfragmented, the common case: echo the frame's own bytes.
            message.payload = data
        } else {
            message.payload.writeImmutableBuffer(data)
        }
        if frame.fin {
            context.write(self.wrapOutboundOut(WebSocketFrame(fin: true, opcode: message.opcode, data: message.payload)), promise: nil)
        } else {
            self.message = message
        }
    }

    /// Answers a close frame with its own code (an empty one with an empty one), then closes.
    private func closeReceived(context: ChannelHandlerContext, payload: ByteBuffer) {
        var payload = payload
        guard payload.readableBytes != 0 else { return self.close(context: context, payload: payload) }
        guard let code = payload.readInteger(as: UInt16.self), Self.isValidCloseCode(code) else {
            return self.fail(context: context, .protocolError)
        }
        var reason = UTF8Validator()
        guard payload.withUnsafeReadableBytes({ reason.consume($0) }), reason.isComplete else {
            return self.fail(context: context, .dataInconsistentWithMessage)
        }
        var answer = context.channel.allocator.buffer(capacity: 2)
        answer.writeInteger(code)
        self.close(context: context, payload: answer)
    }

    private func fail(context: ChannelHandlerContext, _ code: WebSocketErrorCode) {
        var payload = context.channel.allocator.buffer(capacity: 2)
        payload.write(webSocketErrorCode: code)
        self.close(context: context, payload: payload)
    }

    /// Sends the close frame and closes the connection once it is written (the server closes the
    /// TCP connection first, RFC 6455 section 7.1.1).
    private func close(context: ChannelHandlerContext, payload: ByteBuffer) {
        guard !self.isClosing else { return }
        self.isClosing = true
        self.message = nil
        let channel = context.channel
        context.writeAndFlush(self.wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: payload)))
            .whenComplete { _ in channel.close(promise: nil) }
    }

    /// The codes a peer may send (RFC 6455 section 7.4 and the IANA registry): 1004–1006 and
    /// 1015 are reserved, 1016–2999 unassigned, 3000–4999 for libraries and applications.
    static func isValidCloseCode(_ code: UInt16) -> Bool {
        switch code {
        case 1000...1003, 1007...1014, 3000...4999: true
        default: false
        }
    }

    /// Whether an upgrade to WebSocket is acceptable beyond what NIO's upgrader checks (the key
    /// is there, the version is 13): a `GET` over HTTP/1.1 or later, `Connection: Upgrade`, and a
    /// key that is 16 bytes in base64.
    static func acceptsHandshake(_ head: HTTPRequestHead) -> Bool {
        guard head.method == .GET, head.version.major > 1 || (head.version.major == 1 && head.version.minor >= 1) else { return false }
        guard head.headers[canonicalForm: "connection"].contains(where: { $0.lowercased() == "upgrade" }) else { return false }
        let key = head.headers["Sec-WebSocket-Key"]
        guard key.count == 1, let key = key.first?.utf8, key.count == 24, key.suffix(2).elementsEqual("==".utf8) else { return false }
        return key.dropLast(2).allSatisfy { Self.base64Alphabet.contains($0) }
    }

    private static let base64Alphabet = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
}

@available(*, unavailable)
extension WebSocketEcho: Sendable {}

/// Answers a WebSocket handshake that NIO's upgrader turned down (no key, a version other than
/// 13, not a `GET`, …) with `400`, or `426` and `Sec-WebSocket-Version: 13` for a wrong version,
/// and closes; every other request passes to the next handler.
final class WebSocketHandshakeRefusal: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// The rest of a refused request is dropped.
    private var isRefusing = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = self.unwrapInboundIn(data)
        switch part {
        case .head(let head) where head.headers[canonicalForm: "upgrade"].contains(where: { $0.lowercased() == "websocket" }):
            self.isRefusing = true
            let version = head.headers["Sec-WebSocket-Version"]
            var headers = HTTPHeaders([("Content-Length", "0"), ("Connection", "close")])
            let status: HTTPResponseStatus
            if version.isEmpty || version == ["13"] {
                status = .badRequest
            } else {
                status = .upgradeRequired
                headers.add(name: "Sec-WebSocket-Version", value: "13")
            }
            context.write(self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
            let channel = context.channel
            context.writeAndFlush(self.wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
        case .head, .body, .end:
            if !self.isRefusing { context.fireChannelRead(data) }
        }
    }
}

@available(*, unavailable)
extension WebSocketHandshakeRefusal: Sendable {}

/// RFC 3629 UTF-8, checked incrementally: ``consume(_:)`` fails as soon as the bytes so far cannot
/// begin valid UTF-8 (overlong forms, surrogates and code points past U+10FFFF included), so a
/// message fails on its first bad fragment.
struct UTF8Validator {
    /// Continuation bytes still expected for the current code point.
    private var remaining = 0
    /// The range the next continuation byte must fall in (narrower after E0, ED, F0, F4).
    private var lower: UInt8 = 0x80
    private var upper: UInt8 = 0xBF

    /// No code point is cut off.
    var isComplete: Bool { self.remaining == 0 }

    mutating func consume(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var index = 0
        let count = bytes.count
        while index < count {
            if self.remaining == 0 {
                // ASCII eight bytes at a time: debug builds check a 16 MiB message in Autobahn's time.
                while index + 8 <= count, bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self) & 0x8080_8080_8080_8080 == 0 {
                    index += 8
                }
                guard index < count else { break }
                let byte = bytes[index]
                switch byte {
                case 0x00...0x7F: break
                case 0xC2...0xDF: self.remaining = 1
                case 0xE0: (self.remaining, self.lower) = (2, 0xA0)
                case 0xE1...0xEC, 0xEE...0xEF: self.remaining = 2
                case 0xED: (self.remaining, self.upper) = (2, 0x9F)
                case 0xF0: (self.remaining, self.lower) = (3, 0x90)
                case 0xF1...0xF3: self.remaining = 3
                case 0xF4: (self.remaining, self.upper) = (3, 0x8F)
                default: return false
                }
            } else {
                let byte = bytes[index]
                guard byte >= self.lower, byte <= self.upper else { return false }
                (self.remaining, self.lower, self.upper) = (self.remaining - 1, 0x80, 0xBF)
            }
            index += 1
        }
        return true
    }
}
