// SPDX-License-Identifier: Apache-2.0
import NIOCore

/// Where a message's body stands. Shared by the request and the response parser.
enum BodyPhase: Sendable {
    /// `remaining` bytes of a Content-Length body (0: the body is done, `.end` is next).
    case length(remaining: Int)
    /// Looking for the LF of a chunk-size line; `scanned` bytes hold none.
    case chunkLine(scanned: Int)
    case chunkData(remaining: Int)
    /// The CRLF after chunk data.
    case chunkDataEnd
    /// The trailer section after the last chunk.
    case trailers(HeadScanner)
    case untilClose
}

/// What a body step produced.
enum BodyStep {
    case needMore
    /// The phase moved on without an event (a chunk-size line, a chunk's CRLF).
    case progressed
    case body(ByteBuffer)
    case end(HTTP1Fields?)
}

/// The budgets left for the trailer section after the head.
struct TrailerBudget: Sendable {
    var bytes: Int
    var fields: Int
}

enum BodyReader {
    static func step(
        _ phase: inout BodyPhase, _ buffer: inout ByteBuffer, budget: TrailerBudget, maxLine: Int
    ) throws(HTTP1ParseError) -> BodyStep {
        switch phase {
        case .length(let remaining):
            if remaining == 0 { return .end(nil) }
            guard buffer.readableBytes > 0 else { return .needMore }
            let n = min(remaining, buffer.readableBytes)
            phase = .length(remaining: remaining - n)
            return .body(buffer.readSlice(length: n)!)

        case .untilClose:
            guard buffer.readableBytes > 0 else { return .needMore }
            return .body(buffer.readSlice(length: buffer.readableBytes)!)

        case .chunkData(let remaining):
            guard buffer.readableBytes > 0 else { return .needMore }
            let n = min(remaining, buffer.readableBytes)
            phase = n == remaining ? .chunkDataEnd : .chunkData(remaining: remaining - n)
            return .body(buffer.readSlice(length: n)!)

        case .chunkDataEnd:
            // Exactly CRLF (RFC 9112 §7.1); a wrong first byte is refused without waiting.
            let ok: Bool? = buffer.withUnsafeReadableBytes { raw in
                if raw.count >= 1 && raw[0] != ASCII.cr { return false }
                if raw.count >= 2 { return raw[1] == ASCII.lf }
                return nil
            }
            guard let ok else { return .needMore }
            guard ok else { throw HTTP1ParseError(.chunkDataEnd) }
            buffer.moveReaderIndex(forwardBy: 2)
            phase = .chunkLine(scanned: 0)
            return .progressed

        case .chunkLine(let scanned):
            let found = try buffer.withUnsafeReadableBytes { (raw) throws(HTTP1ParseError) -> (length: Int, size: Int)? in
                try Self.scanChunkLine(raw, from: scanned, maxLine: maxLine)
            }
            guard let found else {
                phase = .chunkLine(scanned: buffer.readableBytes)
                return .needMore
            }
            buffer.moveReaderIndex(forwardBy: found.length)
            if found.size == 0 {
                phase = .trailers(HeadScanner(startLine: false, maxBytes: max(0, budget.bytes) + 2, maxFields: max(0, budget.fields)))
            } else {
                phase = .chunkData(remaining: found.size)
            }
            return .progressed

        case .trailers(var scanner):
            let progress = try buffer.withUnsafeReadableBytes { (raw) throws(HTTP1ParseError) -> HeadScanner.Progress in
                try scanner.scan(raw)
            }
            switch progress {
            case .needMore, .startLine:
                phase = .trailers(scanner)
                return .needMore
            case .complete(let length):
                let section = buffer.readSlice(length: length)!
                guard !scanner.fields.isEmpty else { return .end(nil) }
                let fields = HTTP1Fields(bytes: section, spans: scanner.fields)
                try Self.checkTrailers(fields)
                return .end(fields)
            }
        }
    }

