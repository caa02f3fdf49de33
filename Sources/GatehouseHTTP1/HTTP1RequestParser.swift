// SPDX-License-Identifier: Apache-2.0
import NIOCore
import NIOHTTP1

public struct HTTP1RequestHead: Sendable {
    /// NIOHTTP1's enum; known methods map to their cases without allocating (QUERY is `.RAW`).
    public var method: HTTPMethod
    /// The request-target as sent.
    public var target: String
    /// Only 1.0 and 1.1 are accepted.
    public var version: HTTPVersion
    public var fields: HTTP1Fields
    /// RFC 9112 §6.3 for requests: chunked, length(n) (0 allowed), or none.
    public var framing: HTTP1BodyFraming
    /// RFC 9112 §9.3: 1.1 unless "Connection: close"; 1.0 only with "Connection: keep-alive".
    public var keepAlive: Bool
    /// `Expect: 100-continue` (case-insensitive).
    public var expectsContinue: Bool
    /// The Upgrade field's value when Connection lists "upgrade", else nil.
    public var upgrade: String?
}

public enum HTTP1RequestEvent {
    case head(HTTP1RequestHead)
    /// A slice of the caller's buffer (no copy).
    case body(ByteBuffer)
    case end(trailers: HTTP1Fields?)
}

/// Empty lines (CRLF) ignored before a start line (RFC 9112 §2.2 asks for at least one).
let maxEmptyLinesBeforeMessage = 8

/// A strict HTTP/1.1 request parser: a value type, one per connection. The caller owns the
/// cumulation buffer (like NIO's ByteToMessageDecoder): it appends each read to one ByteBuffer and
/// calls `next(from:)` until nil. Between calls the caller may append to the buffer and discard
/// bytes before its reader index, but must not move the reader index itself.
///
/// A request asking to upgrade (`upgrade` non-nil) or a CONNECT is parsed like any other; if the
/// upstream switches protocols, the caller stops calling `next(from:)` after that request's `.end`
/// and takes the buffer's remaining bytes raw.
public struct HTTP1RequestParser: Sendable {
    private enum State: Sendable {
        /// Before a request line; counts the empty lines skipped.
        case idle(emptyLines: Int)
        case head(HeadScanner, RequestLine?)
        case body(BodyPhase, keepAlive: Bool, budget: TrailerBudget)
        /// After a message that closes the connection: only CR and LF may follow (as in llhttp).
        case closed
        case failed(HTTP1ParseError)
        /// Held only while a state's payload is being mutated (avoids copying its arrays).
        case transient
    }

    private let limits: HTTP1Limits
    private var state = State.idle(emptyLines: 0)

    public init(limits: HTTP1Limits = .init()) {
        self.limits = limits
    }

    /// The next event parsed from `buffer`, consuming exactly the bytes it covers (and empty lines
    /// before a request line as they are recognised); nil when more bytes are needed. After an
    /// error the parser stays failed: every later call throws the same error.
    public mutating func next(from buffer: inout ByteBuffer) throws(HTTP1ParseError) -> HTTP1RequestEvent? {
        if case .failed(let error) = self.state { throw error }
        do {
            while true {
                if let outcome = try self.step(&buffer) { return outcome.event }
            }
        } catch {
            self.state = .failed(error)
            throw error
        }
    }

    /// An event or "need more" (`.some(nil)`); nil means "go on".
    private struct Outcome { var event: HTTP1RequestEvent? }

    private mutating func step(_ buffer: inout ByteBuffer) throws(HTTP1ParseError) -> Outcome? {
        switch self.state {
        case .idle(let emptyLines):
            switch try LineEnds.skipEmptyLine(&buffer, skipped: emptyLines) {
            case .needMore: return Outcome(event: nil)
            case .skipped: self.state = .idle(emptyLines: emptyLines + 1)
            case .startLine:
                self.state = .head(
                    HeadScanner(startLine: true, maxBytes: self.limits.maxHeadBytes, maxFields: self.limits.maxFieldCount), nil
                )
            }
            return nil

        case .head(var scanner, let requestLine):
            self.state = .transient
            let progress = try buffer.withUnsafeReadableBytes { (raw) throws(HTTP1ParseError) -> (HeadScanner.Progress, RequestLine?) in
                let progress = try scanner.scan(raw)
                if case .startLine(let line) = progress { return (progress, try StartLine.parseRequest(raw, line)) }
                return (progress, requestLine)
            }
            switch progress.0 {
            case .needMore:
                self.state = .head(scanner, progress.1)
                return Outcome(event: nil)
            case .startLine:
                self.state = .head(scanner, progress.1)
                return nil
            case .complete(let length):
                let head = try self.finishHead(&buffer, length: length, line: progress.1!, fields: scanner.fields)
                return Outcome(event: .head(head))
            }

        case .body(var phase, let keepAlive, let budget):
            self.state = .transient
            let step = try BodyReader.step(&phase, &buffer, budget: budget, maxLine: self.limits.maxHeadBytes)
            switch step {
            case .needMore:
                self.state = .body(phase, keepAlive: keepAlive, budget: budget)
                return Outcome(event: nil)
            case .progressed:
                self.state = .body(phase, keepAlive: keepAlive, budget: budget)
                return nil
            case .body(let slice):
                self.state = .body(phase, keepAlive: keepAlive, budget: budget)
                return Outcome(event: .body(slice))
            case .end(let trailers):
                self.state = keepAlive ? .idle(emptyLines: 0) : .closed
                return Outcome(event: .end(trailers: trailers))
            }

        case .closed:
            try LineEnds.skipAfterClose(&buffer)
            return Outcome(event: nil)

        case .failed(let error):
            throw error

        case .transient:
            preconditionFailure("HTTP1RequestParser re-entered")
        }
    }

