// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatehouseFuzzHarness
import Testing

/// Every input of the fuzzers' seed corpus and every crash they ever found (Fuzz/regressions/,
/// named `<harness>-…`) goes through the harness again: a crash found once stays fixed.
@Suite("Fuzz corpus and regressions")
struct CorpusReplayTests {
    static let fuzz = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fuzz")

    static func files(_ folder: String) -> [URL] {
        let url = Self.fuzz.appendingPathComponent(folder)
        return ((try? FileManager.default.contentsOfDirectory(at: url, includingPropertiesForKeys: nil)) ?? [])
            .filter { !$0.lastPathComponent.hasPrefix(".") }.sorted { $0.path < $1.path }
    }

    static let harnesses: [String: @Sendable (UnsafeRawBufferPointer) -> Void] = [
        "jose": FuzzHarness.jose, "config": FuzzHarness.config, "head": FuzzHarness.head, "websocket": FuzzHarness.webSocketFrames,
    ]

    @Test("the seed corpus of each harness", arguments: ["jose", "config", "head", "websocket"])
    func corpus(_ harness: String) throws {
        let inputs = Self.files("corpus/\(harness)")
        #expect(!inputs.isEmpty)
        for input in inputs { try Data(contentsOf: input).withUnsafeBytes { Self.harnesses[harness]!($0) } }
    }

    @Test("every crash found so far")
    func regressions() throws {
        for input in Self.files("regressions") {
            let harness = String(input.lastPathComponent.prefix { $0 != "-" })
            let run = try #require(Self.harnesses[harness], "\(input.lastPathComponent): name it <harness>-…")
            try Data(contentsOf: input).withUnsafeBytes { run($0) }
        }
    }
}
