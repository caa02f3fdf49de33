// SPDX-License-Identifier: Apache-2.0
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Values appended from several threads at once (results of concurrent requests).
public final class Collector<Element>: @unchecked Sendable {
    private let lock = NSLock()
    private var elements: [Element] = []

    public init() {}

    public func append(_ element: Element) { self.lock.withLock { self.elements.append(element) } }

    public var values: [Element] { self.lock.withLock { self.elements } }
}

/// Runs `body(0..<count)` on `count` threads of their own, all at once, and waits for all.
/// (`DispatchQueue.concurrentPerform` runs only as many at once as there are cores.)
public func concurrently(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let done = DispatchSemaphore(value: 0)
    let start = DispatchSemaphore(value: 0)
    for index in 0..<count {
        Thread {
            start.wait()
            body(index)
            done.signal()
        }.start()
    }
    for _ in 0..<count { start.signal() }
    for _ in 0..<count { done.wait() }
}

/// A TCP port on 127.0.0.1 that refuses connections for as long as this lives: the socket is bound
/// but never listens, so no other test can take the port (a port merely found free can be).
public final class ClosedPort: @unchecked Sendable {
    public let port: Int
    private let fd: Int32

    public init() {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        self.fd = fd
        self.port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit { close(self.fd) }
}