    private mutating func finishHead(
        _ buffer: inout ByteBuffer, length: Int, line: RequestLine, fields: [FieldSpan]
    ) throws(HTTP1ParseError) -> HTTP1RequestHead {
        let bytes = buffer.readSlice(length: length)!
        let (semantics, target) = try bytes.withUnsafeReadableBytes { (raw) throws(HTTP1ParseError) -> (FieldSemantics, String) in
            (try FieldSemantics(fields, raw), String(decoding: UnsafeRawBufferPointer(rebasing: raw[line.target]), as: UTF8.self))
        }
        let framing: HTTP1BodyFraming
        if line.method == .CONNECT {
            // RFC 9110 §9.3.6: a CONNECT request has no content; llhttp ignores the framing fields.
            guard semantics.transferEncodingCount == 0, (semantics.contentLength ?? 0) == 0 else {
                throw HTTP1ParseError(.connectWithContent)
            }
            framing = .none
        } else if semantics.transferEncodingCount > 0 {
            // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing.
            guard line.version == .http1_1 else { throw HTTP1ParseError(.transferEncodingInHTTP10) }
            // RFC 9112 §6.1: the gateway forwards chunked and nothing else; "gzip, chunked" and the
            // like (which llhttp takes) are refused.
            guard semantics.transferEncoding == .exactlyChunked else { throw HTTP1ParseError(.requestTransferCoding) }
            framing = .chunked
        } else if let length = semantics.contentLength {
            framing = .length(length)
        } else {
            framing = .none
        }
        let fieldsValue = HTTP1Fields(bytes: bytes, spans: fields)
        let keepAlive = semantics.keepAlive(http11: line.version == .http1_1)
        var upgrade: String? = nil
        if semantics.connectionUpgrade, let index = semantics.upgradeFieldIndex {
            upgrade = fieldsValue.value(at: index)
        }
        let phase: BodyPhase
        switch framing {
        case .none, .untilClose: phase = .length(remaining: 0)
        case .length(let n): phase = .length(remaining: n)
        case .chunked: phase = .chunkLine(scanned: 0)
        }
        let budget = TrailerBudget(bytes: self.limits.maxHeadBytes - length, fields: self.limits.maxFieldCount - fields.count)
        self.state = .body(phase, keepAlive: keepAlive, budget: budget)
        return HTTP1RequestHead(
            method: line.method, target: target, version: line.version, fields: fieldsValue, framing: framing,
            keepAlive: keepAlive, expectsContinue: semantics.expectsContinue, upgrade: upgrade
        )
    }
}

/// Line ends between messages.
enum LineEnds {
    enum Skip { case needMore, skipped, startLine }

    /// Skips one empty line (CRLF) before a start line. Bare CR or LF there is refused (llhttp
    /// skips any mix of them; RFC 9112 §2.2 only asks to ignore CRLF).
    static func skipEmptyLine(_ buffer: inout ByteBuffer, skipped: Int) throws(HTTP1ParseError) -> Skip {
        guard let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return .needMore }
        if first == ASCII.lf { throw HTTP1ParseError(.bareLineEndBeforeMessage) }
        guard first == ASCII.cr else { return .startLine }
        guard let second = buffer.getInteger(at: buffer.readerIndex + 1, as: UInt8.self) else { return .needMore }
        guard second == ASCII.lf else { throw HTTP1ParseError(.bareLineEndBeforeMessage) }
        guard skipped < maxEmptyLinesBeforeMessage else { throw HTTP1ParseError(.tooManyEmptyLines) }
        buffer.moveReaderIndex(forwardBy: 2)
        return .skipped
    }

    /// After a message that ends the connection, llhttp skips CR and LF and refuses anything else.
    static func skipAfterClose(_ buffer: inout ByteBuffer) throws(HTTP1ParseError) {
        let lineEnds = buffer.withUnsafeReadableBytes { raw in
            var i = 0
            while i < raw.count, raw[i] == ASCII.cr || raw[i] == ASCII.lf { i += 1 }
            return (count: i, all: i == raw.count)
        }
        buffer.moveReaderIndex(forwardBy: lineEnds.count)
        guard lineEnds.all else { throw HTTP1ParseError(.dataAfterClose) }
    }
}
