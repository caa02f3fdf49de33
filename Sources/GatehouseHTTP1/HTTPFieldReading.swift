// SPDX-License-Identifier: Apache-2.0
import NIOCore
public import NIOHTTP1

/// Read access to a message's header fields wherever they are held: the gateway's parsed heads
/// (`HTTP1Fields`, bytes) or NIO's `HTTPHeaders` (the issuer, tests). Names are looked up by a
/// lower-case `StaticString`, ASCII case-insensitively, so that a lookup allocates nothing.
public protocol HTTPFieldReading {
    /// Calls `body` with each field's name and value bytes (the value without surrounding
    /// whitespace), in order, until it returns false. The bytes are valid during the call only.
    func forEachField(_ body: (_ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) -> Bool)
}

extension HTTPFieldReading {
    /// The value of the first field called `name`.
    public func firstValue(named name: StaticString) -> String? {
        var found: String?
        self.forEachField { fieldName, value in
            guard ASCII.equalsIgnoringCase(fieldName, name) else { return true }
            found = String(decoding: value, as: UTF8.self)
            return false
        }
        return found
    }

    /// The values of every field called `name`, in order.
    public func values(named name: StaticString) -> [String] {
        var found: [String] = []
        self.forEachField { fieldName, value in
            if ASCII.equalsIgnoringCase(fieldName, name) { found.append(String(decoding: value, as: UTF8.self)) }
            return true
        }
        return found
    }

    /// How many fields are called `name`.
    public func count(named name: StaticString) -> Int {
        var count = 0
        self.forEachField { fieldName, _ in
            if ASCII.equalsIgnoringCase(fieldName, name) { count += 1 }
            return true
        }
        return count
    }

    public func contains(named name: StaticString) -> Bool {
        var found = false
        self.forEachField { fieldName, _ in
            found = ASCII.equalsIgnoringCase(fieldName, name)
            return !found
        }
        return found
    }
}

extension HTTPHeaders: HTTPFieldReading {
    public func forEachField(_ body: (_ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) -> Bool) {
        for (name, value) in self {
            var name = name
            var value = value
            let goOn = name.withUTF8 { name in value.withUTF8 { value in body(UnsafeRawBufferPointer(name), UnsafeRawBufferPointer(value)) } }
            if !goOn { return }
        }
    }
}

extension HTTP1Fields: HTTPFieldReading {
    public func forEachField(_ body: (_ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) -> Bool) {
        self.bytes.withUnsafeReadableBytes { raw in
            for span in self.spans {
                let name = UnsafeRawBufferPointer(rebasing: raw[Int(span.nameStart)..<Int(span.nameEnd)])
                let value = UnsafeRawBufferPointer(rebasing: raw[Int(span.valueStart)..<Int(span.valueEnd)])
                if !body(name, value) { return }
            }
        }
    }
}

extension ASCII {
    /// Whether `bytes` contain `lowercase` anywhere, ignoring case (the same alphabet as above).
    public static func containsIgnoringCase(_ bytes: UnsafeRawBufferPointer, _ lowercase: StaticString) -> Bool {
        let length = lowercase.utf8CodeUnitCount
        guard length <= bytes.count else { return false }
        for start in 0...(bytes.count - length) where Self.equalsIgnoringCase(UnsafeRawBufferPointer(rebasing: bytes[start..<(start + length)]), lowercase) {
            return true
        }
        return false
    }

    /// The bytes without leading and trailing spaces and tabs (HTTP's optional whitespace).
    public static func trimmingWhitespace(_ bytes: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        var start = 0
        var end = bytes.count
        while start < end, bytes[start] == UInt8(ascii: " ") || bytes[start] == UInt8(ascii: "\t") { start += 1 }
        while end > start, bytes[end - 1] == UInt8(ascii: " ") || bytes[end - 1] == UInt8(ascii: "\t") { end -= 1 }
        return UnsafeRawBufferPointer(rebasing: bytes[start..<end])
    }
}

extension ASCII {
    /// `name` equals the lower-case `lowercase` in any casing.
    public static func equalsIgnoringCase(_ name: String, _ lowercase: StaticString) -> Bool {
        name.withUTF8Bytes { Self.equalsIgnoringCase(UnsafeRawBufferPointer($0), lowercase) }
    }
}

extension String {
    /// The UTF-8 bytes in one piece: no copy for a native string.
    @inline(__always)
    public func withUTF8Bytes<Result>(_ body: (UnsafeBufferPointer<UInt8>) -> Result) -> Result {
        if let result = self.utf8.withContiguousStorageIfAvailable(body) { return result }
        var copy = self
        return copy.withUTF8(body)
    }
}

extension Substring {
    /// Without leading and trailing spaces and tabs (HTTP's optional whitespace).
    public var trimmingSpaces: Substring {
        var slice = self
        while let first = slice.first, first == " " || first == "\t" { slice = slice.dropFirst() }
        while let last = slice.last, last == " " || last == "\t" { slice = slice.dropLast() }
        return slice
    }
}

extension Optional where Wrapped == ByteBuffer {
    /// Adds a read to the bytes waiting to be parsed. What the parser consumed goes first: a peer
    /// that ends every write inside a line would otherwise keep all it ever sent in the buffer.
    public mutating func cumulate(_ bytes: inout ByteBuffer) {
        guard var input = self, input.readableBytes > 0 else {
            self = bytes
            return
        }
        self = nil  // uniquely referenced while it grows: no copy on write
        input.discardReadBytes()
        input.writeBuffer(&bytes)
        self = input
    }
}
