// SPDX-License-Identifier: Apache-2.0
import GatehouseHTTP1
import NIOCore
import NIOHTTP1
import Testing

@Suite struct LineEndTests {
    @Test(arguments: [
        "GET / HTTP/1.1\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n\n",
        "GET / HTTP/1.1\r\n\n",
    ])
    func bareLFInTheHead(_ input: String) {
        #expect(requestError(input) == invalid("bare LF in the head"))
    }

    @Test(arguments: [
        "GET / HTTP/1.1\r\r\n\r\n",
        "GET /\r HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",
        "GET / HTTP/1.1\r\nHost\r: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\r\n\r\n",
    ])
    func bareCRInTheHead(_ input: String) {
        #expect(requestError(input) == invalid("bare CR in the head"))
    }

    @Test func aFewEmptyLinesBeforeTheRequestLineAreIgnored() {
        let input = String(repeating: "\r\n", count: 8) + "GET / HTTP/1.1\r\n\r\n"
        #expect(requestError(input) == nil)
        #expect(firstHead(input)?.target == "/")
        let tooMany = String(repeating: "\r\n", count: 9) + "GET / HTTP/1.1\r\n\r\n"
        #expect(requestError(tooMany) == invalid("too many empty lines before the start line"))
    }

    @Test(arguments: ["\nGET / HTTP/1.1\r\n\r\n", "\r\rGET / HTTP/1.1\r\n\r\n", "\rGET / HTTP/1.1\r\n\r\n"])
    func bareLineEndsBeforeTheRequestLine(_ input: String) {
        #expect(requestError(input) == invalid("bare CR or LF before the start line"))
    }

    @Test func emptyLinesBetweenPipelinedRequests() {
        let result = requestEvents("GET /1 HTTP/1.1\r\n\r\n\r\nGET /2 HTTP/1.1\r\n\r\n")
        #expect(result.error == nil)
        #expect(result.events.count == 4)
    }
}
