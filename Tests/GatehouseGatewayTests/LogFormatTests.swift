// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatehouseHTTP
@testable import GatehouseGateway
import Logging
import Testing

@Suite("Log lines and their timestamps")
struct LogFormatTests {
    static let withMilliseconds = #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"#

    @Test("RFC 3339 UTC: with and without milliseconds, before the epoch, now")
    func rfc3339() {
        #expect(RFC3339.format(milliseconds: 0) == "1970-01-01T00:00:00.000Z")
        #expect(RFC3339.format(milliseconds: 1_796_685_220_007) == "2026-12-07T23:13:40.007Z")
        #expect(RFC3339.format(milliseconds: 1_796_685_220_999, fraction: false) == "2026-12-07T23:13:40Z")
        #expect(RFC3339.format(milliseconds: 951_782_400_123) == "2000-02-29T00:00:00.123Z")
        #expect(RFC3339.format(milliseconds: -1) == "1969-12-31T23:59:59.999Z")
        #expect(RFC3339.format(milliseconds: 253_402_300_799_000, fraction: false) == "9999-12-31T23:59:59Z")
        #expect(RFC3339.dateTime(second: 86_399) == "1970-01-01T23:59:59")
        #expect(RFC3339.fraction(milliseconds: 5) == ".005Z" && RFC3339.fraction(milliseconds: 999) == ".999Z")
        #expect(RFC3339.now().range(of: Self.withMilliseconds, options: .regularExpression) != nil)
        let clock = LogClock()
        for _ in 0..<3 {
            var line: [UInt8] = []
            clock.append(to: &line)
            #expect(clock.now().range(of: Self.withMilliseconds, options: .regularExpression) != nil)
            #expect(String(decoding: line, as: UTF8.self).range(of: Self.withMilliseconds, options: .regularExpression) != nil)
        }
    }

    @Test("a JSON log line: time, level, msg, the fields in key order; strings escaped, numbers as numbers")
    func jsonLine() throws {
        var line: [UInt8] = []
        let fields: Logger.Metadata = [
            "path": .string("/a\"b\\c\n\u{01}é"), "status": .stringConvertible(200), "list": .array([.string("x")]),
        ]
        LineHandler.appendJSONLine(time: { $0 += "2026-12-07T23:13:40.007Z".utf8 }, level: .info, message: "request \"1\"", fields, to: &line)
        let text = String(decoding: line, as: UTF8.self)
        #expect(text == #"{"time":"2026-12-07T23:13:40.007Z","level":"info","msg":"request \"1\"","list":"[\"x\"]","path":"/a\"b\\c\n\u0001é","status":200}"# + "\n")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.dropLast())) as? [String: Any])
        #expect(object["path"] as? String == "/a\"b\\c\n\u{01}é" && object["status"] as? Int == 200)
    }

    @Test("request ids: 32 lower-case hex digits, the process's random half fixed, the counter's half counting")
    func requestIDs() {
        let first = RequestIDs.next()
        let second = RequestIDs.next()
        for id in [first, second] {
            #expect(id.count == 32 && id.utf8.allSatisfy { Array("0123456789abcdef".utf8).contains($0) }, "\(id)")
        }
        #expect(first.prefix(16) == second.prefix(16))
        #expect(UInt64(second.suffix(16), radix: 16)! > UInt64(first.suffix(16), radix: 16)!)
    }
}
