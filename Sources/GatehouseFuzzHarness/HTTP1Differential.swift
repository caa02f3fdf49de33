// SPDX-License-Identifier: Apache-2.0
import GatehouseHTTP1
import NIOCore
import NIOEmbedded
import NIOHTTP1
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Differential fuzzing of `HTTP1RequestParser` against NIO's llhttp-based `HTTPRequestDecoder`
/// (and, on a smaller scale, `HTTP1ResponseParser` against `HTTPResponseDecoder`).
///
/// The same bytes go to both: whole to NIO, to ours in pieces whose sizes come from a hash of the
/// input (incremental parsing, and discarding read bytes between reads, are exercised). Then:
/// - ours accepted a message (its head, or its end) that llhttp refused → trap: ours is laxer;
/// - both accepted and the parses differ → trap;
/// - ours refused what llhttp accepted → fine only for a reason in `StricterThanLLHTTP`.
///
/// Normalisation: llhttp drops the OWS before a field value but keeps the OWS after it, and NIO
/// hands the value over as is; ours removes both. RFC 9110 §5.5 excludes that OWS from the field
/// value, so NIO's values are compared with trailing SP/HTAB removed. Methods are compared by
/// their text (NIO reports SOURCE as `.RAW("SOURCE")`, ours as `.SOURCE`). Values are compared as
/// the same lossy UTF-8 decoding on both sides.
public enum HTTP1Differential {
    /// Why ours may refuse a message llhttp accepts: each is a rule llhttp does not enforce.
    enum StricterThanLLHTTP: CaseIterable {
        /// RFC 9112 §2.2: a server SHOULD ignore at least one empty line (CRLF) before the
        /// request-line; we ignore up to 8 CRLFs and refuse bare CR/LF there (llhttp skips any mix).
        case emptyLinesBeforeMessage
        /// RFC 9112 §3: request-line parts are separated by exactly one SP (llhttp takes runs).
        case requestLineSpacing
        /// RFC 9112 §3.2, RFC 3986 §2: the request-target is visible ASCII (llhttp takes HTAB, FF,
        /// obs-text).
        case targetBytes
        /// RFC 9112 §3.2.1–§3.2.4: authority-form only (and always) for CONNECT, asterisk-form only
        /// for OPTIONS; RFC 9110 §4.2.1: no empty host in an absolute-form.
        case targetForm
        /// RFC 9112 §2.3: HTTP-name is "HTTP" (llhttp also speaks RTSP/1.0 and ICE/1.0).
        case protocolNotHTTP
        /// RFC 9112 §5.1 / RFC 9110 §5.1: a field name is a token, with no whitespace before the colon.
        case fieldName
        /// RFC 9110 §8.6: Content-Length parsing must not overflow; we stop at 2^53.
        case contentLengthTooLarge
        /// RFC 9112 §6.1: a request's transfer coding must be exactly one "chunked" (llhttp takes
        /// "gzip, chunked", TE split over fields, and HTAB/empty list elements in responses), and
        /// an HTTP/1.0 message with Transfer-Encoding has faulty framing.
        case transferCoding
        /// RFC 9110 §9.3.6: a CONNECT request has no content.
        case connectWithContent
        /// RFC 9110 §6.5.1: framing and connection fields cannot be trailers.
        case trailerFraming
        /// RFC 9112 §7.1: chunk-size parsing must not overflow; we stop at 16 hex digits / 2^53,
        /// and at a chunk line longer than maxHeadBytes.
        case chunkSizeLimits
        /// RFC 9112 §7.1.1: chunk-ext = *( ";" token [ "=" ( token / quoted-string ) ] ) — llhttp
        /// takes empty names and values and token/quoted-string mixes.
        case chunkExtension
        /// Policy: our head limit counts every byte of the head, llhttp's only names, values and
        /// the target.
        case headLimit
        /// RFC 9112 §4, RFC 9110 §15: a reason phrase has no CTLs (nor a bare CR, RFC 9112 §2.2,
        /// after which llhttp skips a byte), a status code is 100–999.
        case statusLine
        /// RFC 9112 §9.6: with both "close" and "keep-alive" listed, close wins; llhttp keeps a
        /// 1.0 connection alive then and goes on reading.
        case closeWins

