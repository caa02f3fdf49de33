// SPDX-License-Identifier: Apache-2.0
import NIOCore
import NIOHTTP1

public struct HTTP1ResponseHead: Sendable {
    public var version: HTTPVersion
    /// 100...999, three digits.
    public var status: Int
    public var reason: String
    public var fields: HTTP1Fields
    /// none for 1xx/204/304/responses to HEAD; chunked when chunked is the final coding; length;
    /// else untilClose.
    public var framing: HTTP1BodyFraming
    public var keepAlive: Bool
}

public enum HTTP1ResponseEvent {
    case head(HTTP1ResponseHead)
    /// A slice of the caller's buffer (no copy).
    case body(ByteBuffer)
    case end(trailers: HTTP1Fields?)
}

/// A strict HTTP/1.1 response parser, one per upstream connection; the caller owns the buffer as
/// with `HTTP1RequestParser`.
///
/// - A 1xx response other than 101 comes as a `.head` (framing `.none`) with no `.end`; the parser
///   then waits for the final response to the same request.
/// - A 101 comes as `.head` then `.end(trailers: nil)`; after that the parser produces no events:
///   `next(from:)` returns nil and consumes nothing, so every byte after the 101's head stays in
///   the caller's buffer, from its reader index on, for the caller to take raw.
/// - Content-Length together with Transfer-Encoding is refused (RFC 9112 §6.1 "ought to be handled
///   as an error"; llhttp 9 refuses it as well), rather than letting Transfer-Encoding win.
public struct HTTP1ResponseParser: Sendable {
    private enum State: Sendable {
        case idle(emptyLines: Int)
        case head(HeadScanner, StatusLine?)
        case body(BodyPhase, keepAlive: Bool, budget: TrailerBudget)
        /// After a 101's head: `.end` is next, then `.switched`.
        case switching
        case switched
        case closed
        /// The input ended (after `endOfInput`).
        case finished
        case failed(HTTP1ParseError)
        case transient
    }

    private let limits: HTTP1Limits
    private var state = State.idle(emptyLines: 0)
    /// Whether each request still awaiting its final response was HEAD, oldest first.
    private var requestsWereHEAD: [Bool] = []
    private var requestsAnswered = 0

    public init(limits: HTTP1Limits = .init()) {
        self.limits = limits
    }

    /// Before each response: whether the request was HEAD (its response has no body). Calls queue
    /// up for pipelined requests; a response without one is taken as not to HEAD.
    public mutating func expectResponse(toHEAD: Bool) {
        self.requestsWereHEAD.append(toHEAD)
    }

    public mutating func next(from buffer: inout ByteBuffer) throws(HTTP1ParseError) -> HTTP1ResponseEvent? {
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

    /// The peer closed: ends an untilClose body (returns `.end`), else throws
    /// invalid("the upstream closed mid-message") if a message was under way; nil when idle.
    public mutating func endOfInput() throws(HTTP1ParseError) -> HTTP1ResponseEvent? {
        switch self.state {
        case .failed(let error):
            throw error
        case .idle, .closed, .switched, .finished:
            self.state = .finished
            return nil
        case .body(.untilClose, _, _):
            self.state = .finished
            return .end(trailers: nil)
        case .head, .body, .switching, .transient:
            let error = HTTP1ParseError(.closedMidMessage)
            self.state = .failed(error)
            throw error
        }
    }

    private struct Outcome { var event: HTTP1ResponseEvent? }

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

        case .head(var scanner, let statusLine):
            self.state = .transient
            let progress = try buffer.withUnsafeReadableBytes { (raw) throws(HTTP1ParseError) -> (HeadScanner.Progress, StatusLine?) in
                let progress = try scanner.scan(raw)
                if case .startLine(let line) = progress { return (progress, try StartLine.parseStatus(raw, line)) }
                return (progress, statusLine)
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

        case .switching:
            self.state = .switched
            return Outcome(event: .end(trailers: nil))

        case .switched, .finished:
            return Outcome(event: nil)

        case .closed:
            try LineEnds.skipAfterClose(&buffer)
            return Outcome(event: nil)

        case .failed(let error):
            throw error

        case .transient:
            preconditionFailure("HTTP1ResponseParser re-entered")
        }
    }

