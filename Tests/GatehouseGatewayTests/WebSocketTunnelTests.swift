// SPDX-License-Identifier: Apache-2.0
import GatehouseConfig
@testable import GatehouseGateway
import GatehouseHTTP
import GatehouseHTTP1
import GatehouseJOSE
import NIOCore
import NIOHTTP1
import Testing

/// The tunnel's states in the connection state machine, the frame-header reader and the relay's
/// decisions: events in, decisions out, time given — no sockets, no sleeps.
@Suite struct WebSocketTunnelMachineTests {
    typealias Machine = ConnectionStateMachine
    static let start = NIODeadline.uptimeNanoseconds(1_000_000_000_000)

    func at(_ seconds: Int64) -> NIODeadline { Self.start + .seconds(seconds) }

    func isTunnel(_ machine: Machine) -> Bool {
        if case .tunnel = machine.state { return true }
        return false
    }

    /// A handshake forwarded and answered 101, credentials ending at 100 s.
    func tunnel(credentialsEnd: Int64? = 100) -> Machine {
        var machine = Machine(timeouts: .init(head: .seconds(10), idle: .seconds(60)), now: Self.start)
        let terms = Machine.TunnelTerms(idleTimeout: .seconds(3600), credentialsEnd: credentialsEnd.map(self.at))
        machine.requestHead(keepAlive: true, plan: .forward(deadline: self.at(30), upgrade: terms), now: self.at(1))
        let connected = machine.upstreamConnected(now: self.at(1))
        #expect(connected)
        let end = machine.requestEnded(now: self.at(1))
        #expect(end == .endUpstreamRequest)
        let switched = machine.upstreamSwitchedProtocols(now: self.at(2))
        #expect(switched)
        return machine
    }

    @Test func aValid101OpensATunnelAndTheRouteTimeoutAndIdleTimeoutStop() {
        var machine = self.tunnel()
        #expect(self.isTunnel(machine))
        // The route's 30 s timeout and the listener's 60 s idle timeout no longer apply.
        #expect(machine.nextDeadline == self.at(100))
        let r1 = machine.expire(now: self.at(61))
        #expect(r1 == nil)
        // A client that takes nothing is the tunnel's idle timeout's business.
        machine.clientWritabilityChanged(false, now: self.at(3))
        #expect(machine.nextDeadline == self.at(100))
        // Reads follow the upstream's writability: back-pressure both ways.
        #expect(machine.shouldRead(hasBufferedInput: false))
        machine.upstreamWritabilityChanged(false, now: self.at(4))
        #expect(!machine.shouldRead(hasBufferedInput: false))
        #expect(!machine.wantsInput)
    }

    @Test func a101ToARequestThatAskedNoUpgradeIsRefused() {
        var machine = Machine(timeouts: .init(head: .seconds(10), idle: .seconds(60)), now: Self.start)
        machine.requestHead(keepAlive: true, plan: .forward(deadline: self.at(30)), now: self.at(1))
        _ = machine.upstreamConnected(now: self.at(1))
        _ = machine.requestEnded(now: self.at(1))
        let switched = machine.upstreamSwitchedProtocols(now: self.at(2))
        #expect(!switched)
        #expect(!self.isTunnel(machine))
    }

    @Test func theTunnelEndsWhenItsCredentialsDoAndClosesAfterTheGrace() {
        var machine = self.tunnel()
        let early = machine.expire(now: self.at(99))
        #expect(early == nil)
        let ended = machine.expire(now: self.at(100))
        #expect(ended == .tunnelCredentialsEnded)
        let began = machine.endTunnel(.expired, now: self.at(100))
        #expect(began)
        #expect(machine.tunnelEnding == .expired)
        // Once only: a revocation meanwhile changes nothing.
        let again = machine.endTunnel(.revoked, now: self.at(100))
        #expect(!again)
        #expect(machine.nextDeadline == self.at(101))
        let closed = machine.expire(now: self.at(101))
        #expect(closed == .close)
        #expect(machine.state == .closing)
    }

