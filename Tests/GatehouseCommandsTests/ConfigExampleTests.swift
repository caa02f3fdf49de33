// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

/// `gateway.conf.example` at the repository root: valid as shipped, and documenting every key.
@Suite("gateway.conf.example")
struct ConfigExampleTests {
    static let example = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("gateway.conf.example")

    @Test("passes config check as shipped, with no environment variable set")
    func checksAsShipped() throws {
        let environment = ProcessInfo.processInfo.environment.keys.filter { $0.hasPrefix("GATEHOUSE_") }
        let check = try CLI.run(["config", "check", "--config", Self.example.path], environment: Dictionary(uniqueKeysWithValues: environment.map { ($0, "") }))
        #expect(check.status == 0, "\(check.error)")
    }

    @Test("names every key the effective configuration has, with its issuer switched on")
    func documentsEveryKey() throws {
        let text = try String(contentsOf: Self.example, encoding: .utf8)
        let directory = try temporaryDirectory()
        let kid = try CLI.run(["keys", "generate", "--out", directory.path]).output.trimmingCharacters(in: .whitespacesAndNewlines)
        let enabled = text
            .replacingOccurrences(of: "  enabled: false", with: "  enabled: true")
            .replacingOccurrences(of: "key_file: keys/es256.pem", with: "key_file: \(directory.path)/\(kid).pem")
        let copy = directory.appendingPathComponent("gateway.conf")
        try enabled.write(to: copy, atomically: true, encoding: .utf8)
        let check = try CLI.run(
            ["config", "check", "--config", copy.path],
            environment: ["GATEHOUSE_REFRESH_SECRET": "refresh-secret-0123456789abcdef0123456789", "GATEHOUSE_REVOCATION_SECRET": "feed-secret-0123456789abcdef0123456789"]
        )
        #expect(check.status == 0, "\(check.error)")
        #expect(check.output.contains("cookies: false"), "the issuer's keys were printed")
        // Every `name:` of the effective configuration, in block or inline form.
        let names = Set(check.output.matches(of: /([a-z_]+):/).map { String($0.1) }).subtracting(["http", "https", "sqlite", "postgres"])
        #expect(names.count > 50)
        let missing = names.filter { !text.contains("\($0):") }.sorted()
        #expect(missing.isEmpty, "keys missing from gateway.conf.example: \(missing)")
    }
}