    private mutating func finishHead(
        _ buffer: inout ByteBuffer, length: Int, line: StatusLine, fields: [FieldSpan]
    ) throws(HTTP1ParseError) -> HTTP1ResponseHead {
        let bytes = buffer.readSlice(length: length)!
        let (semantics, reason) = try bytes.withUnsafeReadableBytes { (raw) throws(HTTP1ParseError) -> (FieldSemantics, String) in
            (try FieldSemantics(fields, raw), String(decoding: UnsafeRawBufferPointer(rebasing: raw[line.reason]), as: UTF8.self))
        }
        let fieldsValue = HTTP1Fields(bytes: bytes, spans: fields)
        let http11 = line.version == .http1_1
        let status = line.status

        if semantics.transferEncodingCount > 0 {
            // Checked whatever the status: RFC 9112 §6.1 makes an HTTP/1.0 message with
            // Transfer-Encoding faulty, and a list we cannot read one way only is refused.
            guard http11 else { throw HTTP1ParseError(.transferEncodingInHTTP10) }
            guard semantics.transferEncoding != .malformed else { throw HTTP1ParseError(.responseTransferCoding) }
        }

        // Interim responses: no body, and the request still awaits its final response.
        if status < 200 {
            let switching = status == 101
            let keepAlive = semantics.keepAlive(http11: http11)
            if switching { self.popRequest() }
            // Like llhttp, an interim response that closes the connection (HTTP/1.0, or "close")
            // is the last thing read.
            self.state = switching ? .switching : keepAlive ? .idle(emptyLines: 0) : .closed
            return HTTP1ResponseHead(
                version: line.version, status: status, reason: reason, fields: fieldsValue, framing: .none, keepAlive: keepAlive
            )
        }

        let toHEAD = self.popRequest()
        let framing: HTTP1BodyFraming
        if toHEAD || status == 204 || status == 304 {
            framing = .none
        } else if semantics.transferEncodingCount > 0 {
            // RFC 9112 §6.3 ¶4: chunked final → chunked; otherwise the body runs until close.
            switch semantics.transferEncoding {
            case .exactlyChunked, .chunkedFinal: framing = .chunked
            case .other: framing = .untilClose
            case .malformed, .absent: throw HTTP1ParseError(.responseTransferCoding)
            }
        } else if let length = semantics.contentLength {
            framing = .length(length)
        } else {
            framing = .untilClose
        }
        let keepAlive = semantics.keepAlive(http11: http11) && framing != .untilClose
        let phase: BodyPhase
        switch framing {
        case .none: phase = .length(remaining: 0)
        case .length(let n): phase = .length(remaining: n)
        case .chunked: phase = .chunkLine(scanned: 0)
        case .untilClose: phase = .untilClose
        }
        let budget = TrailerBudget(bytes: self.limits.maxHeadBytes - length, fields: self.limits.maxFieldCount - fields.count)
        self.state = .body(phase, keepAlive: keepAlive, budget: budget)
        return HTTP1ResponseHead(
            version: line.version, status: status, reason: reason, fields: fieldsValue, framing: framing, keepAlive: keepAlive
        )
    }

    /// Whether the oldest outstanding request was HEAD (false when none was announced).
    @discardableResult
    private mutating func popRequest() -> Bool {
        guard self.requestsAnswered < self.requestsWereHEAD.count else { return false }
        let toHEAD = self.requestsWereHEAD[self.requestsAnswered]
        self.requestsAnswered += 1
        // Reclaim the consumed prefix now and then rather than shifting on every response.
        if self.requestsAnswered == self.requestsWereHEAD.count {
            self.requestsWereHEAD.removeAll(keepingCapacity: true)
            self.requestsAnswered = 0
        }
        return toHEAD
    }
}