    @Test func aTunnelThatOutlivesItsTokenHasNoCredentialsDeadline() {
        let machine = self.tunnel(credentialsEnd: nil)
        #expect(machine.nextDeadline == self.at(3602))
    }

    @Test func nothingMovingForTheIdleTimeoutClosesTheTunnel() {
        var machine = self.tunnel(credentialsEnd: nil)
        machine.tunnelMoved(now: self.at(1000))
        let early = machine.expire(now: self.at(3602))
        #expect(early == nil)
        let idle = machine.expire(now: self.at(4600))
        #expect(idle == .tunnelIdle)
        #expect(machine.state == .closing)
    }

    @Test func aDrainEndsATunnelWithItsOwnReason() {
        var machine = self.tunnel()
        let drain = machine.drain(now: self.at(5))
        #expect(drain == .endTunnel)
        #expect(machine.tunnelEnding == .drain)
    }

    @Test func aDrainedTunnelGetsTheDrainsGraceNotTheSecond() {
        var machine = self.tunnel(credentialsEnd: nil)
        _ = machine.drain(now: self.at(5))
        // The server's shutdown_grace closes what is left; the machine sets no deadline of its own.
        let later = machine.expire(now: self.at(60))
        #expect(later == nil)
        #expect(self.isTunnel(machine))
    }

    @Test func anUpstreamThatFailsInATunnelClosesIt() {
        var machine = self.tunnel()
        let answerable = machine.upstreamFailed()
        #expect(!answerable)
        #expect(machine.state == .closing)
    }
}