    /// Framing and connection fields cannot follow the content (RFC 9110 §6.5.1); llhttp refuses
    /// Content-Length and Transfer-Encoding there too, and would act on Connection.
    private static func checkTrailers(_ fields: HTTP1Fields) throws(HTTP1ParseError) {
        for index in 0..<fields.count {
            let framing = fields.withName(at: index) { name in
                switch name.count {
                case 14: return ASCII.equalsIgnoringCase(name, "content-length")
                case 17: return ASCII.equalsIgnoringCase(name, "transfer-encoding")
                case 10: return ASCII.equalsIgnoringCase(name, "connection")
                case 16: return ASCII.equalsIgnoringCase(name, "proxy-connection")
                default: return false
                }
            }
            if framing { throw HTTP1ParseError(.framingFieldInTrailers) }
        }
    }

    /// The chunk-size line's length (with its CRLF) and the size, or nil when its LF has not come.
    private static func scanChunkLine(
        _ raw: UnsafeRawBufferPointer, from scanned: Int, maxLine: Int
    ) throws(HTTP1ParseError) -> (length: Int, size: Int)? {
        let limit = min(raw.count, maxLine)
        var i = scanned
        while i < limit, raw[i] != ASCII.lf { i += 1 }
        guard i < limit else {
            if raw.count >= maxLine { throw HTTP1ParseError(.chunkLineTooLong) }
            return nil
        }
        guard i > 0, raw[i - 1] == ASCII.cr else { throw HTTP1ParseError(.chunkLineEnd) }
        let size = try Self.parseChunkLine(UnsafeRawBufferPointer(rebasing: raw[0..<(i - 1)]))
        return (i + 1, size)
    }

    /// `chunk-size *( ";" token [ "=" ( token / quoted-string ) ] )` (RFC 9112 §7.1, §7.1.1), no
    /// BWS (llhttp takes none either). Extensions are validated, then dropped.
    static func parseChunkLine(_ line: UnsafeRawBufferPointer) throws(HTTP1ParseError) -> Int {
        var i = 0
        var size: UInt64 = 0
        while i < line.count, let digit = ASCII.hexValue(line[i]) {
            // 16 hex digits fit in a UInt64, so the shift never loses bits.
            guard i < 16 else { throw HTTP1ParseError(.chunkSizeTooLarge) }
            size = size << 4 | digit
            i += 1
        }
        guard i > 0 else { throw HTTP1ParseError(.chunkSize) }
        guard size <= UInt64(FieldSemantics.maxLength) else { throw HTTP1ParseError(.chunkSizeTooLarge) }
        var inExtensions = false
        while i < line.count {
            guard line[i] == UInt8(ascii: ";") else {
                throw HTTP1ParseError(line[i] == ASCII.cr ? .chunkLineEnd : inExtensions ? .chunkExtension : .chunkSize)
            }
            inExtensions = true
            i += 1
            let nameStart = i
            while i < line.count, ASCII.isTChar(line[i]) { i += 1 }
            guard i > nameStart else { throw HTTP1ParseError(.chunkExtension) }
            guard i < line.count, line[i] == UInt8(ascii: "=") else { continue }
            i += 1
            if i < line.count, line[i] == UInt8(ascii: "\"") {
                i = try Self.skipQuotedString(line, from: i + 1)
            } else {
                let valueStart = i
                while i < line.count, ASCII.isTChar(line[i]) { i += 1 }
                guard i > valueStart else { throw HTTP1ParseError(.chunkExtension) }
            }
        }
        return Int(size)
    }

    /// The index after the closing quote of a quoted-string whose opening quote is before `start`.
    private static func skipQuotedString(_ line: UnsafeRawBufferPointer, from start: Int) throws(HTTP1ParseError) -> Int {
        var i = start
        while i < line.count {
            let b = line[i]
            if b == UInt8(ascii: "\"") { return i + 1 }
            if b == UInt8(ascii: "\\") {
                // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
                guard i + 1 < line.count, ASCII.isFieldByte(line[i + 1]) else { throw HTTP1ParseError(.chunkExtension) }
                i += 2
                continue
            }
            guard ASCII.isQDText(b) else { throw HTTP1ParseError(.chunkExtension) }
            i += 1
        }
        throw HTTP1ParseError(.chunkExtension)
    }
}
