// SPDX-License-Identifier: Apache-2.0
import GatehouseHTTP1
import NIOCore
import NIOHTTP1
import Testing

@Suite struct RequestLineTests {
    @Test func simpleGet() {
        let result = requestEvents("GET /a?b=c HTTP/1.1\r\nHost: example.com\r\n\r\n")
        #expect(result.error == nil)
        #expect(result.events == [
            .head(Head(method: "GET", target: "/a?b=c", version: .http1_1, fields: [Pair("Host", "example.com")], framing: .none, keepAlive: true)),
            .end(nil),
        ])
    }

    @Test func knownMethodsMapToTheirCases() {
        var parser = HTTP1RequestParser()
        var input = buffer("M-SEARCH * HTTP/1.1\r\n\r\n")
        // M-SEARCH with "*" is not OPTIONS: refused as a target form.
        #expect(throws: HTTP1ParseError.invalid("request-target is not in a form the method allows")) { try parser.next(from: &input) }
        for (text, method) in [("GET", HTTPMethod.GET), ("DELETE", .DELETE), ("M-SEARCH", .MSEARCH), ("SOURCE", .SOURCE), ("QUERY", .RAW(value: "QUERY"))] {
            var parser = HTTP1RequestParser()
            var input = buffer("\(text) / HTTP/1.1\r\n\r\n")
            guard case .head(let head)? = try? parser.next(from: &input) else {
                Issue.record("no head for \(text)")
                continue
            }
            #expect(head.method == method)
        }
    }

    @Test(arguments: ["G@T / HTTP/1.1\r\n\r\n", "GET\t/ HTTP/1.1\r\n\r\n", " GET / HTTP/1.1\r\n\r\n"])
    func methodMustBeAToken(_ input: String) {
        #expect(requestError(input) == invalid("method is not a token"))
    }

    @Test(arguments: ["FOO / HTTP/1.1\r\n\r\n", "get / HTTP/1.1\r\n\r\n", "PRI * HTTP/1.1\r\n\r\n"])
    func unregisteredMethodsAreRefusedAsLLHTTPDoes(_ input: String) {
        #expect(requestError(input) == invalid("unregistered method"))
    }

    @Test(arguments: ["GET  / HTTP/1.1\r\n\r\n", "GET /  HTTP/1.1\r\n\r\n", "GET / HTTP/1.1 \r\n\r\n"])
    func exactlyOneSPBetweenParts(_ input: String) {
        // RFC 9112 §3; llhttp takes runs of SP (stricter here).
        #expect(requestError(input) == invalid("request-line parts must be separated by exactly one SP"))
    }

    @Test(arguments: [[0x09], [0x0C], [0x80], [0xFF], [0x7F], [0x00]] as [[UInt8]])
    func targetIsVisibleASCII(_ byte: [UInt8]) {
        let input = Array("GET /a".utf8) + byte + Array("b HTTP/1.1\r\n\r\n".utf8)
        #expect(requestError(input) == invalid("request-target byte outside 0x21-0x7E"))
    }

    @Test(arguments: [
        ("OPTIONS * HTTP/1.1\r\n\r\n", true),
        ("GET * HTTP/1.1\r\n\r\n", false),
        ("OPTIONS *x HTTP/1.1\r\n\r\n", false),
        ("CONNECT example.com:443 HTTP/1.1\r\n\r\n", true),
        ("CONNECT [::1]:8443 HTTP/1.1\r\n\r\n", true),
        ("CONNECT /x HTTP/1.1\r\n\r\n", false),
        ("CONNECT example.com HTTP/1.1\r\n\r\n", false),
        ("CONNECT a@b:1 HTTP/1.1\r\n\r\n", false),
        ("GET example.com:443 HTTP/1.1\r\n\r\n", false),
        ("GET http://example.com HTTP/1.1\r\n\r\n", true),
        ("GET http://u@example.com:80/p?q#f HTTP/1.1\r\n\r\n", true),
        ("GET http://example.com?q HTTP/1.1\r\n\r\n", true),
        ("GET http:///p HTTP/1.1\r\n\r\n", false),
        ("GET http:/p HTTP/1.1\r\n\r\n", false),
        ("GET h2c+x://a/ HTTP/1.1\r\n\r\n", false),
        ("GET http://a@b@c/ HTTP/1.1\r\n\r\n", false),
        ("GET a HTTP/1.1\r\n\r\n", false),
        ("GET %2F HTTP/1.1\r\n\r\n", false),
    ])
    func targetForms(_ input: String, _ accepted: Bool) {
        let error = requestError(input)
        if accepted {
            #expect(error == nil)
        } else {
            #expect(error == invalid("request-target is not in a form the method allows"))
        }
    }

    @Test func connectHasNoContent() {
        #expect(requestError("CONNECT a:1 HTTP/1.1\r\nContent-Length: 0\r\n\r\n") == nil)
        #expect(requestError("CONNECT a:1 HTTP/1.1\r\nContent-Length: 2\r\n\r\nab") == invalid("CONNECT request with content"))
        #expect(requestError("CONNECT a:1 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n") == invalid("CONNECT request with content"))
    }

    @Test(arguments: ["HTTP/2.0", "HTTP/1.2", "HTTP/0.9", "HTTP/3.1", "HTTP/9.9"])
    func otherVersionsAre505(_ version: String) {
        #expect(requestError("GET / \(version)\r\n\r\n") == .unsupportedVersion)
    }

    @Test(arguments: ["HTTP/1.10", "HTTP/11", "http/1.1", "HTTP/1.x", "HTTP/1.", "HTTPS/1.1", "HTTP/1.1x"])
    func garbageVersionsAreInvalid(_ version: String) {
        #expect(requestError("GET / \(version)\r\n\r\n") == invalid("malformed HTTP version"))
    }

    @Test func otherProtocolsAreRefused() {
        #expect(requestError("GET / RTSP/1.0\r\n\r\n") == invalid("protocol other than HTTP"))
        #expect(requestError("SOURCE / ICE/1.0\r\n\r\n") == invalid("protocol other than HTTP"))
    }

    @Test func http09RequestLineIsRefused() {
        #expect(requestError("GET /\r\n\r\n") == invalid("malformed request line"))
        #expect(requestError("GET\r\n\r\n") == invalid("malformed request line"))
    }

    @Test func versionsAccepted() {
        #expect(firstHead("GET / HTTP/1.0\r\n\r\n")?.version == .http1_0)
        #expect(firstHead("GET / HTTP/1.1\r\n\r\n")?.version == .http1_1)
    }
}
