// epoll-relay: the floor without NIO. The same relay as nio-relay (each accepted connection gets
// one upstream TCP connection; bytes copied 1:1 both ways, no HTTP), written straight on Linux
// epoll through Glibc: non-blocking sockets, one thread, level-triggered, a 16 KiB buffer per
// direction. What separates this from nginx is HTTP and upstream keepalive; what separates
// nio-relay from this is NIO.
//
//   BENCH_LISTEN=127.0.0.1:18500 BENCH_UPSTREAM=127.0.0.1:18400 epoll-relay
//   (or: epoll-relay LISTEN UPSTREAM)
//
// Per direction one buffer: a side is read only while its buffer is empty (read, then write to
// the other side at once); what the other side does not take stays in the buffer and that
// socket waits for EPOLLOUT, while the reading side's EPOLLIN is off: back-pressure. epoll_ctl
// runs only when a socket's wanted events change. Either side's EOF, error or reset closes both.

#if canImport(Glibc)
    import CEpoll
    import Glibc
#else
    #error("epoll-relay is Linux only")
#endif

let bufferSize = 16 * 1024

final class Connection {
    /// Distinguishes this connection from a later one that gets the same descriptor numbers
    /// (events of one epoll_wait batch can name a descriptor closed earlier in the batch).
    let id: UInt32
    /// [0] the client, [1] the upstream.
    var fds: (Int32, Int32)
    /// buffer[i] holds bytes read from side i, not yet written to the other side.
    let buffers: (UnsafeMutableRawPointer, UnsafeMutableRawPointer)
    var start = (0, 0)
    var end = (0, 0)
    /// Events registered with epoll, per side.
    var registered: (UInt32, UInt32) = (0, 0)
    var connected = false
    var closed = false

    init(id: UInt32, client: Int32, upstream: Int32) {
        self.id = id
        self.fds = (client, upstream)
        self.buffers = (.allocate(byteCount: bufferSize, alignment: 16), .allocate(byteCount: bufferSize, alignment: 16))
    }

    deinit {
        self.buffers.0.deallocate()
        self.buffers.1.deallocate()
    }

    func fd(_ side: Int) -> Int32 { side == 0 ? self.fds.0 : self.fds.1 }
    func buffer(_ side: Int) -> UnsafeMutableRawPointer { side == 0 ? self.buffers.0 : self.buffers.1 }
    func pending(_ side: Int) -> Int { side == 0 ? self.end.0 - self.start.0 : self.end.1 - self.start.1 }
}

let EV_IN = UInt32(EPOLLIN.rawValue)
let EV_OUT = UInt32(EPOLLOUT.rawValue)
let EV_ERR = UInt32(EPOLLERR.rawValue)
let EV_HUP = UInt32(EPOLLHUP.rawValue)

func fail(_ message: String) -> Never {
    let reason = errno == 0 ? "" : " (errno \(errno): \(String(cString: strerror(errno))))"
    var line = "epoll-relay: \(message)\(reason)\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    exit(2)
}

func key(_ id: UInt32, _ fd: Int32) -> UInt64 { UInt64(id) << 32 | UInt64(UInt32(bitPattern: fd)) }

func setNoDelay(_ fd: Int32) {
    var one: Int32 = 1
    _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
}

final class Relay {
    let epfd: Int32
    let listenFD: Int32
    var upstreamAddress: sockaddr_in
    /// The connection of each open descriptor, by descriptor number.
    var connections: [Connection?] = []
    var nextID: UInt32 = 1

    init(listenFD: Int32, upstream: sockaddr_in) {
        self.listenFD = listenFD
        self.upstreamAddress = upstream
        self.epfd = epoll_create1(Int32(EPOLL_CLOEXEC))
        if self.epfd < 0 { fail("epoll_create1") }
        self.control(EPOLL_CTL_ADD, listenFD, EV_IN, key(0, listenFD))
    }

    func control(_ op: Int32, _ fd: Int32, _ events: UInt32, _ data: UInt64) {
        var event = epoll_event()
        event.events = events
        event.data.u64 = data
        if epoll_ctl(self.epfd, op, fd, &event) != 0 { fail("epoll_ctl") }
    }

    /// What side `side` should wait for now, registered only if it changed.
    func update(_ c: Connection, _ side: Int) {
        var want: UInt32 = 0
        if c.connected {
            if c.pending(side) == 0 { want |= EV_IN }  // room to read into
            if c.pending(1 - side) > 0 { want |= EV_OUT }  // bytes waiting for this side
        } else if side == 1 {
            want = EV_OUT  // the non-blocking connect completes
        }
        let have = side == 0 ? c.registered.0 : c.registered.1
        guard want != have else { return }
        self.control(EPOLL_CTL_MOD, c.fd(side), want, key(c.id, c.fd(side)))
        if side == 0 { c.registered.0 = want } else { c.registered.1 = want }
    }

    func register(_ c: Connection, _ side: Int, _ events: UInt32) {
        let fd = c.fd(side)
        if Int(fd) >= self.connections.count {
            self.connections.append(
                contentsOf: repeatElement(nil as Connection?, count: Int(fd) + 1024 - self.connections.count))
        }
        self.connections[Int(fd)] = c
        self.control(EPOLL_CTL_ADD, fd, events, key(c.id, fd))
        if side == 0 { c.registered.0 = events } else { c.registered.1 = events }
    }

    func close(_ c: Connection) {
        guard !c.closed else { return }
        c.closed = true
        for side in 0..<2 {
            let fd = c.fd(side)
            self.connections[Int(fd)] = nil
            Glibc.close(fd)  // also leaves the epoll set
        }
    }

