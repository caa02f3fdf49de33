// SPDX-License-Identifier: Apache-2.0
@testable import GatehouseGateway
import NIOCore
import Testing

/// The connection state machine alone: events in, decisions out, time given — no sockets, no sleeps.
@Suite struct ConnectionStateMachineTests {
    typealias Machine = ConnectionStateMachine
    static let start = NIODeadline.uptimeNanoseconds(1_000_000_000_000)
    static let timeouts = Machine.Timeouts(head: .seconds(10), idle: .seconds(60))

    func at(_ seconds: Int64) -> NIODeadline { Self.start + .seconds(seconds) }

    func machine() -> Machine { Machine(timeouts: Self.timeouts, now: Self.start) }

    /// A forwarded request whose upstream answers, up to the response head.
    func forwarding(keepAlive: Bool = true) -> Machine {
        var machine = self.machine()
        machine.requestHead(keepAlive: keepAlive, plan: .forward(deadline: self.at(30)), now: self.at(1))
        let r1 = machine.upstreamConnected(now: self.at(1))
        #expect(r1)
        return machine
    }

    @Test func anIdleConnectionClosesAfterTheIdleTimeout() {
        var machine = self.machine()
        #expect(machine.nextDeadline == self.at(60))
        let r2 = machine.expire(now: self.at(59))
        #expect(r2 == nil)
        let r3 = machine.expire(now: self.at(60))
        #expect(r3 == .close)
        #expect(machine.state == .closing)
    }

    @Test func theHeadTimeoutRunsFromTheFirstByteOfAHead() {
        var machine = self.machine()
        machine.headBytesArrived(now: self.at(5))
        #expect(machine.nextDeadline == self.at(15))
        // More bytes of the same head do not push the deadline on.
        machine.headBytesArrived(now: self.at(14))
        let r4 = machine.expire(now: self.at(15))
        #expect(r4 == .close)
    }

    @Test func aForwardedExchangeEndsIdleAndTheUpstreamIsReused() {
        var machine = self.forwarding()
        #expect(machine.wantsInput)
        let r5 = machine.requestEnded(now: self.at(1))
        #expect(r5 == .endUpstreamRequest)
        #expect(!machine.wantsInput)
        machine.upstreamResponseHead(reusable: true, closesClient: false)
        #expect(!machine.closesAfterResponse)
        let end = machine.upstreamResponseEnded(now: self.at(2))
        #expect(end.reuseUpstream)
        #expect(end.next == .readNext)
        #expect(machine.state == .idle(deadline: self.at(62), headStarted: false))
    }

    @Test func aRequestThatAsksToCloseClosesAfterItsResponse() {
        var machine = self.forwarding(keepAlive: false)
        _ = machine.requestEnded(now: self.at(1))
        machine.upstreamResponseHead(reusable: true, closesClient: false)
        #expect(machine.closesAfterResponse)
        let r6 = machine.upstreamResponseEnded(now: self.at(2))
        #expect(r6.next == .closeAfterFlush)
        #expect(machine.state == .closing)
        #expect(!machine.wantsInput)
        #expect(!machine.shouldRead(hasBufferedInput: false))
    }

    @Test func aBodyTheClientCannotDelimitButByClosingClosesTheConnection() {
        var machine = self.forwarding()
        _ = machine.requestEnded(now: self.at(1))
        machine.upstreamResponseHead(reusable: false, closesClient: true)
        #expect(machine.closesAfterResponse)
        let r7 = machine.upstreamResponseEnded(now: self.at(2))
        #expect(r7 == (false, .closeAfterFlush))
    }

    @Test func pipelinedBytesWaitInTheSocketWhileAnExchangeRuns() {
        var machine = self.forwarding()
        _ = machine.requestEnded(now: self.at(1))
        // Reads stay on while the response comes (a client that leaves is seen) ...
        #expect(machine.shouldRead(hasBufferedInput: false))
        // ... until bytes of a next request are in: they are not parsed, reads pause.
        #expect(!machine.wantsInput)
        #expect(!machine.shouldRead(hasBufferedInput: true))
        machine.upstreamResponseHead(reusable: true, closesClient: false)
        let r8 = machine.upstreamResponseEnded(now: self.at(2))
        #expect(r8.next == .readNext)
        #expect(machine.wantsInput)
        #expect(machine.shouldRead(hasBufferedInput: true))
    }