        static func covering(_ error: HTTP1ParseError) -> Self? {
            if error == .headTooLarge { return .headLimit }
            guard let violation = error.violation else { return nil }
            switch violation {
            case .tooManyEmptyLines, .bareLineEndBeforeMessage: return .emptyLinesBeforeMessage
            case .requestLineSpacing: return .requestLineSpacing
            case .targetByte: return .targetBytes
            case .targetForm: return .targetForm
            case .protocolNotHTTP: return .protocolNotHTTP
            case .whitespaceBeforeColon, .fieldNameByte: return .fieldName
            case .contentLengthTooLarge: return .contentLengthTooLarge
            case .requestTransferCoding, .responseTransferCoding, .transferEncodingInHTTP10: return .transferCoding
            case .connectWithContent: return .connectWithContent
            case .framingFieldInTrailers: return .trailerFraming
            case .chunkSizeTooLarge, .chunkLineTooLong: return .chunkSizeLimits
            case .chunkExtension: return .chunkExtension
            case .reasonByte, .malformedStatusLine, .bareCRInStatusLine: return .statusLine
            default: return nil
            }
        }
    }

    /// One message as either side saw it.
    struct Message: Equatable {
        var method = ""
        var target = ""
        var status = 0
        var version = HTTPVersion.http1_1
        var fields: [Field] = []
        var keepAlive = false
        var body: [UInt8] = []
        var ended = false
        var trailers: [Field]? = nil
        /// A response to HEAD: NIO computes keep-alive before it knows there is no body, so its
        /// answer is not comparable.
        var toHEAD = false
    }

    struct Field: Equatable {
        var name: String
        var value: String
    }

    /// Everything one side produced from the input.
    struct Transcript {
        var messages: [Message] = []
        var error: String? = nil
        var ours: HTTP1ParseError? = nil

        /// Index of the message the error stopped in.
        var errorMessage: Int { self.messages.last.map { $0.ended ? self.messages.count : self.messages.count - 1 } ?? 0 }

        /// Body bytes of the message under way.
        mutating func append(body: ByteBuffer) {
            self.messages[self.messages.count - 1].body += body.readableBytesView
        }

        /// The message under way ended, with these trailers.
        mutating func end(trailers: [Field]? = nil) {
            self.messages[self.messages.count - 1].ended = true
            self.messages[self.messages.count - 1].trailers = trailers
        }
    }

    /// NIO's fields as the transcript keeps them (llhttp leaves trailing white space in values).
    static func fields(_ headers: HTTPHeaders) -> [Field] {
        headers.map { Field(name: $0.name, value: Self.trimTrailingOWS($0.value)) }
    }

    public static func run(_ bytes: UnsafeRawBufferPointer) {
        let input = Array(bytes)
        let seed = Self.hash(input)
        Self.requests(input, seed: seed, limits: HTTP1Limits(), nio: Self.nioLimits(head: 32 * 1024, fields: 100))
        // Small limits exercise the limit paths on short inputs.
        let head = 64 + Int(seed % 512)
        let fields = 1 + Int((seed >> 10) % 8)
        Self.requests(input, seed: seed >> 3, limits: HTTP1Limits(maxHeadBytes: head, maxFieldCount: fields), nio: Self.nioLimits(head: head, fields: fields))
        Self.responses(input, seed: seed)
    }

    // MARK: Requests

    static func requests(_ input: [UInt8], seed: UInt64, limits: HTTP1Limits, nio: NIOHTTPDecoderLimitConfiguration) {
        let theirs = Self.nioRequests(input, limits: nio)
        let ours = Self.ourRequests(input, seed: seed, limits: limits)
        Self.compare(ours: ours, theirs: theirs, input: input, isUpgrade: Self.nioStopsAfterRequest)
    }

    static func nioLimits(head: Int, fields: Int) -> NIOHTTPDecoderLimitConfiguration {
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderFieldSize = head
        limits.maxHeaderListSize = head
        limits.maxHeaderFieldCount = fields
        return limits
    }

