// SPDX-License-Identifier: Apache-2.0
import Dispatch
import GatehouseHTTP
import GatehouseJOSE
public import Logging
import NIOCore
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where access-log lines go: a serial queue off the event loops does the writing, so a request
/// never waits on a file or a pipe.
public final class AccessLogSink: Sendable {
    /// How a line looks: one JSON object, or `key=value` text for a person at a terminal.
    public enum Format: Sendable {
        case json
        case text
    }

    public let format: Format
    private let queue = DispatchQueue(label: "gatehouse.access-log")
    private let write: @Sendable ([UInt8]) -> Void

    /// Lines to standard output.
    public static func standardOutput(format: Format) -> AccessLogSink {
        AccessLogSink(format: format) { bytes in writeAll(bytes, to: STDOUT_FILENO) }
    }

    public init(format: Format = .json, write: @escaping @Sendable ([UInt8]) -> Void) {
        self.format = format
        self.write = write
    }

    func submit(_ bytes: [UInt8]) {
        self.queue.async { self.write(bytes) }
    }

    /// Waits until everything submitted so far is written.
    public func flush() {
        self.queue.sync {}
    }
}

/// One event loop's access log: a swift-log `Logger` whose handler appends JSON lines to this
/// loop's buffer, handed to the sink every 100 ms or at 64 KiB. Confined to its loop.
final class LoopAccessLog {
    private let sink: AccessLogSink
    private var buffer: [UInt8] = []
    private(set) var logger: Logger!
    /// The lines' timestamps, their date and time to the second made once per second.
    let clock = LogClock()
    private let eventLoop: any EventLoop
    private var flushTask: Scheduled<Void>?

    /// Must be made on `eventLoop`.
    init(sink: AccessLogSink, eventLoop: any EventLoop) {
        self.sink = sink
        self.eventLoop = eventLoop
        self.buffer.reserveCapacity(64 * 1024)
        self.logger = Logger(label: "gatehouse.access") { _ in LineHandler(log: self, format: sink.format) }
        self.scheduleFlush()
    }

    private func scheduleFlush() {
        self.flushTask = self.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(100)) {
            self.flush()
            self.scheduleFlush()
        }
    }

    /// Appends one line, written by `line` straight into the buffer.
    func write(_ line: (inout [UInt8]) -> Void) {
        line(&self.buffer)
        if self.buffer.count >= 64 * 1024 { self.flush() }
    }

    func flush() {
        guard !self.buffer.isEmpty else { return }
        self.sink.submit(self.buffer)
        self.buffer.removeAll(keepingCapacity: true)
    }

    func stop() {
        self.flushTask?.cancel()
        self.flush()
    }
}

@available(*, unavailable)
extension LoopAccessLog: Sendable {}

/// Formats a log record as one line: JSON (`time`, `level`, `msg`, then the metadata in key order;
/// `stringConvertible` numbers as JSON numbers, strings as strings), or text for a terminal
/// (`time msg key=value …`, values with spaces or quotes quoted).
///
/// `@unchecked Sendable`: swift-log requires it, but each instance belongs to one event loop's
/// `LoopAccessLog` and is only called from that loop.
struct LineHandler: LogHandler, @unchecked Sendable {
    unowned let log: LoopAccessLog
    let format: AccessLogSink.Format
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        // The access log passes all its fields per call: merge only when the handler has its own.
        let merged = self.metadata.isEmpty ? event.metadata ?? [:] : self.metadata.merging(event.metadata ?? [:]) { $1 }
        let message = event.message.description
        let clock = self.log.clock
        self.log.write { line in
            switch self.format {
            case .text: line += Self.textLine(time: clock.now(), message: message, merged).utf8
            case .json: Self.appendJSONLine(time: clock.append, level: event.level, message: message, merged, to: &line)
            }
        }
    }

    /// `{"time", "level", "msg", then the metadata in key order}`: one JSON object and a newline,
    /// appended to `line` byte by byte (`time` writes the timestamp; strings are escaped by
    /// GatehouseJOSE's JSON writer).
    static func appendJSONLine(
        time: (inout [UInt8]) -> Void, level: Logger.Level, message: String, _ metadata: Logger.Metadata, to line: inout [UInt8]
    ) {
        line += #"{"time":""#.utf8
        time(&line)
        line += #"","level":""#.utf8
        line += level.rawValue.utf8
        line += #"","msg":"#.utf8
        JSONValue.writeString(message, to: &line)
        for key in metadata.keys.sorted() {
            line.append(UInt8(ascii: ","))
            JSONValue.writeString(key, to: &line)
            line.append(UInt8(ascii: ":"))
            switch metadata[key]! {
            case .stringConvertible(let value): line += value.description.utf8
            case .string(let value): JSONValue.writeString(value, to: &line)
            default: JSONValue.writeString("\(metadata[key]!)", to: &line)
            }
        }
        line += "}\n".utf8
    }

    /// `time msg key=value …`: what a person reads at a terminal.
    static func textLine(time: String, message: String, _ metadata: Logger.Metadata) -> String {
        var line = time + " " + message
        for key in metadata.keys.sorted() {
            let value = "\(metadata[key]!)"
            let plain = !value.isEmpty && value.utf8.allSatisfy { $0 > 0x20 && $0 != 0x22 && $0 != 0x7F }
            line += " " + key + "=" + (plain ? value : "\"" + value.split(separator: "\"", omittingEmptySubsequences: false).joined(separator: "\\\"") + "\"")
        }
        return line + "\n"
    }
}

