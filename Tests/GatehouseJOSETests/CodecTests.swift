// SPDX-License-Identifier: Apache-2.0
import GatehouseJOSE
import Testing

@Suite("base64url and JSON")
struct CodecTests {
    @Test("base64url round-trips every length and refuses non-canonical input")
    func base64URL() {
        var random = SplitMix64(state: 7)
        for length in 0..<70 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
            let encoded = Base64URL.encode(bytes)
            #expect(!encoded.contains("=") && !encoded.contains("+") && !encoded.contains("/"))
            #expect(Base64URL.decode(encoded) == bytes)
        }
        #expect(Base64URL.decode("QQ") == [0x41])
        for bad in ["QR", "QUJ", "Q", "QQ==", "QQ=", "Q Q", "QQ\n", "a+b/", "YWJj\u{00}"] {
            #expect(Base64URL.decode(bad) == nil, "\(bad)")
        }
    }

    @Test("JSON keeps member order and round-trips through the writer")
    func jsonRoundTrip() throws {
        let text = #"{"b":1,"a":[true,false,null,"x\"\\\n\u0001é😀"],"c":{"d":-1.5,"e":1e300}}"#
        let value = try JSONReader.parse(text)
        #expect(value.objectValue?.members.map(\.name) == ["b", "a", "c"])
        #expect(try JSONReader.parse(value.serialized) == value)
        #expect(try JSONReader.parse(#""\ud83d\ude00""#) == .string("😀"))
        #expect(try JSONReader.parse("1234567890123") == .number(1_234_567_890_123))
    }

    @Test("JSON strings: quote, backslash and control characters escaped, DEL too, everything else as it is")
    func stringEscapes() throws {
        func written(_ value: String) -> String {
            var output: [UInt8] = Array("x".utf8)
            JSONValue.writeString(value, to: &output)
            return String(decoding: output, as: UTF8.self)
        }
        #expect(written("") == #"x"""#)
        #expect(written("plain /path?q=1") == #"x"plain /path?q=1""#)
        #expect(written("a\"b\\c\nd\re\tf") == #"x"a\"b\\c\nd\re\tf""#)
        #expect(written("\u{00}\u{1F}\u{7F}") == #"x"\u0000\u001f\u007f""#)
        #expect(written("é😀") == "x\"é😀\"")
        for value in ["\u{00}\u{01}\"\\", "é😀\n", "end\\"] {
            #expect(try JSONReader.parse(String(written(value).dropFirst())) == .string(value))
        }
    }

    @Test("duplicate names are refused at any depth")
    func duplicates() {
        #expect(throws: JSONError.duplicateMember("a")) { try JSONReader.parse(#"{"a":1,"b":{"a":2},"a":3}"#) }
        #expect(throws: JSONError.duplicateMember("a")) { try JSONReader.parse(#"{"x":{"a":1,"a":2}}"#) }
        let many = "{" + (0..<40).map { "\"k\($0)\":\($0)" }.joined(separator: ",") + ",\"k7\":0}"
        #expect(throws: JSONError.duplicateMember("k7")) { try JSONReader.parse(many) }
    }
}
