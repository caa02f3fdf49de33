// SPDX-License-Identifier: Apache-2.0
import GatehouseHTTP1
import NIOHTTP1
import NIOCore
import Testing

@Suite struct FieldTests {
    @Test func valuesAreTrimmedOfOWS() {
        let head = firstHead("GET / HTTP/1.1\r\nA:  \t x y \t \r\nB:\r\nC:\t\r\n\r\n")
        #expect(head?.fields == [Pair("A", "x y"), Pair("B", ""), Pair("C", "")])
    }

    @Test func obsTextAndHTABAreFieldBytes() {
        let input = Array("GET / HTTP/1.1\r\nA: \u{00E9}\tz\r\n\r\n".utf8) + [0xFF]
        #expect(requestError(input) == nil)
        let raw = Array("GET / HTTP/1.1\r\nA: a".utf8) + [0x80, 0xFF] + Array("b\r\n\r\n".utf8)
        #expect(requestError(raw) == nil)
    }

    @Test(arguments: [0x00, 0x01, 0x08, 0x0B, 0x0C, 0x1F, 0x7F] as [UInt8])
    func controlBytesInValuesAreRefused(_ byte: UInt8) {
        let input = Array("GET / HTTP/1.1\r\nA: a".utf8) + [byte] + Array("b\r\n\r\n".utf8)
        #expect(requestError(input) == invalid("invalid byte in a field value"))
    }

    @Test func obsFoldIsRefused() {
        #expect(requestError("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n") == invalid("obs-fold (a field line starting with SP or HTAB)"))
        #expect(requestError("GET / HTTP/1.1\r\nA: b\r\n\tc\r\n\r\n") == invalid("obs-fold (a field line starting with SP or HTAB)"))
        #expect(requestError("GET / HTTP/1.1\r\n Host: a\r\n\r\n") == invalid("obs-fold (a field line starting with SP or HTAB)"))
    }

    @Test func fieldNames() {
        #expect(requestError("GET / HTTP/1.1\r\n: a\r\n\r\n") == invalid("empty field name"))
        #expect(requestError("GET / HTTP/1.1\r\nHost : a\r\n\r\n") == invalid("whitespace between field name and colon"))
        #expect(requestError("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n") == invalid("whitespace between field name and colon"))
        #expect(requestError("GET / HTTP/1.1\r\nX Y: a\r\n\r\n") == invalid("whitespace between field name and colon"))
        #expect(requestError("GET / HTTP/1.1\r\nX@Y: a\r\n\r\n") == invalid("field name is not a token"))
        #expect(requestError("GET / HTTP/1.1\r\nHost\r\n\r\n") == invalid("field line without a colon"))
        #expect(firstHead("GET / HTTP/1.1\r\nX-a!#$%&'*+.^_`|~1: v\r\n\r\n")?.fields == [Pair("X-a!#$%&'*+.^_`|~1", "v")])
    }

    @Test func fieldsAPI() throws {
        var parser = HTTP1RequestParser()
        var input = buffer("GET / HTTP/1.1\r\nHost: a\r\nX-Multi: 1\r\nx-multi:  2 \r\nAccept: */*\r\n\r\n")
        guard case .head(let head)? = try parser.next(from: &input) else {
            Issue.record("no head")
            return
        }
        let fields = head.fields
        #expect(fields.count == 4)
        #expect(fields.values(named: "x-multi") == ["1", "2"])
        #expect(fields.firstValue(named: "host") == "a")
        #expect(fields.firstValue(named: "missing") == nil)
        #expect(fields.count(named: "x-multi") == 2)
        #expect(fields.isNamed("x-multi", at: 2))
        #expect(fields.name(at: 2) == "x-multi")
        #expect(fields.withValue(at: 2) { Array($0) } == Array("2".utf8))
        #expect(fields.withName(at: 0) { $0.count } == 4)
        var out = ByteBuffer()
        fields.writeField(at: 2, into: &out)
        #expect(String(buffer: out) == "x-multi: 2\r\n")
        // The head's bytes are exactly the head.
        #expect(String(buffer: fields.bytes).hasSuffix("Accept: */*\r\n\r\n"))
    }

    @Test func contentLengthIsDigitsOnly() {
        for value in ["abc", "+5", "-5", "5 5", "5, 5", "5,5", "", "0x5", "5;", "\u{0661}"] {
            #expect(requestError("POST / HTTP/1.1\r\nContent-Length: \(value)\r\n\r\n") == invalid("invalid Content-Length"), "\(value)")
        }
        #expect(firstHead("POST / HTTP/1.1\r\nContent-Length:  007 \t\r\n\r\n1234567")?.framing == .length(7))
    }

    @Test func contentLengthIsOverflowSafe() {
        #expect(firstHead("POST / HTTP/1.1\r\nContent-Length: 9007199254740992\r\n\r\n")?.framing == .length(9_007_199_254_740_992))
        #expect(requestError("POST / HTTP/1.1\r\nContent-Length: 9007199254740993\r\n\r\n") == invalid("Content-Length above 2^53"))
        #expect(requestError("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999999999\r\n\r\n") == invalid("Content-Length above 2^53"))
        #expect(firstHead("POST / HTTP/1.1\r\nContent-Length: 00000000000000000000000000001\r\n\r\nx")?.framing == .length(1))
    }

    @Test func aSecondContentLengthIsRefusedEvenIfIdentical() {
        #expect(requestError("POST / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\nhello") == invalid("more than one Content-Length field"))
    }

    @Test func contentLengthAndTransferEncodingTogether() {
        let error = invalid("Content-Length and Transfer-Encoding together")
        #expect(requestError("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n") == error)
        #expect(requestError("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n") == error)
    }

    @Test func requestTransferEncodingMustBeExactlyChunked() {
        let error = invalid("request Transfer-Encoding other than exactly one chunked (RFC 9112 §6.1: codings other than chunked are refused)")
        for te in ["gzip", "gzip, chunked", "chunked, chunked", "chunked\t", "chunked,", ",chunked", "x-chunked", "chunkedx", "chunked;q=1", ""] {
            #expect(requestError("POST / HTTP/1.1\r\nTransfer-Encoding: \(te)\r\n\r\n0\r\n\r\n") == error, "\(te)")
        }
        #expect(requestError("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n") == error)
        #expect(requestError("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n") == error)
        for te in ["chunked", "CHUNKED", "\tChunked  "] {
            #expect(firstHead("POST / HTTP/1.1\r\nTransfer-Encoding: \(te)\r\n\r\n0\r\n\r\n")?.framing == .chunked, "\(te)")
        }
    }

    @Test func transferEncodingInHTTP10IsFaultyFraming() {
        #expect(requestError("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n") == invalid("Transfer-Encoding in an HTTP/1.0 message"))
        #expect(responseEvents("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").error == invalid("Transfer-Encoding in an HTTP/1.0 message"))
    }

    @Test func framingOfRequests() {
        #expect(firstHead("GET / HTTP/1.1\r\n\r\n")?.framing == HTTP1BodyFraming.none)
        #expect(firstHead("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n")?.framing == .length(0))
        let result = requestEvents("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        #expect(result.events.count == 2)
        #expect(result.events.last == .end(nil))
    }
}