    @Test func theBodyIsHeldWhileConnectingAndWhileTheUpstreamIsFull() {
        var machine = self.machine()
        machine.requestHead(keepAlive: true, plan: .forward(deadline: self.at(30)), now: self.at(1))
        #expect(!machine.wantsInput)
        #expect(!machine.shouldRead(hasBufferedInput: false))
        // The body timer is off while the gateway holds the reads: only the route's timeout runs.
        #expect(machine.nextDeadline == self.at(30))
        let r9 = machine.upstreamConnected(now: self.at(1))
        #expect(r9)
        let r10 = machine.requestBodyPart(now: self.at(2))
        #expect(r10 == .upstream)
        machine.upstreamWritabilityChanged(false, now: self.at(3))
        #expect(!machine.wantsInput)
        #expect(!machine.shouldRead(hasBufferedInput: false))
        let r11 = machine.expire(now: self.at(29))
        #expect(r11 == nil)
        machine.upstreamWritabilityChanged(true, now: self.at(29))
        #expect(machine.wantsInput)
        #expect(machine.nextDeadline == self.at(30))
    }

    @Test func aStalledBodyIsAnswered408BeforeAnyResponseAndTheConnectionCloses() {
        var machine = self.forwarding()
        let r12 = machine.requestBodyPart(now: self.at(2))
        #expect(r12 == .upstream)
        let r13 = machine.expire(now: self.at(31))
        #expect(r13 == .upstreamTimedOut)  // the route's timeout comes first here
        var patient = self.machine()
        patient.requestHead(keepAlive: true, plan: .forward(deadline: self.at(300)), now: self.at(1))
        let r14 = patient.upstreamConnected(now: self.at(1))
        #expect(r14)
        let r15 = patient.requestBodyPart(now: self.at(2))
        #expect(r15 == .upstream)
        let r16 = patient.expire(now: self.at(61))
        #expect(r16 == nil)
        let r17 = patient.expire(now: self.at(62))
        #expect(r17 == .bodyStalled)
        let r18 = patient.abandon()
        #expect(r18)
        #expect(patient.closesAfterResponse)
        #expect(!patient.wantsInput)
        let r19 = patient.responseEnded(now: self.at(62))
        #expect(r19 == .closeAfterFlush)
    }

    @Test func aStalledBodyAfterTheResponseBeganClosesWithoutAnAnswer() {
        var machine = self.forwarding()
        machine.upstreamResponseHead(reusable: true, closesClient: false)
        let r20 = machine.abandon()
        #expect(!r20)
        #expect(machine.state == .closing)
    }

    @Test func aResponseBeforeTheEndOfItsRequestDropsTheRestAndDoesNotReuseTheUpstream() {
        var machine = self.forwarding()
        let r21 = machine.requestBodyPart(now: self.at(1))
        #expect(r21 == .upstream)
        machine.upstreamResponseHead(reusable: true, closesClient: false)
        let end = machine.upstreamResponseEnded(now: self.at(2))
        #expect(!end.reuseUpstream)
        #expect(end.next == .awaitRequestEnd)
        let r22 = machine.requestBodyPart(now: self.at(3))
        #expect(r22 == .discard)
        let r23 = machine.requestEnded(now: self.at(4))
        #expect(r23 == .readNext)
        #expect(machine.state == .idle(deadline: self.at(64), headStarted: false))
    }

    @Test func anUpstreamThatTimesOutIsAnswered504AndTheConnectionStays() {
        var machine = self.forwarding()
        _ = machine.requestEnded(now: self.at(1))
        let r24 = machine.expire(now: self.at(30))
        #expect(r24 == .upstreamTimedOut)
        let r25 = machine.upstreamFailed()
        #expect(r25)
        #expect(!machine.closesAfterResponse)
        let r26 = machine.responseEnded(now: self.at(30))
        #expect(r26 == .readNext)
    }

    @Test func anUpstreamThatClosesMidResponseClosesTheClient() {
        var machine = self.forwarding()
        machine.upstreamResponseHead(reusable: true, closesClient: false)
        let r27 = machine.upstreamFailed()
        #expect(!r27)
        #expect(machine.state == .closing)
    }

    @Test func anUpstreamConnectionThatArrivesTooLateIsGivenBack() {
        var machine = self.machine()
        machine.requestHead(keepAlive: true, plan: .forward(deadline: self.at(30)), now: self.at(1))
        let r28 = machine.expire(now: self.at(30))
        #expect(r28 == .upstreamTimedOut)
        let r29 = machine.upstreamFailed()
        #expect(r29)
        let r30 = machine.upstreamConnected(now: self.at(1))
        #expect(!r30)
    }

