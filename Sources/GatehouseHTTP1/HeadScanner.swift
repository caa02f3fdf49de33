// SPDX-License-Identifier: Apache-2.0

/// Finds the lines of a head (or a trailer section) incrementally and validates each field line
/// as it completes. Offsets are relative to the head's first byte, which the owner keeps at the
/// buffer's reader index until the head is complete. It remembers how far it looked, so a head
/// arriving byte by byte is scanned once (no O(n²)).
struct HeadScanner: Sendable {
    enum Progress {
        case needMore
        /// The start line's content (without CRLF) is complete: the owner validates it, then scans on.
        case startLine(Range<Int>)
        /// The head ends with the empty line whose LF is at `length - 1`.
        case complete(length: Int)
    }

    private(set) var fields: [FieldSpan] = []
    private var lineStart = 0
    private var scanned = 0
    private var expectsStartLine: Bool
    private let maxBytes: Int
    private let maxFields: Int

    /// - Parameters: `maxBytes` and `maxFields` are what is left of the limits for this section.
    init(startLine: Bool, maxBytes: Int, maxFields: Int) {
        self.expectsStartLine = startLine
        self.maxBytes = maxBytes
        self.maxFields = maxFields
    }

    var bytesSeen: Int { self.scanned }

    mutating func scan(_ bytes: UnsafeRawBufferPointer) throws(HTTP1ParseError) -> Progress {
        // Nothing past the limit is looked at: a head that has not ended within it is refused as
        // soon as one byte more than the limit has arrived.
        let limit = min(bytes.count, self.maxBytes)
        var i = self.scanned
        while i < limit {
            if bytes[i] == ASCII.lf {
                guard i > self.lineStart, bytes[i - 1] == ASCII.cr else { throw HTTP1ParseError(.bareLF) }
                let line = self.lineStart..<(i - 1)
                self.lineStart = i + 1
                self.scanned = i + 1
                if self.expectsStartLine {
                    self.expectsStartLine = false
                    return .startLine(line)
                }
                if line.isEmpty { return .complete(length: i + 1) }
                try self.addField(bytes, line)
            }
            i += 1
        }
        self.scanned = i
        if bytes.count >= self.maxBytes { throw .headTooLarge }
        return .needMore
    }

    /// `name ":" OWS value OWS` (RFC 9112 §5.1), value bytes per RFC 9110 §5.5.
    private mutating func addField(_ bytes: UnsafeRawBufferPointer, _ line: Range<Int>) throws(HTTP1ParseError) {
        if ASCII.isOWS(bytes[line.lowerBound]) { throw HTTP1ParseError(.obsFold) }
        var i = line.lowerBound
        while i < line.upperBound, ASCII.isTChar(bytes[i]) { i += 1 }
        guard i < line.upperBound else {
            throw HTTP1ParseError(Self.hasCR(bytes, line) ? .bareCR : .missingColon)
        }
        switch bytes[i] {
        case ASCII.colon: break
        case ASCII.sp, ASCII.htab: throw HTTP1ParseError(.whitespaceBeforeColon)
        case ASCII.cr: throw HTTP1ParseError(.bareCR)
        default: throw HTTP1ParseError(.fieldNameByte)
        }
        guard i > line.lowerBound else { throw HTTP1ParseError(.emptyFieldName) }
        let nameEnd = i
        i += 1
        while i < line.upperBound, ASCII.isOWS(bytes[i]) { i += 1 }
        let valueStart = i
        var valueEnd = i
        while i < line.upperBound {
            let b = bytes[i]
            guard ASCII.isFieldByte(b) else { throw HTTP1ParseError(b == ASCII.cr ? .bareCR : .fieldValueByte) }
            if !ASCII.isOWS(b) { valueEnd = i + 1 }
            i += 1
        }
        guard self.fields.count < self.maxFields else { throw .tooManyFields }
        self.fields.append(
            FieldSpan(nameStart: Int32(line.lowerBound), nameEnd: Int32(nameEnd), valueStart: Int32(valueStart), valueEnd: Int32(valueEnd))
        )
    }

    private static func hasCR(_ bytes: UnsafeRawBufferPointer, _ line: Range<Int>) -> Bool {
        for i in line where bytes[i] == ASCII.cr { return true }
        return false
    }
}
