// SPDX-License-Identifier: Apache-2.0
import GatehouseHTTP1
import NIOCore
import NIOHTTP1

/// An event as plain values, comparable across feedings (bodies merged).
enum Event: Equatable, CustomStringConvertible {
    case head(Head)
    case body([UInt8])
    case end([Pair]?)

    var description: String {
        switch self {
        case .head(let h): return "head(\(h))"
        case .body(let b): return "body(\(String(decoding: b, as: UTF8.self)))"
        case .end(let t): return "end(\(t.map { "\($0)" } ?? "nil"))"
        }
    }
}

struct Pair: Equatable, CustomStringConvertible {
    var name: String
    var value: String
    init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
    var description: String { "\(name): \(value)" }
}

struct Head: Equatable {
    var method = ""
    var target = ""
    var status = 0
    var version = HTTPVersion.http1_1
    var fields: [Pair] = []
    var framing = HTTP1BodyFraming.none
    var keepAlive = true
    var expectsContinue = false
    var upgrade: String? = nil
}

func pairs(_ fields: HTTP1Fields) -> [Pair] {
    (0..<fields.count).map { Pair(fields.name(at: $0), fields.value(at: $0)) }
}

func buffer(_ string: String) -> ByteBuffer { ByteBuffer(string: string) }

/// Body parts join into one event, however the input was split.
func appendBody(_ part: ByteBuffer, to events: inout [Event]) {
    if case .body(let previous) = events.last {
        events[events.count - 1] = .body(previous + Array(part.readableBytesView))
    } else {
        events.append(.body(Array(part.readableBytesView)))
    }
}

/// Feeds `input` in pieces of the given sizes (the rest in one) and collects events, bodies merged.
func requestEvents(_ input: [UInt8], pieces: [Int] = [], limits: HTTP1Limits = .init()) -> (events: [Event], error: HTTP1ParseError?) {
    var parser = HTTP1RequestParser(limits: limits)
    var buffer = ByteBuffer()
    var events: [Event] = []
    var offset = 0
    var sizes = pieces
    while offset < input.count {
        let size = sizes.isEmpty ? input.count - offset : min(sizes.removeFirst(), input.count - offset)
        buffer.writeBytes(input[offset..<(offset + size)])
        offset += size
        do {
            while let event = try parser.next(from: &buffer) {
                switch event {
                case .head(let h):
                    events.append(.head(Head(method: h.method.rawValue, target: h.target, version: h.version, fields: pairs(h.fields),
                                             framing: h.framing, keepAlive: h.keepAlive, expectsContinue: h.expectsContinue, upgrade: h.upgrade)))
                case .body(let b):
                    appendBody(b, to: &events)
                case .end(let trailers):
                    events.append(.end(trailers.map(pairs)))
                }
            }
        } catch {
            return (events, error)
        }
    }
    return (events, nil)
}

func requestEvents(_ input: String, pieces: [Int] = [], limits: HTTP1Limits = .init()) -> (events: [Event], error: HTTP1ParseError?) {
    requestEvents(Array(input.utf8), pieces: pieces, limits: limits)
}

/// The error a request (all at once) ends with, or nil.
func requestError(_ input: String, limits: HTTP1Limits = .init()) -> HTTP1ParseError? {
    requestEvents(input, limits: limits).error
}

func requestError(_ input: [UInt8]) -> HTTP1ParseError? {
    requestEvents(input).error
}

/// The first head of `input`, which must parse.
func firstHead(_ input: String) -> Head? {
    let result = requestEvents(input)
    guard case .head(let head)? = result.events.first else { return nil }
    return head
}

func invalid(_ reason: String) -> HTTP1ParseError { .invalid(reason) }

func responseEvents(_ input: String, toHEAD: [Bool] = [], pieces: [Int] = [], endOfInput: Bool = false) -> (events: [Event], error: HTTP1ParseError?, rest: String) {
    var parser = HTTP1ResponseParser()
    for h in toHEAD { parser.expectResponse(toHEAD: h) }
    let input = Array(input.utf8)
    var buffer = ByteBuffer()
    var events: [Event] = []
    var offset = 0
    var sizes = pieces
    func record(_ event: HTTP1ResponseEvent) {
        switch event {
        case .head(let h):
            events.append(.head(Head(status: h.status, version: h.version, fields: pairs(h.fields), framing: h.framing, keepAlive: h.keepAlive)))
        case .body(let b):
            appendBody(b, to: &events)
        case .end(let trailers):
            events.append(.end(trailers.map(pairs)))
        }
    }
    repeat {
        let size = sizes.isEmpty ? input.count - offset : min(sizes.removeFirst(), input.count - offset)
        buffer.writeBytes(input[offset..<(offset + size)])
        offset += size
        do {
            while let event = try parser.next(from: &buffer) { record(event) }
        } catch {
            return (events, error, String(buffer: buffer))
        }
    } while offset < input.count
    if endOfInput {
        do {
            if let event = try parser.endOfInput() { record(event) }
        } catch {
            return (events, error, String(buffer: buffer))
        }
    }
    return (events, nil, String(buffer: buffer))
}