    @Test func aHeadTheGatewayRefusesIsAnsweredAndCloses() {
        var machine = self.machine()
        machine.headBytesArrived(now: self.at(1))
        let r31 = machine.abandon()
        #expect(r31)
        #expect(machine.closesAfterResponse)
        let r32 = machine.responseEnded(now: self.at(1))
        #expect(r32 == .closeAfterFlush)
    }

    @Test func anAnswerThatClosesIgnoresTheRest() {
        var machine = self.machine()
        machine.requestHead(keepAlive: true, plan: .answer(closes: true), now: self.at(1))
        #expect(machine.closesAfterResponse)
        let r33 = machine.responseEnded(now: self.at(1))
        #expect(r33 == .closeAfterFlush)
        #expect(!machine.wantsInput)
    }

    @Test func anAnswerWhileTheBodyStillComesWaitsForItsEnd() {
        var machine = self.machine()
        machine.requestHead(keepAlive: true, plan: .answer(closes: false), now: self.at(1))
        let r34 = machine.responseEnded(now: self.at(1))
        #expect(r34 == .awaitRequestEnd)
        #expect(machine.wantsInput)
        let r35 = machine.requestBodyPart(now: self.at(2))
        #expect(r35 == .discard)
        #expect(machine.nextDeadline == self.at(62))
        let r36 = machine.requestEnded(now: self.at(3))
        #expect(r36 == .readNext)
        #expect(machine.wantsInput)
    }

    @Test func aLocalRequestIsReadThenAnswered() {
        var machine = self.machine()
        machine.requestHead(keepAlive: true, plan: .local, now: self.at(1))
        let r37 = machine.requestBodyPart(now: self.at(1))
        #expect(r37 == .local)
        let r38 = machine.requestEnded(now: self.at(1))
        #expect(r38 == .respondLocally)
        #expect(!machine.wantsInput)
        #expect(machine.nextDeadline == nil)
        let r39 = machine.responseEnded(now: self.at(2))
        #expect(r39 == .readNext)
    }

    @Test func drainingClosesAnIdleConnectionAndEndsAnExchangeWithClose() {
        var idle = self.machine()
        let r40 = idle.drain(now: self.at(1))
        #expect(r40 == .closeNow)
        var busy = self.forwarding()
        let r41 = busy.drain(now: self.at(1))
        #expect(r41 == .finishExchange)
        #expect(busy.closesAfterResponse)
        _ = busy.requestEnded(now: self.at(1))
        busy.upstreamResponseHead(reusable: true, closesClient: false)
        let r42 = busy.upstreamResponseEnded(now: self.at(2))
        #expect(r42.next == .closeAfterFlush)
    }

    @Test func aClientThatTakesNothingIsClosedAfterTheIdleTimeout() {
        var machine = self.forwarding()
        _ = machine.requestEnded(now: self.at(1))
        machine.upstreamResponseHead(reusable: true, closesClient: false)
        machine.clientWritabilityChanged(false, now: self.at(2))
        #expect(machine.nextDeadline == self.at(62))
        machine.clientWritabilityChanged(true, now: self.at(10))
        #expect(machine.nextDeadline == nil)
        machine.clientWritabilityChanged(false, now: self.at(11))
        let r43 = machine.expire(now: self.at(71))
        #expect(r43 == .close)
    }

    @Test func aClientThatTakesNoAnswersSendsNoMoreRequests() {
        var machine = self.machine()
        machine.clientWritabilityChanged(false, now: self.at(1))
        // Its pipelined requests would each add an answer to what it does not read.
        #expect(!machine.wantsInput)
        #expect(!machine.shouldRead(hasBufferedInput: true))
        machine.clientWritabilityChanged(true, now: self.at(2))
        #expect(machine.wantsInput)
    }

    @Test func aDrainWhileAnAnsweredBodyIsDroppedClosesAtItsEnd() {
        var machine = self.machine()
        machine.requestHead(keepAlive: true, plan: .answer(closes: false), now: self.at(1))
        let next = machine.responseEnded(now: self.at(1))
        #expect(next == .awaitRequestEnd)
        let drain = machine.drain(now: self.at(1))
        #expect(drain == .finishExchange)
        let end = machine.requestEnded(now: self.at(2))
        #expect(end == .close)
        #expect(machine.state == .closing)
    }

    @Test func theBodyTimerStartsWhenTheUpstreamIsConnected() {
        var machine = self.machine()
        machine.requestHead(keepAlive: true, plan: .forward(deadline: self.at(300)), now: self.at(1))
        let connected = machine.upstreamConnected(now: self.at(50))
        #expect(connected)
        // Not the head's time plus the idle timeout (61): connecting was the gateway's time.
        #expect(machine.nextDeadline == self.at(110))
    }
}
