// SPDX-License-Identifier: Apache-2.0
import GatehouseHTTP1
import NIOCore
import NIOHTTP1
import Testing

@Suite struct ConnectionTests {
    @Test(arguments: [
        ("HTTP/1.1", "", true),
        ("HTTP/1.1", "Connection: close\r\n", false),
        ("HTTP/1.1", "Connection: CLOSE\r\n", false),
        ("HTTP/1.1", "Connection: foo, \tClose \r\n", false),
        ("HTTP/1.1", "Connection: foo\r\nConnection: close\r\n", false),
        ("HTTP/1.1", "Connection: closed\r\n", true),
        ("HTTP/1.1", "Connection: keep-alive\r\n", true),
        ("HTTP/1.1", "Proxy-Connection: close\r\n", false),
        ("HTTP/1.0", "", false),
        ("HTTP/1.0", "Connection: keep-alive\r\n", true),
        ("HTTP/1.0", "Connection: Keep-Alive\r\n", true),
        ("HTTP/1.0", "Connection: x,keep-alive\r\n", true),
        ("HTTP/1.0", "Connection: keep-alive, close\r\n", false),
        ("HTTP/1.0", "Connection: keep-alive-ish\r\n", false),
    ])
    func keepAlive(_ version: String, _ fields: String, _ expected: Bool) {
        #expect(firstHead("GET / \(version)\r\n\(fields)\r\n")?.keepAlive == expected)
    }

    @Test func dataAfterAClosingMessageIsRefused() {
        let result = requestEvents("GET / HTTP/1.1\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n")
        #expect(result.events.count == 2)
        #expect(result.error == invalid("data after a message that closes the connection"))
        // Line ends after it are skipped, as llhttp does.
        let crlf = requestEvents("GET / HTTP/1.0\r\n\r\n\r\n\n\r")
        #expect(crlf.error == nil)
        #expect(crlf.events.count == 2)
    }

    @Test func expectsContinue() {
        #expect(firstHead("PUT / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n")?.expectsContinue == true)
        #expect(firstHead("PUT / HTTP/1.1\r\nExpect: 100-Continue \r\nContent-Length: 1\r\n\r\n")?.expectsContinue == true)
        #expect(firstHead("PUT / HTTP/1.1\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\n")?.expectsContinue == false)
        #expect(firstHead("PUT / HTTP/1.1\r\nContent-Length: 1\r\n\r\n")?.expectsContinue == false)
    }

    @Test func upgrade() {
        #expect(firstHead("GET / HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n")?.upgrade == "websocket")
        #expect(firstHead("GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n")?.upgrade == nil)
        #expect(firstHead("GET / HTTP/1.1\r\nConnection: upgrade\r\n\r\n")?.upgrade == nil)
        #expect(firstHead("GET / HTTP/1.1\r\nProxy-Connection: upgrade\r\nUpgrade: websocket\r\n\r\n")?.upgrade == nil)
    }

    @Test func upgradeRequestsAreParsedOn() {
        // The caller stops calling after .end if the upstream switches protocols.
        let result = requestEvents("GET / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\nGET /2 HTTP/1.1\r\n\r\n")
        #expect(result.error == nil)
        #expect(result.events.count == 4)
    }
}