    static func nioRequests(_ input: [UInt8], limits: NIOHTTPDecoderLimitConfiguration) -> Transcript {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes, informationalResponseStrategy: .drop, limitConfiguration: limits)))
        var transcript = Transcript()
        do {
            try channel.writeInbound(ByteBuffer(bytes: input))
        } catch {
            transcript.error = "\(error)"
        }
        while let part = try? channel.readInbound(as: HTTPServerRequestPart.self) {
            switch part {
            case .head(let head):
                var message = Message()
                message.method = head.method.rawValue
                message.target = head.uri
                message.version = head.version
                message.fields = Self.fields(head.headers)
                message.keepAlive = head.isKeepAlive
                transcript.messages.append(message)
            case .body(let body):
                transcript.append(body: body)
            case .end(let trailers):
                transcript.end(trailers: trailers.map(Self.fields))
            }
        }
        _ = try? channel.finish(acceptAlreadyClosed: true)
        return transcript
    }

    static func ourRequests(_ input: [UInt8], seed: UInt64, limits: HTTP1Limits) -> Transcript {
        var parser = HTTP1RequestParser(limits: limits)
        var transcript = Transcript()
        var buffer = ByteBuffer()
        var random = SplitMix(seed: seed)
        feeding: for piece in Self.pieces(input.count, &random) {
            buffer.writeBytes(input[piece])
            do {
                while let event = try parser.next(from: &buffer) {
                    switch event {
                    case .head(let head):
                        var message = Message()
                        message.method = head.method.rawValue
                        message.target = head.target
                        message.version = head.version
                        message.fields = Self.fields(head.fields)
                        message.keepAlive = head.keepAlive
                        Self.checkHead(head)
                        transcript.messages.append(message)
                    case .body(let body):
                        Self.check(body.readableBytes > 0, "an empty body event")
                        transcript.append(body: body)
                    case .end(let trailers):
                        transcript.end(trailers: trailers.map(Self.fields))
                    }
                }
            } catch {
                transcript.ours = error
                transcript.error = "\(error)"
                // A failed parser keeps failing with the same error.
                buffer.writeBytes([0x0D])
                Self.check(Self.throwsSame(&parser, &buffer, error), "the parser did not stay failed after \(error)")
                break feeding
            }
            if random.next() % 4 == 0 { buffer.discardReadBytes() }
        }
        return transcript
    }

    private static func throwsSame(_ parser: inout HTTP1RequestParser, _ buffer: inout ByteBuffer, _ error: HTTP1ParseError) -> Bool {
        do {
            _ = try parser.next(from: &buffer)
            return false
        } catch let again {
            return again == error
        }
    }

    /// Invariants of a head that hold whatever the input.
    private static func checkHead(_ head: HTTP1RequestHead) {
        Self.check(head.version == .http1_0 || head.version == .http1_1, "version \(head.version)")
        if case .length(let n) = head.framing { Self.check(n >= 0, "negative length") }
        Self.check(head.framing != .untilClose, "untilClose on a request")
        Self.check(head.target.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }, "target bytes")
    }

    /// Whether llhttp stops after this request: CONNECT, or Upgrade with Connection/Proxy-Connection
    /// listing "upgrade" (NIO then hands the rest of the bytes on raw).
    static func nioStopsAfterRequest(_ message: Message) -> Bool {
        if message.method == "CONNECT" { return true }
        let upgradeField = message.fields.contains { $0.name.lowercased() == "upgrade" && !$0.value.isEmpty }
        return upgradeField && Self.lists(message, token: "upgrade")
    }

    static func lists(_ message: Message, token: String) -> Bool {
        message.fields.contains { field in
            let name = field.name.lowercased()
            guard name == "connection" || name == "proxy-connection" else { return false }
            return field.value.split(separator: ",", omittingEmptySubsequences: false).contains {
                $0.trimmingOWS().lowercased() == token
            }
        }
    }

    // MARK: Comparison

    static func compare(ours: Transcript, theirs: Transcript, input: [UInt8], isUpgrade: (Message) -> Bool) {
        func fail(_ what: String) -> Never {
            Self.trap(
                "\(what)\n ours: \(ours.messages) error \(ours.error ?? "none")\n llhttp: \(theirs.messages) error \(theirs.error ?? "none")\n input: \(Self.escape(input))"
            )
        }
        var closeWinsAt: Int? = nil
        for k in 0..<max(ours.messages.count, theirs.messages.count) {
            if k > 0, k - 1 < theirs.messages.count, theirs.messages[k - 1].ended, isUpgrade(theirs.messages[k - 1]) {
                return  // llhttp handed the rest over raw; nothing more to compare.
            }
            guard k < theirs.messages.count else {
                fail("ours accepted the head of message \(k), llhttp did not")
            }
            guard k < ours.messages.count else {
                // llhttp accepted a head ours did not: ours must have refused it for a listed reason.
                Self.checkRefusal(ours, theirs, at: k, closeWinsAt: closeWinsAt, fail)
                return
            }
            let o = ours.messages[k]
            let t = theirs.messages[k]
            guard o.method == t.method, o.target == t.target, o.version == t.version, o.status == t.status else {
                fail("start lines differ in message \(k)")
            }
            guard o.fields == t.fields else { fail("fields differ in message \(k)") }
            if o.keepAlive != t.keepAlive && !o.toHEAD {
                guard !o.keepAlive, Self.lists(o, token: "close") else { fail("keep-alive differs in message \(k)") }
                closeWinsAt = k + 1
            }
            switch (o.ended, t.ended) {
            case (true, true):
                guard o.body == t.body else { fail("bodies differ in message \(k)") }
                guard o.trailers == t.trailers else { fail("trailers differ in message \(k)") }
            case (true, false):
                fail("ours ended message \(k), llhttp did not")
            case (false, true):
                guard o.body.count <= t.body.count, Array(t.body.prefix(o.body.count)) == o.body else { fail("body bytes differ in message \(k)") }
                Self.checkRefusal(ours, theirs, at: k, closeWinsAt: closeWinsAt, fail)
                return
            case (false, false):
                guard o.body.count <= t.body.count, Array(t.body.prefix(o.body.count)) == o.body else {
                    fail("ours passed on body bytes of message \(k) that llhttp did not")
                }
            }
        }
        // Same messages; if ours failed and llhttp did not fail in the same message, it must be listed.
        if ours.error != nil, theirs.error == nil || theirs.errorMessage > ours.errorMessage {
            Self.checkRefusal(ours, theirs, at: ours.errorMessage, closeWinsAt: closeWinsAt, fail)
        }
    }

    /// Ours refused message `k` (or is still waiting for it) where llhttp went on.
    private static func checkRefusal(_ ours: Transcript, _ theirs: Transcript, at k: Int, closeWinsAt: Int?, _ fail: (String) -> Never) {
        guard let error = ours.ours else { fail("llhttp finished message \(k), ours still waits") }
        // llhttp has not decided on this head yet (the input ends in it): it checks some rules only
        // once the head is complete (an HTTP/0.9 line, Transfer-Encoding), so there is nothing to
        // hold ours to. Complete variants of the same input are what the fuzzer checks.
        if theirs.error == nil && k >= theirs.messages.count { return }
        if error == .invalid("data after a message that closes the connection"), closeWinsAt == k { return }
        guard StricterThanLLHTTP.covering(error) != nil else { fail("ours refused message \(k) for a reason not on the allow-list") }
    }

    static func check(_ condition: Bool, _ message: @autoclosure () -> String) {
        if !condition { Self.trap(message()) }
    }

    /// Traps with `message` on stderr (release builds drop preconditionFailure's message).
    static func trap(_ message: String) -> Never {
        var standardError = StandardError()
        print("HTTP1Differential: \(message)", to: &standardError)
        preconditionFailure("HTTP1Differential: \(message)")
    }

    // MARK: Responses

    /// Responses after a request head per response, HEAD when the input's hash says so.
    static func responses(_ input: [UInt8], seed: UInt64) {
        var random = SplitMix(seed: seed ^ 0x5EED)
        // One announced request per possible response (NIO refuses unsolicited ones).
        let heads = (0..<(input.count / 12 + 1)).map { _ in random.next() % 5 == 0 }
        let theirs = Self.nioResponses(input, heads: heads)
        let ours = Self.ourResponses(input, heads: heads, seed: seed)
        Self.compare(ours: ours, theirs: theirs, input: input) { $0.status == 101 }
    }

    static func nioResponses(_ input: [UInt8], heads: [Bool]) -> Transcript {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .dropBytes, informationalResponseStrategy: .forward, limitConfiguration: Self.nioLimits(head: 32 * 1024, fields: 100))))
        for toHEAD in heads {
            _ = try? channel.writeOutbound(HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: toHEAD ? .HEAD : .GET, uri: "/")))
        }
        var transcript = Transcript()
        do {
            try channel.writeInbound(ByteBuffer(bytes: input))
        } catch {
            transcript.error = "\(error)"
        }
        while let part = try? channel.readInbound(as: HTTPClientResponsePart.self) {
            switch part {
            case .head(let head):
                // An interim response has no end: close it here so both sides count alike.
                if let last = transcript.messages.last, !last.ended, last.status < 200, last.status != 0 {
                    transcript.end()
                }
                var message = Message()
                message.status = Int(head.status.code)
                message.version = head.version
                message.fields = Self.fields(head.headers)
                message.keepAlive = head.isKeepAlive
                transcript.messages.append(message)
            case .body(let body):
                transcript.append(body: body)
            case .end(let trailers):
                transcript.end(trailers: trailers.map(Self.fields))
            }
        }
        if let last = transcript.messages.last, !last.ended, last.status >= 100, last.status < 200, last.status != 101 {
            transcript.end()
        }
        _ = try? channel.finish(acceptAlreadyClosed: true)
        return transcript
    }

    static func ourResponses(_ input: [UInt8], heads: [Bool], seed: UInt64) -> Transcript {
        var parser = HTTP1ResponseParser()
        for toHEAD in heads { parser.expectResponse(toHEAD: toHEAD) }
        var transcript = Transcript()
        var buffer = ByteBuffer()
        var random = SplitMix(seed: seed ^ 0xFEED)
        var finalResponses = 0
        feeding: for piece in Self.pieces(input.count, &random) {
            buffer.writeBytes(input[piece])
            do {
                while let event = try parser.next(from: &buffer) {
                    switch event {
                    case .head(let head):
                        if let last = transcript.messages.last, !last.ended, last.status < 200, last.status != 101 {
                            transcript.end()
                        }
                        var message = Message()
                        message.status = head.status
                        message.version = head.version
                        message.fields = Self.fields(head.fields)
                        message.keepAlive = head.keepAlive
                        if head.status >= 200 || head.status == 101 {
                            message.toHEAD = finalResponses < heads.count && heads[finalResponses]
                            finalResponses += 1
                        }
                        transcript.messages.append(message)
                    case .body(let body):
                        transcript.append(body: body)
                    case .end(let trailers):
                        transcript.end(trailers: trailers.map(Self.fields))
                    }
                }
            } catch {
                transcript.ours = error
                transcript.error = "\(error)"
                break feeding
            }
            if random.next() % 4 == 0 { buffer.discardReadBytes() }
        }
        if let last = transcript.messages.last, !last.ended, last.status < 200, last.status != 101 {
            transcript.end()
        }
        return transcript
    }

    // MARK: Helpers

    static func fields(_ fields: HTTP1Fields) -> [Field] {
        (0..<fields.count).map { Field(name: fields.name(at: $0), value: fields.value(at: $0)) }
    }

    static func trimTrailingOWS(_ value: String) -> String {
        var utf8 = Substring(value).utf8
        while let last = utf8.last, last == 0x20 || last == 0x09 { utf8 = utf8.dropLast() }
        return String(Substring(utf8))
    }

    /// Piece boundaries: byte by byte, small pieces, or large ones, chosen by the input's hash.
    static func pieces(_ count: Int, _ random: inout SplitMix) -> [Range<Int>] {
        let maxPiece: UInt64
        switch random.next() % 4 {
        case 0: maxPiece = 1
        case 1: maxPiece = 8
        case 2: maxPiece = 97
        default: maxPiece = UInt64(max(count, 1))
        }
        var result: [Range<Int>] = []
        var start = 0
        while start < count {
            let length = min(count - start, 1 + Int(random.next() % maxPiece))
            result.append(start..<(start + length))
            start += length
        }
        return result
    }

    static func hash(_ bytes: [UInt8]) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return h
    }

    static func escape(_ bytes: [UInt8]) -> String {
        var s = ""
        for b in bytes.prefix(2048) {
            switch b {
            case 0x0D: s += "\\r"
            case 0x0A: s += "\\n"
            case 0x5C: s += "\\\\"
            case 0x20...0x7E: s.unicodeScalars.append(Unicode.Scalar(b))
            default: s += "\\x" + String(b, radix: 16)
            }
        }
        return s
    }
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        var string = string
        string.withUTF8 { bytes in _ = Glibc.write(2, bytes.baseAddress, bytes.count) }
    }
}

/// A small deterministic generator (SplitMix64).
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { self.state = seed }
    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension Substring {
    fileprivate func trimmingOWS() -> Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return s
    }
}
