// SPDX-License-Identifier: Apache-2.0
import Dispatch
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
        AccessLogSink(format: format) { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = bytes[offset...].withUnsafeBytes { Glibc.write(STDOUT_FILENO, $0.baseAddress, $0.count) }
                guard written > 0 else { return }
                offset += written
            }
        }
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
    /// The timestamps' date and time to the second, made once per second.
    let clock = SecondPrefix()
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

    func append(_ line: [UInt8]) {
        self.buffer += line
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
        let line: String
        switch self.format {
        case .text: line = Self.textLine(time: self.timestamp(), message: event.message.description, merged)
        case .json: line = Self.jsonLine(time: self.timestamp(), level: event.level, message: event.message.description, merged)
        }
        self.log.append(Array(line.utf8))
    }

    /// `{"time", "level", "msg", then the metadata in key order}`: one JSON object and a newline.
    static func jsonLine(time: String, level: Logger.Level, message: String, _ metadata: Logger.Metadata) -> String {
        var line = "{\"time\":\"" + time + "\",\"level\":\"" + level.rawValue + "\",\"msg\":"
        Self.appendString(message, to: &line)
        for key in metadata.keys.sorted() {
            line += ","
            Self.appendString(key, to: &line)
            line += ":"
            switch metadata[key]! {
            case .stringConvertible(let value): line += value.description
            case .string(let value): Self.appendString(value, to: &line)
            default: Self.appendString("\(metadata[key]!)", to: &line)
            }
        }
        return line + "}\n"
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

    /// A JSON string; values needing no escape (the usual case) are copied whole.
    private static func appendString(_ value: String, to line: inout String) {
        if value.utf8.allSatisfy({ $0 >= 0x20 && $0 != 0x22 && $0 != 0x5C && $0 != 0x7F }) {
            line += "\"" + value + "\""
            return
        }
        line += "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": line += "\\\""
            case "\\": line += "\\\\"
            case "\u{00}"..."\u{1F}", "\u{7F}": line += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count) + String(scalar.value, radix: 16)
            default: line.unicodeScalars.append(scalar)
            }
        }
        line += "\""
    }

    /// RFC 3339 UTC with milliseconds; the part up to the seconds is made once per second.
    private func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let milliseconds = Int(now.tv_nsec / 1_000_000)
        let millis = milliseconds < 10 ? "00\(milliseconds)" : milliseconds < 100 ? "0\(milliseconds)" : "\(milliseconds)"
        return self.log.clock.prefix(for: Int(now.tv_sec)) + "." + millis + "Z"
    }
}

/// The `YYYY-MM-DDTHH:MM:SS` of the current second, kept per event loop.
final class SecondPrefix {
    private var second = -1
    private var text = ""

    func prefix(for second: Int) -> String {
        if second != self.second {
            var parts = tm()
            var seconds = second
            gmtime_r(&seconds, &parts)
            func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
            self.text = "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))"
            self.second = second
        }
        return self.text
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
        let time = Self.timestamp()
        switch self.format {
        case .json:
            self.write(LineHandler.jsonLine(time: time, level: event.level, message: event.message.description, fields))
        case .text:
            self.write(LineHandler.textLine(time: time, message: event.level.rawValue + " " + event.message.description, fields))
        }
    }

    /// One `write` per line, so that lines from several threads do not interleave.
    public static let standardError: @Sendable (String) -> Void = { line in
        var bytes = Array(line.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { Glibc.write(STDERR_FILENO, $0.baseAddress, $0.count) }
            guard written > 0 else { return }
            bytes = bytes.dropFirst(written)
        }
    }

    /// RFC 3339 UTC with milliseconds.
    private static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let milliseconds = Int(now.tv_nsec / 1_000_000)
        let millis = milliseconds < 10 ? "00\(milliseconds)" : milliseconds < 100 ? "0\(milliseconds)" : "\(milliseconds)"
        return SecondPrefix().prefix(for: Int(now.tv_sec)) + "." + millis + "Z"
    }
}
