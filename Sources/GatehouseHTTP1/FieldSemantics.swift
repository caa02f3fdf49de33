// SPDX-License-Identifier: Apache-2.0

/// What the framing and connection fields of a head say. One pass over the fields: each name is
/// classified by its length, then by one ASCII case-folded compare.
struct FieldSemantics {
    var contentLength: Int? = nil
    var contentLengthCount = 0
    /// Transfer-Encoding field count, and what their combined list says.
    var transferEncodingCount = 0
    var transferEncoding = TransferEncoding.absent
    var close = false
    var keepAliveToken = false
    var connectionUpgrade = false
    var upgradeFieldIndex: Int? = nil
    var expectsContinue = false

    enum TransferEncoding: Equatable {
        case absent
        /// Exactly `chunked` (one field, one coding): the only request coding we take.
        case exactlyChunked
        /// A list whose final coding is chunked.
        case chunkedFinal
        /// A list whose final coding is not chunked.
        case other
        /// A list we refuse (empty element, HTAB, bytes llhttp would read differently).
        case malformed
    }

    /// Largest Content-Length or chunk-size taken: integers above it lose precision as doubles
    /// elsewhere, and no real body is that long (RFC 9110 §8.6 asks for overflow-safe parsing).
    static let maxLength = 1 << 53

    init(_ fields: [FieldSpan], _ bytes: UnsafeRawBufferPointer) throws(HTTP1ParseError) {
        for (index, span) in fields.enumerated() {
            let name = UnsafeRawBufferPointer(rebasing: bytes[Int(span.nameStart)..<Int(span.nameEnd)])
            let value = UnsafeRawBufferPointer(rebasing: bytes[Int(span.valueStart)..<Int(span.valueEnd)])
            switch name.count {
            case 14 where ASCII.equalsIgnoringCase(name, "content-length"):
                self.contentLengthCount += 1
                // A second field, even an identical one, is refused (llhttp does the same).
                guard self.contentLengthCount == 1 else { throw HTTP1ParseError(.duplicateContentLength) }
                self.contentLength = try Self.parseContentLength(value)
                // llhttp refuses an HTAB after the digits (a space it takes): so do we, never laxer.
                if Int(span.valueEnd) < bytes.count, bytes[Int(span.valueEnd)] == ASCII.htab {
                    throw HTTP1ParseError(.invalidContentLength)
                }
            case 17 where ASCII.equalsIgnoringCase(name, "transfer-encoding"):
                self.transferEncodingCount += 1
                self.transferEncoding = Self.parseTransferEncoding(value, trailer: bytes, after: Int(span.valueEnd), previous: self.transferEncoding, first: self.transferEncodingCount == 1)
            case 10 where ASCII.equalsIgnoringCase(name, "connection"):
                self.readConnection(value, upgradeCounts: true)
            case 16 where ASCII.equalsIgnoringCase(name, "proxy-connection"):
                // Not in any RFC, but llhttp reads it like Connection; for close and keep-alive we
                // follow (closing is never less safe), upgrade we leave to Connection.
                self.readConnection(value, upgradeCounts: false)
            case 7 where ASCII.equalsIgnoringCase(name, "upgrade"):
                if self.upgradeFieldIndex == nil && !value.isEmpty { self.upgradeFieldIndex = index }
            case 6 where ASCII.equalsIgnoringCase(name, "expect"):
                if ASCII.equalsIgnoringCase(value, "100-continue") { self.expectsContinue = true }
            default:
                break
            }
        }
        if self.contentLengthCount > 0 && self.transferEncodingCount > 0 {
            // RFC 9112 §6.1: "ought to be handled as an error"; llhttp 9 refuses it too.
            throw HTTP1ParseError(.contentLengthWithTransferEncoding)
        }
    }