@Suite struct WebSocketFrameTests {
    /// A frame: FIN + opcode, masked when `mask`, with `payload` (masked as a client would).
    static func frame(opcode: UInt8, payload: [UInt8], mask: Bool = true) -> [UInt8] {
        var frame: [UInt8] = [0x80 | opcode]
        let maskBit: UInt8 = mask ? 0x80 : 0
        switch payload.count {
        case ..<126: frame.append(maskBit | UInt8(payload.count))
        case ..<65536: frame += [maskBit | 126, UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
        default: frame += [maskBit | 127] + (0..<8).map { UInt8(truncatingIfNeeded: UInt64(payload.count) >> UInt64(56 - 8 * $0)) }
        }
        guard mask else { return frame + payload }
        let key: [UInt8] = [1, 2, 3, 4]
        return frame + key + payload.enumerated().map { $0.element ^ key[$0.offset % 4] }
    }

    func scan(_ scanner: inout WebSocketFrameScanner, _ bytes: [UInt8], stopAtBoundary: Bool = false) throws -> Int {
        try bytes.withUnsafeBytes { bytes throws(WebSocketFrameScanner.Failure) in try scanner.scan(bytes, stopAtBoundary: stopAtBoundary) }
    }

    @Test func framesOfEveryLengthFormEndWhereTheyShould() throws {
        for length in [0, 1, 125, 126, 127, 65535, 65536, 70000] {
            for mask in [true, false] {
                let frame = Self.frame(opcode: 2, payload: [UInt8](repeating: 7, count: length), mask: mask)
                // Whole, and one byte at a time through the header and across the payload's end.
                var whole = WebSocketFrameScanner()
                #expect(try self.scan(&whole, frame) == frame.count)
                #expect(whole.isBetweenFrames)
                var bytewise = WebSocketFrameScanner()
                for (index, byte) in frame.enumerated() {
                    _ = try self.scan(&bytewise, [byte])
                    #expect(bytewise.isBetweenFrames == (index == frame.count - 1), "length \(length), byte \(index)")
                    if index > 20 && index < frame.count - 20 { break }
                }
            }
        }
    }

    @Test func aScanThatStopsAtTheBoundaryTakesOnlyTheFrameUnderWay() throws {
        let first = Self.frame(opcode: 1, payload: Array("hello".utf8))
        let second = Self.frame(opcode: 1, payload: Array("world".utf8))
        var scanner = WebSocketFrameScanner()
        #expect(try self.scan(&scanner, Array(first.prefix(4))) == 4)
        #expect(!scanner.isBetweenFrames)
        #expect(try self.scan(&scanner, Array(first.dropFirst(4)) + second, stopAtBoundary: true) == first.count - 4)
        #expect(scanner.isBetweenFrames)
        // Between frames, nothing more is taken.
        #expect(try self.scan(&scanner, second, stopAtBoundary: true) == 0)
    }

    @Test func aCloseFrameIsSeenOnceWhole() throws {
        var scanner = WebSocketFrameScanner()
        let close = Self.frame(opcode: 8, payload: [0x03, 0xE8])
        _ = try self.scan(&scanner, Array(close.prefix(6)))
        #expect(!scanner.sawClose)
        _ = try self.scan(&scanner, Array(close.dropFirst(6)))
        #expect(scanner.sawClose)
    }

    @Test func aLengthWithItsTopBitSetIsRefused() {
        var scanner = WebSocketFrameScanner()
        let header: [UInt8] = [0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4]
        #expect(throws: WebSocketFrameScanner.Failure.lengthTooLarge) { try self.scan(&scanner, header) }
    }

    @Test func theGatewaysCloseFramesAreWellFormed() throws {
        let toClient = WebSocketClose.frame(code: 1008, reason: "token expired", masked: false)
        #expect(toClient.prefix(4) == [0x88, 15, 0x03, 0xF0])
        #expect(Array(toClient.dropFirst(4)) == Array("token expired".utf8))
        let toUpstream = WebSocketClose.frame(code: 1001, reason: "bye", masked: true)
        #expect(toUpstream[0] == 0x88 && toUpstream[1] == 0x80 | 5)
        let key = Array(toUpstream[2..<6])
        let payload = toUpstream[6...].enumerated().map { $0.element ^ key[$0.offset % 4] }
        #expect(payload == [0x03, 0xE9] + Array("bye".utf8))
        var scanner = WebSocketFrameScanner()
        #expect(try self.scan(&scanner, toUpstream) == toUpstream.count)
        #expect(scanner.sawClose)
    }

    func pass(_ relay: inout TunnelRelay, _ bytes: [UInt8], from side: TunnelRelay.Side, ending: Bool) throws -> TunnelRelay.Pass {
        try bytes.withUnsafeBytes { bytes throws(WebSocketFrameScanner.Failure) in try relay.pass(bytes, from: side, ending: ending) }
    }

    @Test func theRelayEndsBetweenFramesAndClosesAfterTheClientsAnswer() throws {
        var relay = TunnelRelay(openedAt: .uptimeNanoseconds(0), sessionID: "s")
        let big = Self.frame(opcode: 2, payload: [UInt8](repeating: 1, count: 300), mask: false)
        // The upstream is in the middle of a frame when the gateway ends the tunnel.
        #expect(try self.pass(&relay, Array(big.prefix(100)), from: .upstream, ending: false) == .init(forward: 100, sendClose: false))
        let due = relay.closesDue()
        #expect(due.toClient == false && due.toUpstream == true)
        // The rest of that frame passes, then the close frame; the next frame does not.
        let next = Self.frame(opcode: 1, payload: Array("late".utf8), mask: false)
        let rest = try self.pass(&relay, Array(big.dropFirst(100)) + next, from: .upstream, ending: true)
        #expect(rest == .init(forward: big.count - 100, sendClose: true))
        #expect(try self.pass(&relay, next, from: .upstream, ending: true) == .init(forward: 0, sendClose: false))
        #expect(!relay.clientAnsweredClose)
        // The client's data after the close is dropped; its close frame ends the tunnel.
        let answer = Self.frame(opcode: 1, payload: Array("x".utf8)) + Self.frame(opcode: 8, payload: [0x03, 0xF0])
        #expect(try self.pass(&relay, answer, from: .client, ending: true) == .init(forward: 0, sendClose: false))
        #expect(relay.clientAnsweredClose)
        #expect(relay.bytesFromUpstream == big.count + 2 * next.count)
        #expect(relay.bytesFromClient == answer.count)
    }

    @Test func noCloseFrameFollowsOneAPeerSent() throws {
        // The upstream closed first (its close went to the client); then the token expires.
        var relay = TunnelRelay(openedAt: .uptimeNanoseconds(0), sessionID: nil)
        let close = Self.frame(opcode: 8, payload: [0x03, 0xE8], mask: false)
        #expect(try self.pass(&relay, close, from: .upstream, ending: false) == .init(forward: close.count, sendClose: false))
        let due = relay.closesDue()
        #expect(!due.toClient && due.toUpstream)
        // The client's close under way when the tunnel ends passes, and is the close that way.
        var other = TunnelRelay(openedAt: .uptimeNanoseconds(0), sessionID: nil)
        let clientClose = Self.frame(opcode: 8, payload: [0x03, 0xE8])
        _ = try self.pass(&other, Array(clientClose.prefix(3)), from: .client, ending: false)
        let first = other.closesDue()
        #expect(first.toClient && !first.toUpstream)
        #expect(try self.pass(&other, Array(clientClose.dropFirst(3)), from: .client, ending: true) == .init(forward: clientClose.count - 3, sendClose: false))
        #expect(other.clientAnsweredClose)
    }

    @Test func aBadHeaderAfterTheBoundaryDoesNotCostTheCloseFrame() throws {
        var relay = TunnelRelay(openedAt: .uptimeNanoseconds(0), sessionID: nil)
        let frame = Self.frame(opcode: 2, payload: [1, 2, 3], mask: false)
        _ = try self.pass(&relay, Array(frame.prefix(2)), from: .upstream, ending: false)
        _ = relay.closesDue()
        let bad: [UInt8] = [0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 1]
        #expect(try self.pass(&relay, Array(frame.dropFirst(2)) + bad, from: .upstream, ending: true) == .init(forward: frame.count - 2, sendClose: true))
    }
}

@Suite struct WebSocketHandshakeTests {
    static let key = "dGhlIHNhbXBsZSBub25jZQ=="

