// SPDX-License-Identifier: Apache-2.0
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A deliberately simple blocking HTTP/1.1 client over a real TCP socket: it sends exactly the
/// bytes it is given (so tests can send what no well-behaved client would) and parses responses
/// framed by Content-Length, chunked encoding or connection close.
public final class RawHTTPClient {
    public struct Response {
        public let status: Int
        public let headers: [(String, String)]
        public let body: [UInt8]

        public func header(_ name: String) -> String? { self.headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
        public func headers(_ name: String) -> [String] { self.headers.filter { $0.0.lowercased() == name.lowercased() }.map(\.1) }
        public var text: String { String(decoding: self.body, as: UTF8.self) }
        public var json: [String: Any]? { try? JSONSerialization.jsonObject(with: Data(self.body)) as? [String: Any] }
    }

    public enum Failure: Error { case connect(Int32), closed, timeout, malformed(String) }

    private let fd: Int32
    private var buffer: [UInt8] = []

    public init(port: Int, timeoutSeconds: Int = 10) throws {
        self.fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(self.fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(self.fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard status == 0 else {
            close(self.fd)
            throw Failure.connect(errno)
        }
    }

    deinit { close(self.fd) }

    public func send(_ text: String) throws { try self.send(Array(text.utf8)) }

    public func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(self.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard sent > 0 else { throw Failure.closed }
            offset += sent
        }
    }

    /// Half-closes the sending side.
    public func shutdownWrite() { shutdown(self.fd, Int32(SHUT_WR)) }

    private func fill() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let count = chunk.withUnsafeMutableBytes { recv(self.fd, $0.baseAddress, $0.count, 0) }
        if count < 0 { throw errno == EAGAIN || errno == EWOULDBLOCK ? Failure.timeout : Failure.closed }
        if count == 0 { return false }
        self.buffer += chunk[0..<count]
        return true
    }

    private func readLine() throws -> String {
        while true {
            if let index = self.buffer.firstIndex(of: 0x0A) {
                var line = Array(self.buffer[..<index])
                self.buffer.removeFirst(index + 1)
                if line.last == 0x0D { line.removeLast() }
                return String(decoding: line, as: UTF8.self)
            }
            guard try self.fill() else { throw Failure.closed }
        }
    }

    private func readExactly(_ count: Int) throws -> [UInt8] {
        while self.buffer.count < count { guard try self.fill() else { throw Failure.closed } }
        let bytes = Array(self.buffer[..<count])
        self.buffer.removeFirst(count)
        return bytes
    }

    /// Reads a response's status line and headers only.
    public func readResponseHead() throws -> Response {
        let statusLine = try self.readLine()
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else { throw Failure.malformed(statusLine) }
        var headers: [(String, String)] = []
        while true {
            let line = try self.readLine()
            if line.isEmpty { break }
            guard let colon = line.firstIndex(of: ":") else { throw Failure.malformed(line) }
            headers.append((String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        return Response(status: status, headers: headers, body: [])
    }

    /// Reads exactly `count` bytes (after a head, e.g. a WebSocket frame); throws `closed` if the
    /// connection ends first.
    public func read(exactly count: Int) throws -> [UInt8] { try self.readExactly(count) }

    /// Reads and drops `count` body bytes; throws `closed` if the connection ends first.
    public func discard(_ count: Int) throws {
        var left = count
        while left > 0 {
            if self.buffer.isEmpty { guard try self.fill() else { throw Failure.closed } }
            let taken = min(left, self.buffer.count)
            self.buffer.removeFirst(taken)
            left -= taken
        }
    }

    /// Reads one response (skipping 1xx heads unless `informational`); `head` means no body follows.
    public func readResponse(head: Bool = false, informational: Bool = false) throws -> Response {
        while true {
            let response = try self.readResponseHead()
            let (status, headers) = (response.status, response.headers)
            if status < 200 {
                if informational { return response }
                continue
            }
            if head || status == 204 || status == 304 { return response }
            if let length = response.header("content-length").flatMap(Int.init) {
                return Response(status: status, headers: headers, body: try self.readExactly(length))
            }
            if response.header("transfer-encoding")?.lowercased().contains("chunked") == true {
                var body: [UInt8] = []
                while true {
                    let sizeLine = try self.readLine()
                    guard let size = Int(sizeLine.split(separator: ";")[0], radix: 16) else { throw Failure.malformed(sizeLine) }
                    if size == 0 {
                        while try !self.readLine().isEmpty {}
                        return Response(status: status, headers: headers, body: body)
                    }
                    body += try self.readExactly(size)
                    _ = try self.readLine()
                }
            }
            while try self.fill() {}
            let body = self.buffer
            self.buffer.removeAll()
            return Response(status: status, headers: headers, body: body)
        }
    }

    /// Whether the server has closed the connection (reads end-of-stream within the timeout).
    public func isClosedByPeer() -> Bool {
        (try? self.fill()) == false
    }

    /// One request and its response on a fresh connection.
    public static func request(
        port: Int, _ method: String = "GET", _ path: String, headers: [(String, String)] = [], body: [UInt8] = []
    ) throws -> Response {
        let client = try RawHTTPClient(port: port)
        var text = "\(method) \(path) HTTP/1.1\r\n"
        if !headers.contains(where: { $0.0.lowercased() == "host" }) { text += "Host: 127.0.0.1:\(port)\r\n" }
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        if !body.isEmpty || method == "POST" || method == "PUT" { text += "Content-Length: \(body.count)\r\n" }
        try client.send(Array((text + "\r\n").utf8) + body)
        return try client.readResponse(head: method == "HEAD")
    }
}