    /// 1*DIGIT, nothing else: no sign, no list (not even "5, 5"), no inner space.
    private static func parseContentLength(_ value: UnsafeRawBufferPointer) throws(HTTP1ParseError) -> Int {
        guard !value.isEmpty else { throw HTTP1ParseError(.invalidContentLength) }
        var n = 0
        for b in value {
            guard ASCII.isDigit(b) else { throw HTTP1ParseError(.invalidContentLength) }
            n = n * 10 + Int(b - 0x30)
            // Checked per digit, so `n * 10` never overflows.
            guard n <= Self.maxLength else { throw HTTP1ParseError(.contentLengthTooLarge) }
        }
        return n
    }

    /// Reads one Transfer-Encoding field into the combined list. `after` is where the trimmed value
    /// ends in the head: llhttp does not count HTAB after `chunked` as whitespace, so an HTAB there
    /// makes the list malformed rather than read two ways.
    private static func parseTransferEncoding(
        _ value: UnsafeRawBufferPointer, trailer bytes: UnsafeRawBufferPointer, after valueEnd: Int, previous: TransferEncoding, first: Bool
    ) -> TransferEncoding {
        var i = valueEnd
        while i < bytes.count, bytes[i] != ASCII.cr {
            if bytes[i] == ASCII.htab { return .malformed }
            i += 1
        }
        if previous == .malformed { return .malformed }
        if value.isEmpty { return .malformed }
        var last: TransferEncoding = .malformed
        var elementCount = 0
        var start = 0
        while start <= value.count {
            var end = start
            while end < value.count, value[end] != UInt8(ascii: ",") { end += 1 }
            let element = UnsafeRawBufferPointer(rebasing: value[start..<end])
            // Empty elements and HTAB: RFC 9110 §5.6.1 would skip them, llhttp reads them otherwise.
            let trimmed = Self.trimSP(element)
            guard !trimmed.isEmpty, !element.contains(ASCII.htab) else { return .malformed }
            for b in trimmed where !ASCII.isTChar(b) { return .malformed }
            last = ASCII.equalsIgnoringCase(trimmed, "chunked") ? .chunkedFinal : .other
            elementCount += 1
            start = end + 1
        }
        if first && elementCount == 1 && last == .chunkedFinal { return .exactlyChunked }
        return last
    }

    private static func trimSP(_ element: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        var lo = 0
        var hi = element.count
        while lo < hi, element[lo] == ASCII.sp { lo += 1 }
        while hi > lo, element[hi - 1] == ASCII.sp { hi -= 1 }
        return UnsafeRawBufferPointer(rebasing: element[lo..<hi])
    }

    /// Connection is a comma list of case-insensitive tokens (RFC 9110 §7.6.1).
    private mutating func readConnection(_ value: UnsafeRawBufferPointer, upgradeCounts: Bool) {
        var start = 0
        while start <= value.count {
            var end = start
            while end < value.count, value[end] != UInt8(ascii: ",") { end += 1 }
            var lo = start
            var hi = end
            while lo < hi, ASCII.isOWS(value[lo]) { lo += 1 }
            while hi > lo, ASCII.isOWS(value[hi - 1]) { hi -= 1 }
            let token = UnsafeRawBufferPointer(rebasing: value[lo..<hi])
            switch token.count {
            case 5 where ASCII.equalsIgnoringCase(token, "close"): self.close = true
            case 10 where ASCII.equalsIgnoringCase(token, "keep-alive"): self.keepAliveToken = true
            case 7 where upgradeCounts && ASCII.equalsIgnoringCase(token, "upgrade"): self.connectionUpgrade = true
            default: break
            }
            start = end + 1
        }
    }

    /// RFC 9112 §9.3: HTTP/1.1 persists unless "close"; HTTP/1.0 only with "keep-alive". When both
    /// are listed, close wins (llhttp keeps a 1.0 connection alive then).
    func keepAlive(http11: Bool) -> Bool {
        if self.close { return false }
        return http11 || self.keepAliveToken
    }
}
