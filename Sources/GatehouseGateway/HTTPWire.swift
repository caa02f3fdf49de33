// SPDX-License-Identifier: Apache-2.0
import GatehouseHTTP1
import NIOCore
import NIOHTTP1

/// How a message's body goes on the wire.
enum BodyFraming {
    /// No body bytes at all (HEAD, 1xx/204/304, a request without a length).
    case none
    /// As received: `Content-Length` framed, or delimited by the connection's close.
    case raw
    /// `Transfer-Encoding: chunked`, each part its own chunk.
    case chunked
}

/// Writes HTTP/1.1 heads and chunk framing as bytes.
///
/// The gateway's sockets carry bytes, not `HTTPPart`s: NIO's encoders, header validators and
/// pipelining handler cost more per request than the gateway's own logic (bench/README.md). The
/// header names and values written here come from the gateway's parser (which refused invalid
/// ones), from values the gateway checked (identity claims, request ids) or from its own constants.
enum HTTPWire {
    /// `HTTP/1.1 <status> <reason>`, the headers, and the blank line.
    static func responseHead(_ status: HTTPResponseStatus, headers: HTTPHeaders, allocator: ByteBufferAllocator) -> ByteBuffer {
        var writer = HeadWriter(status: status, allocator: allocator)
        for (name, value) in headers { writer.add(name: name, value: value) }
        return writer.finish()
    }

    /// The size line that opens a chunk of `count` bytes.
    static func chunkStart(_ count: Int, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 18)
        buffer.writeString(String(count, radix: 16))
        buffer.writeStaticString("\r\n")
        return buffer
    }

    /// The line that closes a chunk's data.
    static func chunkEnd(allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 2)
        buffer.writeStaticString("\r\n")
        return buffer
    }

    /// The last chunk, with the trailers if any.
    static func lastChunk(trailers: HTTP1Fields?, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 5)
        buffer.writeStaticString("0\r\n")
        if let trailers { for index in 0..<trailers.count { trailers.writeField(at: index, into: &buffer) } }
        buffer.writeStaticString("\r\n")
        return buffer
    }

    /// Whether a response with `status` to a `method` request carries a body (RFC 9112 §6.3).
    static func responseHasBody(status: Int, requestMethod: HTTPMethod) -> Bool {
        !(requestMethod == .HEAD || status < 200 || status == 204 || status == 304)
    }
}

/// Writes a head as its fields come (`HeaderRewriter` writes forwarded fields straight into it);
/// `finish()` adds the blank line.
struct HeadWriter: HeaderSink {
    private var buffer: ByteBuffer

    /// `<method> <target> HTTP/1.1`.
    init(method: HTTPMethod, target: String, allocator: ByteBufferAllocator) {
        self.buffer = allocator.buffer(capacity: 512 + target.utf8.count)
        self.buffer.writeString(method.rawValue)
        self.buffer.writeStaticString(" ")
        self.buffer.writeString(target)
        self.buffer.writeStaticString(" HTTP/1.1\r\n")
    }

    /// `HTTP/1.1 <status> <reason>`.
    init(status: HTTPResponseStatus, allocator: ByteBufferAllocator) {
        self.buffer = allocator.buffer(capacity: 256)
        self.buffer.writeStaticString("HTTP/1.1 ")
        self.buffer.writeString(String(status.code))
        self.buffer.writeStaticString(" ")
        self.buffer.writeString(status.reasonPhrase)
        self.buffer.writeStaticString("\r\n")
    }

    mutating func add(name: String, value: String) {
        Self.writeField(name: name, value: value, into: &self.buffer)
    }

    mutating func add(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        self.buffer.writeBytes(name)
        self.buffer.writeStaticString(": ")
        self.buffer.writeBytes(value)
        self.buffer.writeStaticString("\r\n")
    }

    static func writeField(name: String, value: String, into buffer: inout ByteBuffer) {
        buffer.writeString(name)
        buffer.writeStaticString(": ")
        buffer.writeString(value)
        buffer.writeStaticString("\r\n")
    }

    /// The head, ended by its blank line.
    consuming func finish() -> ByteBuffer {
        self.buffer.writeStaticString("\r\n")
        return self.buffer
    }
}

/// Writes one message's body with its framing.
struct BodyWriter {
    var framing: BodyFraming

    /// Writes `buffer` as the next part of the body.
    func write(_ buffer: ByteBuffer, to context: ChannelHandlerContext) {
        switch self.framing {
        case .none:
            break
        case .raw:
            context.write(NIOAny(buffer), promise: nil)
        case .chunked:
            guard buffer.readableBytes > 0 else { return }  // an empty chunk would end the body
            context.write(NIOAny(HTTPWire.chunkStart(buffer.readableBytes, allocator: context.channel.allocator)), promise: nil)
            context.write(NIOAny(buffer), promise: nil)
            context.write(NIOAny(HTTPWire.chunkEnd(allocator: context.channel.allocator)), promise: nil)
        }
    }

    /// Ends the body (the last chunk, with trailers, when chunked); returns whether it wrote.
    @discardableResult
    func end(trailers: HTTP1Fields?, to context: ChannelHandlerContext) -> Bool {
        guard self.framing == .chunked else { return false }
        context.write(NIOAny(HTTPWire.lastChunk(trailers: trailers, allocator: context.channel.allocator)), promise: nil)
        return true
    }
}