    func acceptAll() {
        let flags = Int32(SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue)
        while true {
            let client = accept4(self.listenFD, nil, nil, flags)
            if client < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { return }
                if errno == EMFILE || errno == ENFILE { return }  // level-triggered: retried on the next wait
                fail("accept4")
            }
            setNoDelay(client)
            let up = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | flags, 0)
            if up < 0 {
                Glibc.close(client)
                continue
            }
            setNoDelay(up)
            let rc = withUnsafePointer(to: &self.upstreamAddress) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(up, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            if rc != 0 && errno != EINPROGRESS {
                Glibc.close(client)
                Glibc.close(up)
                continue
            }
            let c = Connection(id: self.nextID, client: client, upstream: up)
            self.nextID = self.nextID == UInt32.max ? 1 : self.nextID + 1
            c.connected = rc == 0
            // Until the upstream is connected the client is not read (events 0: only errors).
            self.register(c, 0, c.connected ? EV_IN : 0)
            self.register(c, 1, c.connected ? EV_IN : EV_OUT)
        }
    }

    /// Writes what side `from` has buffered to the other side. False if the connection closed.
    func drain(_ c: Connection, from: Int) -> Bool {
        let n = c.pending(from)
        guard n > 0 else { return true }
        let offset = from == 0 ? c.start.0 : c.start.1
        let written = write(c.fd(1 - from), c.buffer(from) + offset, n)
        if written < 0 {
            if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return true }
            self.close(c)
            return false
        }
        if written == n {
            if from == 0 { c.start.0 = 0; c.end.0 = 0 } else { c.start.1 = 0; c.end.1 = 0 }
        } else {
            if from == 0 { c.start.0 += written } else { c.start.1 += written }
        }
        return true
    }

    func handle(_ c: Connection, side: Int, events: UInt32) {
        if !c.connected {
            // The upstream's connect finished, one way or the other (or the client failed first).
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            if side == 0 || getsockopt(c.fd(1), SOL_SOCKET, SO_ERROR, &error, &length) != 0 || error != 0 {
                self.close(c)
                return
            }
            c.connected = true
            self.update(c, 0)
            self.update(c, 1)
            return
        }
        let registered = side == 0 ? c.registered.0 : c.registered.1
        if events & EV_OUT != 0 {
            guard self.drain(c, from: 1 - side) else { return }
        }
        if events & (EV_IN | EV_HUP | EV_ERR) != 0 {
            if registered & EV_IN != 0 && c.pending(side) == 0 {
                let n = read(c.fd(side), c.buffer(side), bufferSize)
                if n > 0 {
                    if side == 0 { c.end.0 = n } else { c.end.1 = n }
                    guard self.drain(c, from: side) else { return }
                } else if n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                    self.close(c)  // EOF or error: either side closing closes both
                    return
                }
            } else if events & (EV_HUP | EV_ERR) != 0 {
                self.close(c)  // not reading (its buffer is full) and the socket failed
                return
            }
        }
        self.update(c, side)
        self.update(c, 1 - side)
    }

    func run() -> Never {
        let maxEvents = 256
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: maxEvents)
        while true {
            let n = epoll_wait(self.epfd, events, Int32(maxEvents), -1)
            if n < 0 {
                if errno == EINTR { continue }
                fail("epoll_wait")
            }
            for i in 0..<Int(n) {
                let data = events[i].data.u64
                let fd = Int32(bitPattern: UInt32(truncatingIfNeeded: data))
                let id = UInt32(truncatingIfNeeded: data >> 32)
                if id == 0 {
                    self.acceptAll()
                    continue
                }
                guard Int(fd) < self.connections.count, let c = self.connections[Int(fd)], c.id == id else { continue }
                self.handle(c, side: fd == c.fds.0 ? 0 : 1, events: events[i].events)
            }
        }
    }
}

func parseAddress(_ names: [String], argument: Int) -> (host: String, port: UInt16) {
    var text: String?
    for name in names {
        if let value = getenv(name), !String(cString: value).isEmpty {
            text = String(cString: value)
            break
        }
    }
    if text == nil, CommandLine.arguments.count > argument { text = CommandLine.arguments[argument] }
    guard var value = text else { fail("\(names[0]) is not set (or pass LISTEN UPSTREAM as arguments)") }
    if let scheme = value.firstRange(of: "://") { value = String(value[scheme.upperBound...]) }
    while value.hasSuffix("/") { value.removeLast() }
    guard let colon = value.lastIndex(of: ":"), let port = UInt16(value[value.index(after: colon)...]) else {
        fail("\(names[0]): expected host:port, got \(value)")
    }
    return (String(value[..<colon]), port)
}

func ipv4(_ host: String, _ port: UInt16) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    guard inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host, &address.sin_addr) == 1 else {
        fail("not an IPv4 address: \(host)")
    }
    return address
}

// ------------------------------------------------------------------ main
signal(SIGPIPE, SIG_IGN)
let listen = parseAddress(["BENCH_LISTEN"], argument: 1)
let upstream = parseAddress(["BENCH_UPSTREAM", "BENCH_UPSTREAM_URL"], argument: 2)

let listenFD = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0)
if listenFD < 0 { fail("socket") }
var one: Int32 = 1
_ = setsockopt(listenFD, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
var listenAddress = ipv4(listen.host, listen.port)
let bound = withUnsafePointer(to: &listenAddress) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listenFD, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
}
if bound != 0 { fail("bind \(listen.host):\(listen.port)") }
if Glibc.listen(listenFD, 4096) != 0 { fail("listen") }

let relay = Relay(listenFD: listenFD, upstream: ipv4(upstream.host, upstream.port))
print("epoll-relay: \(listen.host):\(listen.port) -> \(upstream.host):\(upstream.port), one thread")
relay.run()