    func read(_ fields: [(String, String)], method: HTTPMethod = .GET, version: HTTPVersion = .http1_1) -> WebSocketHandshake.Reading {
        WebSocketHandshake.read(method: method, version: version, fields: HTTPHeaders(fields))
    }

    static let valid = [
        ("Host", "x"), ("Upgrade", "websocket"), ("Connection", "keep-alive, Upgrade"), ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", "13"),
    ]

    @Test func aWellFormedHandshakeIsOne() {
        #expect(self.read(Self.valid) == .handshake(WebSocketHandshake(key: Self.key)))
        #expect(self.read([("Upgrade", "WebSocket"), ("Connection", "upgrade"), ("Sec-WebSocket-Key", Self.key), ("Sec-WebSocket-Version", "13")]) != .none)
    }

    @Test func withoutBothUpgradeFieldsItIsPlainHTTP() {
        #expect(self.read([("Upgrade", "websocket"), ("Sec-WebSocket-Key", Self.key)]) == .none)
        #expect(self.read([("Connection", "Upgrade"), ("Upgrade", "h2c")]) == .none)
        #expect(self.read([("Host", "x")]) == .none)
    }

    @Test func aBrokenHandshakeIsRefused() {
        func invalid(_ reading: WebSocketHandshake.Reading) -> Bool { if case .invalid = reading { true } else { false } }
        #expect(invalid(self.read(Self.valid, method: .POST)))
        #expect(invalid(self.read(Self.valid, version: .http1_0)))
        #expect(invalid(self.read(Self.valid.filter { $0.0 != "Sec-WebSocket-Key" })))
        #expect(invalid(self.read(Self.valid.map { $0.0 == "Sec-WebSocket-Key" ? ($0.0, "short") : $0 })))
        #expect(invalid(self.read(Self.valid + [("Sec-WebSocket-Key", Self.key)])))
        #expect(invalid(self.read(Self.valid.map { $0.0 == "Sec-WebSocket-Version" ? ($0.0, "8") : $0 })))
        #expect(invalid(self.read(Self.valid + [("Content-Length", "5")])))
        #expect(self.read(Self.valid + [("Content-Length", "0")]) != .none)
    }