/// One event loop's clock for its log lines: RFC 3339 UTC with milliseconds, the part up to the
/// seconds (`gmtime_r`, which takes glibc's time-zone lock) made once per second.
final class LogClock {
    private var second = -1
    private var text = ""

    /// Appends now, to the millisecond, to `line`; allocates nothing (the second's part is kept,
    /// the fraction is a small string).
    func append(to line: inout [UInt8]) {
        let (dateTime, fraction) = self.parts()
        line += dateTime.utf8
        line += fraction.utf8
    }

    /// Now, to the millisecond.
    func now() -> String {
        let (dateTime, fraction) = self.parts()
        return dateTime + fraction
    }

    private func parts() -> (dateTime: String, fraction: String) {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let second = Int(now.tv_sec)
        if second != self.second {
            self.text = RFC3339.dateTime(second: second)
            self.second = second
        }
        return (self.text, RFC3339.fraction(milliseconds: Int(now.tv_nsec / 1_000_000)))
    }
}

/// swift-log's handler for everything but the access log — JWKS fetches and their recoveries,
/// revocation feeds failing and reconnecting, refused keys — on standard error, one line per event
/// in the access log's format: a JSON object (`time`, `level`, `msg`, `logger`, then the event's
/// fields) or, for a person at a terminal, `time level msg key=value …`.
public struct EventLogHandler: LogHandler {
    public let label: String
    public let format: AccessLogSink.Format
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    private let write: @Sendable (String) -> Void

    public init(label: String, format: AccessLogSink.Format, write: @escaping @Sendable (String) -> Void = EventLogHandler.standardError) {
        self.label = label
        self.format = format
        self.write = write
    }

    private static let bootstrapped = Mutex(false)

    /// Makes this the process's swift-log handler (`serve` calls it once it knows `log_format`);
    /// later calls change nothing, since swift-log can be bootstrapped only once.
    public static func bootstrap(format: AccessLogSink.Format) {
        let first = Self.bootstrapped.withLock { done in
            defer { done = true }
            return !done
        }
        guard first else { return }
        LoggingSystem.bootstrap { label in EventLogHandler(label: label, format: format) }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = self.metadata.merging(event.metadata ?? [:]) { $1 }
        fields["logger"] = .string(self.label)
        let time = RFC3339.now()
        switch self.format {
        case .json:
            var line: [UInt8] = []
            LineHandler.appendJSONLine(time: { $0 += time.utf8 }, level: event.level, message: event.message.description, fields, to: &line)
            self.write(String(decoding: line, as: UTF8.self))
        case .text:
            self.write(LineHandler.textLine(time: time, message: event.level.rawValue + " " + event.message.description, fields))
        }
    }

    /// One `write` per line, so that lines from several threads do not interleave.
    public static let standardError: @Sendable (String) -> Void = { line in writeAll(Array(line.utf8), to: STDERR_FILENO) }
}

/// Writes all of `bytes` to `descriptor`, in as few `write`s as it takes; gives up on an error
/// (a closed pipe: the log has nowhere to go).
private func writeAll(_ bytes: [UInt8], to descriptor: Int32) {
    var offset = 0
    while offset < bytes.count {
        let written = bytes[offset...].withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
        guard written > 0 else { return }
        offset += written
    }
}
