// SPDX-License-Identifier: Apache-2.0
import GatehouseFuzzHarness
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Every seed (and every regression input saved there) through the differential harness: a
/// disagreement traps, failing the run.
@Suite struct CorpusReplayTests {
    static let corpus: String = {
        var path = #filePath
        for _ in 0..<3 { path = String(path[..<path.lastIndex(of: "/")!]) }
        return path + "/Fuzz/corpus/http1"
    }()

    static func files() -> [String] {
        guard let dir = opendir(Self.corpus) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if !name.hasPrefix(".") { names.append(Self.corpus + "/" + name) }
        }
        return names.sorted()
    }

    @Test func corpusIsThere() {
        #expect(Self.files().count >= 20)
    }

    @Test(arguments: files())
    func replay(_ path: String) {
        var count = 0
        GatehouseFuzzHarness.replay([path]) { bytes in
            count += 1
            HTTP1Differential.run(bytes)
        }
        #expect(count == 1)
    }
}