    @Test func a101ReachesTheClientWithoutFramingOrHopByHopFields() {
        let upstream = HTTPHeaders([
            ("Upgrade", "websocket"), ("Connection", "Upgrade, X-Hop"), ("X-Hop", "1"), ("Content-Length", "0"),
            ("Transfer-Encoding", "chunked"), ("Sec-WebSocket-Accept", "abc"), ("Sec-WebSocket-Protocol", "chat"), ("Keep-Alive", "x"),
        ])
        var client = HTTPHeaders()
        HeaderRewriter.writeSwitchingFields(of: upstream, to: &client)
        #expect(client.map { "\($0.name): \($0.value)" } == [
            "Sec-WebSocket-Accept: abc", "Sec-WebSocket-Protocol: chat", "Upgrade: websocket", "Connection: Upgrade",
        ])
    }

    @Test func onlyAComplete101OpensTheTunnel() {
        let handshake = WebSocketHandshake(key: Self.key)
        let accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        #expect(handshake.isAccepted(by: HTTPHeaders([("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", accept)])))
        #expect(!handshake.isAccepted(by: HTTPHeaders([("Upgrade", "websocket"), ("Connection", "Upgrade")])))
        #expect(!handshake.isAccepted(by: HTTPHeaders([("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", "x")])))
        #expect(!handshake.isAccepted(by: HTTPHeaders([("Upgrade", "h2c"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", accept)])))
        #expect(!handshake.isAccepted(by: HTTPHeaders([("Upgrade", "websocket"), ("Sec-WebSocket-Accept", accept)])))
    }
}

@Suite struct WebSocketHandshakeDecisionTests {
    let fixture: GatewayFixture

    init() throws {
        var chat = route("/chat/")
        chat.tokenParameter = "access_token"
        var live = route("/live/", auth: .public)
        live.tokenParameter = "access_token"
        self.fixture = try GatewayFixture(
            routes: [chat, live, route("/admin/", anyRole: ["admin"]), route("/opt/", auth: .optional)], cookie: "session",
            allowedOrigins: ["https://app.test"]
        )
    }

    static let upgradeFields = [
        ("Host", "gw"), ("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Key", WebSocketHandshakeTests.key),
        ("Sec-WebSocket-Version", "13"),
    ]

    func decide(_ uri: String, _ extra: [(String, String)] = [], method: HTTPMethod = .GET) -> RequestAuthorizer.Decision {
        self.fixture.decide(uri, method: method, headers: HTTPHeaders(Self.upgradeFields + extra))
    }

    func refusal(_ decision: RequestAuthorizer.Decision) -> HTTPError? {
        if case .respond(let error, _) = decision { return error }
        return nil
    }

    func upgraded(_ decision: RequestAuthorizer.Decision) -> (path: RequestPath, identity: Identity?)? {
        if case .upgrade(_, let path, let identity, _) = decision { return (path, identity) }
        return nil
    }

    @Test func aHandshakeIsDecidedLikeAnyRequestOnItsRoute() throws {
        let token = try self.fixture.token()
        #expect(self.refusal(self.decide("/chat/room")) == .missingToken)
        #expect(self.refusal(self.decide("/chat/room", [("Authorization", "Bearer x.y.z")])) == .invalidToken(.malformed))
        #expect(self.refusal(self.decide("/admin/feed", [("Authorization", "Bearer \(token)")])) == .insufficientScope)
        #expect(self.refusal(self.decide("/nowhere")) == .notFound)
        #expect(self.upgraded(self.decide("/chat/room", [("Authorization", "Bearer \(token)")]))?.identity?.userID == "7")
        // Optional and public routes open anonymous tunnels.
        #expect(self.upgraded(self.decide("/opt/x")) != nil)
        #expect(self.upgraded(self.decide("/live/x"))?.identity == nil)
        // A broken handshake is 400 before anything else.
        #expect(self.refusal(self.decide("/chat/room", method: .POST))?.status == .badRequest)
        // Without the upgrade fields it is an ordinary request.
        guard case .forward = self.fixture.decide("/chat/room", headers: ["Authorization": "Bearer \(token)", "Upgrade": "websocket"]) else {
            Issue.record("a request with Upgrade but no Connection: upgrade is not a handshake")
            return
        }
    }

