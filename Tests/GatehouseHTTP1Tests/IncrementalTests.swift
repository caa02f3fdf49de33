// SPDX-License-Identifier: Apache-2.0
import GatehouseHTTP1
import NIOHTTP1
import NIOCore
import Testing

@Suite struct IncrementalTests {
    static let messages = [
        "GET /a HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n",
        "POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        "\r\nPUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=\"y\"\r\nabc\r\n0\r\nT: 1\r\n\r\n",
        "GET /1 HTTP/1.1\r\n\r\nPOST /2 HTTP/1.1\r\nContent-Length: 2\r\n\r\nokPOST /3 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n\r\nGET /4 HTTP/1.0\r\n\r\n",
    ]

    @Test(arguments: messages)
    func everySplitGivesTheSameEvents(_ message: String) {
        let input = Array(message.utf8)
        let whole = requestEvents(input)
        #expect(whole.error == nil)
        for split in 1..<input.count {
            let result = requestEvents(input, pieces: [split])
            #expect(result.events == whole.events, "split at \(split)")
            #expect(result.error == nil)
        }
        let bytewise = requestEvents(input, pieces: Array(repeating: 1, count: input.count))
        #expect(bytewise.events == whole.events)
    }

    @Test func pipelinedRequests() {
        let result = requestEvents(Self.messages[3])
        #expect(result.error == nil)
        #expect(result.events == [
            .head(Head(method: "GET", target: "/1", framing: .none)), .end(nil),
            .head(Head(method: "POST", target: "/2", fields: [Pair("Content-Length", "2")], framing: .length(2))), .body(Array("ok".utf8)), .end(nil),
            .head(Head(method: "POST", target: "/3", fields: [Pair("Transfer-Encoding", "chunked")], framing: .chunked)), .body(Array("z".utf8)), .end(nil),
            .head(Head(method: "GET", target: "/4", version: .http1_0, framing: .none, keepAlive: false)), .end(nil),
        ])
    }

    @Test func eventsConsumeExactlyTheirBytes() throws {
        var parser = HTTP1RequestParser()
        var input = ByteBuffer(string: "POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET")
        let start = input.readerIndex
        guard case .head(let head)? = try parser.next(from: &input) else { throw Failure() }
        #expect(input.readerIndex - start == head.fields.bytes.readableBytes)
        guard case .body(let body)? = try parser.next(from: &input) else { throw Failure() }
        #expect(String(buffer: body) == "abc")
        guard case .end(nil)? = try parser.next(from: &input) else { throw Failure() }
        #expect(String(buffer: input) == "GET")
        #expect(try parser.next(from: &input) == nil)
        #expect(String(buffer: input) == "GET")
    }

    @Test func bodiesAndHeadsAreSlicesOfTheReadBuffer() throws {
        var parser = HTTP1RequestParser()
        var input = ByteBuffer(string: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwiki\r\n0\r\n\r\n")
        let storage = input.withVeryUnsafeBytes { UInt(bitPattern: $0.baseAddress) ..< UInt(bitPattern: $0.baseAddress! + $0.count) }
        func inStorage(_ b: ByteBuffer) -> Bool {
            b.withUnsafeReadableBytes { storage.contains(UInt(bitPattern: $0.baseAddress)) }
        }
        guard case .head(let head)? = try parser.next(from: &input) else { throw Failure() }
        #expect(inStorage(head.fields.bytes))
        guard case .body(let body)? = try parser.next(from: &input) else { throw Failure() }
        #expect(inStorage(body))
        #expect(String(buffer: body) == "wiki")
    }

    @Test func discardingReadBytesBetweenCallsIsFine() throws {
        let input = Array("GET /x HTTP/1.1\r\nHost: example\r\n\r\n".utf8)
        var parser = HTTP1RequestParser()
        var buffer = ByteBuffer()
        var heads = 0
        for byte in input {
            buffer.writeInteger(byte)
            while let event = try parser.next(from: &buffer) {
                if case .head(let head) = event {
                    heads += 1
                    #expect(head.fields.firstValue(named: "host") == "example")
                }
            }
            buffer.discardReadBytes()
        }
        #expect(heads == 1)
    }

    struct Failure: Error {}
}
