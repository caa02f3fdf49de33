// SPDX-License-Identifier: Apache-2.0
import NIOCore

/// Where one field line sits in its head's bytes: name, and value without leading/trailing OWS.
struct FieldSpan: Sendable, Equatable {
    var nameStart: Int32
    var nameEnd: Int32
    var valueStart: Int32
    var valueEnd: Int32
}

/// The fields of a head (or of trailers), as offsets into the head's own bytes: no String per field.
public struct HTTP1Fields: Sendable {
    /// A slice holding the head (shares storage with the read buffer; no copy when the head came in
    /// one read). Offsets are relative to its reader index.
    public let bytes: ByteBuffer
    let spans: [FieldSpan]

    init(bytes: ByteBuffer, spans: [FieldSpan]) {
        self.bytes = bytes
        self.spans = spans
    }

    public var count: Int { self.spans.count }

    public func withName<R>(at index: Int, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        let span = self.spans[index]
        return self.bytes.withUnsafeReadableBytes { raw in
            body(UnsafeRawBufferPointer(rebasing: raw[Int(span.nameStart)..<Int(span.nameEnd)]))
        }
    }

    /// The value with leading and trailing OWS removed.
    public func withValue<R>(at index: Int, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        let span = self.spans[index]
        return self.bytes.withUnsafeReadableBytes { raw in
            body(UnsafeRawBufferPointer(rebasing: raw[Int(span.valueStart)..<Int(span.valueEnd)]))
        }
    }

    public func name(at index: Int) -> String {
        self.withName(at: index) { String(decoding: $0, as: UTF8.self) }
    }

    public func value(at index: Int) -> String {
        self.withValue(at: index) { String(decoding: $0, as: UTF8.self) }
    }

    /// Whether field `index` is named `lowercaseName` (ASCII case-insensitive).
    public func isNamed(_ lowercaseName: StaticString, at index: Int) -> Bool {
        self.withName(at: index) { ASCII.equalsIgnoringCase($0, lowercaseName) }
    }

    /// Writes field `index` as `name: value\r\n` (name as sent, trimmed value) into `buffer`.
    public func writeField(at index: Int, into buffer: inout ByteBuffer) {
        let span = self.spans[index]
        let nameLength = Int(span.nameEnd - span.nameStart)
        let valueLength = Int(span.valueEnd - span.valueStart)
        buffer.reserveCapacity(minimumWritableBytes: nameLength + valueLength + 4)
        self.bytes.withUnsafeReadableBytes { raw in
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: raw[Int(span.nameStart)..<Int(span.nameEnd)]))
            buffer.writeStaticString(": ")
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: raw[Int(span.valueStart)..<Int(span.valueEnd)]))
            buffer.writeStaticString("\r\n")
        }
    }
}