    @Test func aQueryTokenNeedsAnAllowedOriginAndLeavesTheURL() throws {
        let token = try self.fixture.token()
        let origin = ("Origin", "https://app.test")
        let opened = self.upgraded(self.decide("/chat/room?a=1&access_token=\(token)&b=2", [origin]))
        #expect(opened?.identity?.userID == "7")
        #expect(opened?.path.query == "a=1&b=2")
        #expect(self.upgraded(self.decide("/chat/room?access_token=\(token)", [origin]))?.path.query == nil)
        // Another spelling of the name is the same parameter to an upstream's framework.
        #expect(self.upgraded(self.decide("/chat/room?access%5Ftoken=\(token)&a=1", [origin]))?.path.query == "a=1")
        #expect(self.refusal(self.decide("/chat/room?access_token=\(token)&access%5ftoken=x", [origin]))?.status == .badRequest)
        #expect(self.refusal(self.decide("/chat/room?access_token=\(token)")) == CSRFCheck.handshakeRefusal)
        #expect(self.refusal(self.decide("/chat/room?access_token=\(token)", [("Origin", "https://evil.test")])) == CSRFCheck.handshakeRefusal)
        // X-Requested-With does not stand in for the origin on a handshake.
        #expect(self.refusal(self.decide("/chat/room?access_token=\(token)", [("X-Requested-With", "x")])) == CSRFCheck.handshakeRefusal)
        // Both an Authorization header and a query token: 400.
        #expect(self.refusal(self.decide("/chat/room?access_token=\(token)", [origin, ("Authorization", "Bearer \(token)")]))?.status == .badRequest)
        #expect(self.refusal(self.decide("/chat/room?access_token=a&access_token=b", [origin]))?.status == .badRequest)
        // On a public route the token is not needed, and still never forwarded.
        #expect(self.upgraded(self.decide("/live/x?access_token=\(token)&v=2"))?.path.query == "v=2")
        // Only handshakes read the parameter: on a plain request it is no credential.
        #expect(self.refusal(self.fixture.decide("/chat/room?access_token=\(token)", headers: ["Origin": "https://app.test"])) == .missingToken)
    }

    @Test func forwardAuthAnswersUpgradeRequestsAsAnyOther() throws {
        // nginx's auth_request and Traefik's ForwardAuth pass the handshake's fields along.
        let token = try self.fixture.token()
        guard case .verified(let identity) = self.decide("/auth/verify", [("Authorization", "Bearer \(token)")]) else {
            Issue.record("an upgrade request to /auth/verify was not verified")
            return
        }
        #expect(identity.userID == "7")
        #expect(self.refusal(self.decide("/auth/verify")) == .missingToken)
    }

    @Test func aCookieHandshakeNeedsAnAllowedOrigin() throws {
        let token = try self.fixture.token()
        let cookie = ("Cookie", "session=\(token)")
        #expect(self.upgraded(self.decide("/chat/room", [cookie, ("Origin", "https://app.test")]))?.identity?.userID == "7")
        #expect(self.refusal(self.decide("/chat/room", [cookie])) == CSRFCheck.handshakeRefusal)
        #expect(self.refusal(self.decide("/chat/room", [cookie, ("Origin", "https://evil.test")])) == CSRFCheck.handshakeRefusal)
        // A service sending Authorization needs no Origin.
        #expect(self.upgraded(self.decide("/chat/room", [("Authorization", "Bearer \(token)")])) != nil)
    }
}
