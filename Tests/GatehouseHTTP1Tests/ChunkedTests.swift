// SPDX-License-Identifier: Apache-2.0
import GatehouseHTTP1
import NIOCore
import NIOHTTP1
import Testing

@Suite struct ChunkedTests {
    static let head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"

    func chunked(_ body: String) -> (events: [Event], error: HTTP1ParseError?) {
        requestEvents(Self.head + body)
    }

    @Test func chunksAndTrailers() {
        let result = chunked("5\r\nhello\r\n6;a=b\r\n world\r\n0\r\nX-Sum: 1\r\nX-Other:  two \r\n\r\n")
        #expect(result.error == nil)
        #expect(result.events.dropFirst() == [.body(Array("hello world".utf8)), .end([Pair("X-Sum", "1"), Pair("X-Other", "two")])])
    }

    @Test func noTrailersIsNil() {
        #expect(chunked("0\r\n\r\n").events.last == .end(nil))
    }

    @Test(arguments: ["1", "A", "a", "00000000000000FF", "ffffffffffff"])
    func chunkSizeIsHex(_ size: String) {
        // Only the size line matters: data may still be missing.
        #expect(chunked("\(size)\r\n").error == nil)
    }

    @Test func chunkSizeLimits() {
        #expect(chunked("00000000000000001\r\nx\r\n0\r\n\r\n").error == invalid("chunk-size over 16 hex digits or above 2^53"))
        #expect(chunked("FFFFFFFFFFFFFFFF\r\n").error == invalid("chunk-size over 16 hex digits or above 2^53"))
        #expect(chunked("20000000000001\r\n").error == invalid("chunk-size over 16 hex digits or above 2^53"))
        #expect(chunked("20000000000000\r\n").error == nil)
    }

    @Test(arguments: ["\r\n", "g\r\n", "-1\r\n", "+1\r\n", "5 \r\n", " 5\r\n", "5\t\r\n", "0x5\r\n", "5 ;a\r\n"])
    func invalidChunkSizes(_ line: String) {
        #expect(chunked(line).error == invalid("invalid chunk-size"))
    }

    @Test(arguments: ["5;a\r\n", "5;a=b\r\n", "5;a=b;c\r\n", "5;a=\"\"\r\n", "5;a=\"x y\\\"z\\\\\"\r\n", "5;a=\"\t\u{00E9}\"\r\n", "5;a=b;c=\"d\"\r\n"])
    func validChunkExtensionsAreDropped(_ line: String) {
        let result = chunked(line + "hello\r\n0\r\n\r\n")
        #expect(result.error == nil)
        #expect(result.events.dropFirst() == [.body(Array("hello".utf8)), .end(nil)])
    }

    @Test(arguments: ["5;\r\n", "5;=b\r\n", "5; a\r\n", "5;a =b\r\n", "5;a= b\r\n", "5;a=\r\n", "5;a=\"x\r\n", "5;a=b\"c\"\r\n", "5;a=\"c\"d\r\n", "5;;a\r\n", "5;a@b\r\n", "5;a=\"\u{7F}\"\r\n"])
    func malformedChunkExtensions(_ line: String) {
        let error = chunked(line).error
        #expect(error == invalid("malformed chunk extension") || error == invalid("invalid chunk-size"), "\(line)")
    }

    @Test func chunkDataMustEndWithCRLF() {
        #expect(chunked("3\r\nabcX\r\n0\r\n\r\n").error == invalid("chunk data not followed by CRLF"))
        #expect(chunked("3\r\nabc\n0\r\n\r\n").error == invalid("chunk data not followed by CRLF"))
        #expect(chunked("3\r\nabc\rX0\r\n\r\n").error == invalid("chunk data not followed by CRLF"))
        // A wrong first byte is refused without waiting for the second.
        #expect(chunked("3\r\nabcX").error == invalid("chunk data not followed by CRLF"))
    }

    @Test func chunkLinesEndWithCRLF() {
        #expect(chunked("3\nabc\r\n0\r\n\r\n").error == invalid("chunk-size line not ended by CRLF"))
        #expect(chunked("3\r\nabc\r\n0\n\r\n").error == invalid("chunk-size line not ended by CRLF"))
        #expect(chunked("3;a=b\nabc\r\n").error == invalid("chunk-size line not ended by CRLF"))
        #expect(chunked("3\rx\r\n").error == invalid("chunk-size line not ended by CRLF"))
        #expect(chunked("0\r\n\n").error == invalid("bare LF in the head"))
        #expect(chunked("0\r\nA: b\n\r\n").error == invalid("bare LF in the head"))
    }

    @Test func trailersFollowFieldRules() {
        #expect(chunked("0\r\n b\r\n\r\n").error == invalid("obs-fold (a field line starting with SP or HTAB)"))
        #expect(chunked("0\r\nA : b\r\n\r\n").error == invalid("whitespace between field name and colon"))
        #expect(chunked("0\r\nA: \u{01}\r\n\r\n").error == invalid("invalid byte in a field value"))
        for name in ["Content-Length: 5", "Transfer-Encoding: chunked", "Connection: close", "proxy-connection: close"] {
            #expect(chunked("0\r\n\(name)\r\n\r\n").error == invalid("Content-Length, Transfer-Encoding or Connection in trailers"))
        }
    }

    @Test func trailersCountTowardTheFieldLimit() {
        let limits = HTTP1Limits(maxFieldCount: 3)
        let ok = requestEvents(Self.head + "0\r\nA: 1\r\n\r\n", limits: limits)
        #expect(ok.error == nil)
        let over = requestEvents(Self.head + "0\r\nA: 1\r\nB: 2\r\n\r\n", limits: limits)
        #expect(over.error == .tooManyFields)
    }

    @Test func trailersCountTowardTheByteLimit() {
        let limits = HTTP1Limits(maxHeadBytes: Self.head.utf8.count + 10)
        #expect(requestEvents(Self.head + "0\r\nA: 12345\r\n\r\n", limits: limits).error == nil)
        #expect(requestEvents(Self.head + "0\r\nA: 123456\r\n\r\n", limits: limits).error == .headTooLarge)
    }

    @Test func longChunkLineIsRefused() {
        let limits = HTTP1Limits(maxHeadBytes: 200)
        let line = "5;" + String(repeating: "a", count: 300)
        #expect(requestEvents(Self.head + line, limits: limits).error == invalid("chunk-size line longer than maxHeadBytes"))
    }
}
