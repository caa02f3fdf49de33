// SPDX-License-Identifier: Apache-2.0
import GatehouseHTTP1
import NIOHTTP1
import NIOCore
import Testing

@Suite struct LimitTests {
    @Test func headExactlyAtTheLimitIsAccepted() {
        let head = "GET / HTTP/1.1\r\nA: " + String(repeating: "x", count: 50) + "\r\n\r\n"
        let limit = head.utf8.count
        #expect(requestError(head, limits: HTTP1Limits(maxHeadBytes: limit)) == nil)
        #expect(requestError(head, limits: HTTP1Limits(maxHeadBytes: limit - 1)) == .headTooLarge)
    }

    @Test func headTooLargeAsSoonAsTheLimitIsPassed() throws {
        var parser = HTTP1RequestParser(limits: HTTP1Limits(maxHeadBytes: 100))
        var input = ByteBuffer(string: "GET / HTTP/1.1\r\nA: " + String(repeating: "x", count: 80))
        #expect(try parser.next(from: &input) == nil)  // 99 bytes: could still end at byte 100
        input.writeString("x")
        // 100 bytes and no end among them: the head cannot fit, refused without waiting for more.
        #expect(throws: HTTP1ParseError.headTooLarge) { try parser.next(from: &input) }
    }

    @Test func tooManyFields() {
        let fields = (0..<5).map { "F\($0): v\r\n" }.joined()
        #expect(requestError("GET / HTTP/1.1\r\n\(fields)\r\n", limits: HTTP1Limits(maxFieldCount: 5)) == nil)
        #expect(requestError("GET / HTTP/1.1\r\n\(fields)X: y\r\n\r\n", limits: HTTP1Limits(maxFieldCount: 5)) == .tooManyFields)
    }

    @Test func defaults() {
        let limits = HTTP1Limits()
        #expect(limits.maxHeadBytes == 32 * 1024)
        #expect(limits.maxFieldCount == 100)
    }

    @Test func theParserStaysFailed() throws {
        var parser = HTTP1RequestParser()
        var input = ByteBuffer(string: "GET / HTTP/1.1\nHost: a\r\n\r\n")
        #expect(throws: HTTP1ParseError.invalid("bare LF in the head")) { try parser.next(from: &input) }
        var fresh = ByteBuffer(string: "GET / HTTP/1.1\r\n\r\n")
        #expect(throws: HTTP1ParseError.invalid("bare LF in the head")) { try parser.next(from: &fresh) }
    }

    @Test func aHeadByteByByteIsNotRescanned() {
        // 32 KiB fed one byte at a time: quadratic rescanning would take minutes in a debug build.
        let head = "GET / HTTP/1.1\r\n" + (0..<64).map { "F\($0): " + String(repeating: "v", count: 480) + "\r\n" }.joined() + "\r\n"
        let input = Array(head.utf8)
        precondition(input.count < 32 * 1024)
        let start = ContinuousClock.now
        let result = requestEvents(input, pieces: Array(repeating: 1, count: input.count))
        #expect(result.error == nil)
        #expect(result.events.count == 2)
        #expect(ContinuousClock.now - start < .seconds(20))
    }
}

