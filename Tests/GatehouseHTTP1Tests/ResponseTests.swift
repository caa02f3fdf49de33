// SPDX-License-Identifier: Apache-2.0
import GatehouseHTTP1
import NIOHTTP1
import NIOCore
import Testing

@Suite struct ResponseTests {
    @Test func contentLength() {
        let result = responseEvents("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        #expect(result.error == nil)
        #expect(result.events == [.head(Head(status: 200, fields: [Pair("Content-Length", "2")], framing: .length(2))), .body(Array("ok".utf8)), .end(nil)])
    }

    @Test func chunkedWhenChunkedIsFinal() {
        for te in ["chunked", "gzip, chunked", "gzip,chunked"] {
            let result = responseEvents("HTTP/1.1 200 OK\r\nTransfer-Encoding: \(te)\r\n\r\n2\r\nok\r\n0\r\n\r\n")
            #expect(result.error == nil)
            #expect(result.events.count == 3)
            if case .head(let head) = result.events.first { #expect(head.framing == .chunked) }
        }
    }

    @Test func untilCloseWhenChunkedIsNotFinal() {
        let result = responseEvents("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nabc", endOfInput: true)
        #expect(result.error == nil)
        #expect(result.events == [
            .head(Head(status: 200, fields: [Pair("Transfer-Encoding", "chunked, gzip")], framing: .untilClose, keepAlive: false)),
            .body(Array("abc".utf8)), .end(nil),
        ])
    }

    @Test func untilCloseWithoutFraming() {
        let result = responseEvents("HTTP/1.0 200 OK\r\n\r\nall of it", pieces: [5, 20], endOfInput: true)
        #expect(result.error == nil)
        #expect(result.events == [.head(Head(status: 200, version: .http1_0, framing: .untilClose, keepAlive: false)), .body(Array("all of it".utf8)), .end(nil)])
    }

    @Test func malformedTransferEncodingIsRefused() {
        for te in ["chunked,", "gzip,,chunked", "chunked\t", "gzip,\tchunked", ""] {
            #expect(responseEvents("HTTP/1.1 200 OK\r\nTransfer-Encoding: \(te)\r\n\r\n").error == invalid("malformed response Transfer-Encoding"), "\(te)")
        }
    }

    @Test func contentLengthAndTransferEncodingAreRefused() {
        #expect(responseEvents("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n").error == invalid("Content-Length and Transfer-Encoding together"))
        #expect(responseEvents("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n").error == invalid("more than one Content-Length field"))
    }

    @Test(arguments: [204, 304])
    func noBodyStatuses(_ status: Int) {
        let result = responseEvents("HTTP/1.1 \(status) X\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        #expect(result.error == nil)
        #expect(result.events.count == 4)
        if case .head(let head) = result.events.first { #expect(head.framing == .none) }
    }

    @Test func responsesToHEADHaveNoBody() {
        let result = responseEvents(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", toHEAD: [true, false]
        )
        #expect(result.error == nil)
        #expect(result.events == [
            .head(Head(status: 200, fields: [Pair("Content-Length", "5")], framing: .none)), .end(nil),
            .head(Head(status: 200, fields: [Pair("Content-Length", "2")], framing: .length(2))), .body(Array("ok".utf8)), .end(nil),
        ])
    }

    @Test func interimResponsesThenTheFinalOne() {
        let result = responseEvents(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", toHEAD: [true]
        )
        #expect(result.error == nil)
        #expect(result.events == [
            .head(Head(status: 100, framing: .none)),
            .head(Head(status: 103, fields: [Pair("Link", "</a>")], framing: .none)),
            .head(Head(status: 200, fields: [Pair("Content-Length", "0")], framing: .none)), .end(nil),
        ])
    }

    @Test func switchingProtocolsStopsTheParser() throws {
        var parser = HTTP1ResponseParser()
        var input = ByteBuffer(string: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\u{81}\u{05}hello")
        guard case .head(let head)? = try parser.next(from: &input) else { throw IncrementalTests.Failure() }
        #expect(head.status == 101)
        #expect(head.framing == .none)
        guard case .end(nil)? = try parser.next(from: &input) else { throw IncrementalTests.Failure() }
        let rest = input.readableBytes
        #expect(try parser.next(from: &input) == nil)
        #expect(input.readableBytes == rest)
        #expect(String(buffer: input) == "\u{81}\u{05}hello")
        #expect(try parser.endOfInput() == nil)
    }

    @Test func statusLines() {
        #expect(responseEvents("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n").error == nil)
        #expect(responseEvents("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n").error == nil)
        #expect(responseEvents("HTTP/1.1 599 Whatever\tit is \u{00E9}\r\nContent-Length: 0\r\n\r\n").error == nil)
        for line in ["HTTP/1.1 99 X", "HTTP/1.1 099 X", "HTTP/1.1 2000 X", "HTTP/1.1 20 X", "HTTP/1.1  200 X", "HTTP/1.1 2x0 X", "HTTP/1.1 200X"] {
            #expect(responseEvents("\(line)\r\n\r\n").error == invalid("malformed status line"), "\(line)")
        }
        #expect(responseEvents("HTTP/1.1 200 O\u{01}K\r\n\r\n").error == invalid("invalid byte in the reason phrase"))
        #expect(responseEvents("HTTP/1.1 200 OK\r\rX: y\r\n\r\n").error == invalid("bare CR in the status line"))
        #expect(responseEvents("HTTP/2.0 200 OK\r\n\r\n").error == .unsupportedVersion)
        #expect(responseEvents("HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n").error == invalid("bare LF in the head"))
    }

    @Test func endOfInput() {
        #expect(responseEvents("", endOfInput: true).error == nil)
        #expect(responseEvents("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", endOfInput: true).error == invalid("the upstream closed mid-message"))
        #expect(responseEvents("HTTP/1.1 200 OK\r\nContent-", endOfInput: true).error == invalid("the upstream closed mid-message"))
        #expect(responseEvents("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", endOfInput: true).error == nil)
    }

    @Test func keepAliveOfResponses() {
        func keepAlive(_ input: String) -> Bool? {
            guard case .head(let head)? = responseEvents(input).events.first else { return nil }
            return head.keepAlive
        }
        #expect(keepAlive("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n") == true)
        #expect(keepAlive("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n") == false)
        #expect(keepAlive("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n") == false)
        #expect(keepAlive("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n") == true)
        #expect(keepAlive("HTTP/1.1 200 OK\r\n\r\n") == false)
    }

    @Test func everySplitOfAResponseGivesTheSameEvents() {
        let message = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;a=b\r\nwiki\r\n0\r\nX: y\r\n\r\n"
        let whole = responseEvents(message)
        #expect(whole.error == nil)
        for split in 1..<message.utf8.count {
            #expect(responseEvents(message, pieces: [split]).events == whole.events, "split at \(split)")
        }
    }
}
