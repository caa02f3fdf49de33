// SPDX-License-Identifier: Apache-2.0
import GatehouseJOSE
import Testing

/// Seeded mutation: the same inputs on every run, so a failure reproduces.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite("Random and mutated tokens: always a reason, never a crash")
struct RobustnessTests {
    @Test("5000 mutations of a valid token are each rejected with a reason")
    func mutatedTokens() throws {
        let factory = try TokenFactory()
        let verifier = try factory.verifier()
        let original = try factory.es256()
        let bytes = Array(original.utf8)
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ \u{00}".utf8)
        var random = SplitMix64(state: 0x6761_7465_686f_7573)
        var reasons: [RejectionReason: Int] = [:]
        var unchanged = 0
        for round in 0..<5000 {
            var mutated = bytes
            switch round % 6 {
            case 0:  // bit flip
                let index = Int.random(in: 0..<mutated.count, using: &random)
                mutated[index] ^= UInt8(1 << Int.random(in: 0..<8, using: &random))
            case 1:  // truncation
                mutated = Array(mutated[0..<Int.random(in: 0..<mutated.count, using: &random)])
            case 2:  // replaced character
                mutated[Int.random(in: 0..<mutated.count, using: &random)] = alphabet.randomElement(using: &random)!
            case 3:  // segment shuffle
                var parts = original.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
                parts.shuffle(using: &random)
                mutated = Array(parts.joined(separator: ".").utf8)
            case 4:  // inserted bytes
                let index = Int.random(in: 0...mutated.count, using: &random)
                mutated.insert(contentsOf: (0..<Int.random(in: 1...8, using: &random)).map { _ in alphabet.randomElement(using: &random)! }, at: index)
            default:  // random garbage of random length
                mutated = (0..<Int.random(in: 0...400, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            }
            let result = mutated.withUnsafeBytes { bytes in Result { () throws(JOSEError) in try verifier.verify(bytes, now: factory.now) } }
            switch result {
            case .success:
                #expect(mutated == bytes, "only the untouched token may verify")
                unchanged += 1
            case .failure(let error):
                reasons[error.reason, default: 0] += 1
            }
        }
        #expect(unchanged < 200)
        #expect(reasons[.malformed, default: 0] > 0 && reasons[.badSignature, default: 0] > 0)
    }

    @Test("hostile JSON in a signed payload: deep nesting, huge numbers, bad escapes")
    func hostileJSON() throws {
        let factory = try TokenFactory()
        let header = factory.goodHeader.serialized
        let payloads = [
            String(repeating: "[", count: 2000) + String(repeating: "]", count: 2000),
            #"{"a":"# + String(repeating: #"{"a":"#, count: 100) + "1" + String(repeating: "}", count: 101),
            #"{"exp":1e400}"#, #"{"exp":1e99999}"#, #"{"exp":-}"#,
            #"{"exp":01}"#, #"{"exp":1.}"#, #"{"exp":.5}"#, #"{"exp":+1}"#, #"{"exp":0x10}"#, #"{"exp":NaN}"#,
            #"{"s":"\ud800"}"#, #"{"s":"\udc00\ud800"}"#, #"{"s":"\u12"}"#, #"{"s":"\x41"}"#, "{\"s\":\"\u{01}\"}",
            #"{"a":1,}"#, #"{"a" 1}"#, #"{'a':1}"#, "{}garbage", "", " ", "null", "[]", "\"str\"",
            #"{"a":tru}"#, #"{"a":nul}"#, "{\"a\":\"\u{ff}\"}",
        ]
        for payload in payloads {
            let token = try factory.es256(headerText: header, payloadText: payload)
            let reason = try factory.reason(token)
            #expect(reason == .malformed || reason == .missingClaim, "\(payload.prefix(40))")
        }
    }
}
