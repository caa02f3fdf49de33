// SPDX-License-Identifier: Apache-2.0
import GatehouseCrypto

/// A JSON value as RFC 8259 defines it. Objects keep their members in document order.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    public var numberValue: Double? {
        if case .number(let value) = self { return value }
        return nil
    }

    public var objectValue: JSONObject? {
        if case .object(let value) = self { return value }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let value) = self { return value }
        return nil
    }
}

/// A JSON object: members in document order, every name distinct.
public struct JSONObject: Sendable, Hashable, Sequence {
    public struct Member: Sendable, Hashable {
        public var name: String
        public var value: JSONValue
    }

    public private(set) var members: [Member]

    public init() { self.members = [] }

    init(members: [Member]) { self.members = members }

    /// Builds an object from name/value pairs; a later pair replaces an earlier one of the same name.
    public init(_ pairs: KeyValuePairs<String, JSONValue>) {
        self.members = []
        for (name, value) in pairs { self[name] = value }
    }

    public subscript(name: String) -> JSONValue? {
        get {
            for member in self.members where member.name == name { return member.value }
            return nil
        }
        set {
            if let index = self.members.firstIndex(where: { $0.name == name }) {
                if let newValue { self.members[index].value = newValue } else { self.members.remove(at: index) }
            } else if let newValue {
                self.members.append(Member(name: name, value: newValue))
            }
        }
    }

    public var count: Int { self.members.count }

    public func makeIterator() -> IndexingIterator<[Member]> { self.members.makeIterator() }
}

/// Why a byte string is not the JSON a JOSE header or claim set must be.
public enum JSONError: Error, Sendable, Equatable {
    case syntax(offset: Int)
    case duplicateMember(String)
    case invalidUTF8(offset: Int)
    case numberOutOfRange(offset: Int)
    case tooDeep
}

/// A strict, single-pass JSON reader: RFC 8259 grammar, valid UTF-8 only, duplicate member names
/// refused (JWS §4 allows refusing them and jwt-kit's JSONDecoder cannot see them), numbers that
/// overflow a Double refused, nesting bounded.
public struct JSONReader {
    /// Nesting beyond this is refused: a JWT needs three levels at most.
    public static let maximumDepth = 32

    let bytes: UnsafeRawBufferPointer
    var index = 0
    var depth = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    /// Parses one JSON text: a value between optional whitespace, nothing else.
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(JSONError) -> JSONValue {
        var reader = JSONReader(bytes)
        reader.skipWhitespace()
        let value = try reader.parseValue()
        reader.skipWhitespace()
        guard reader.index == bytes.count else { throw .syntax(offset: reader.index) }
        return value
    }

    /// Parses one JSON text from a string.
    public static func parse(_ text: String) throws(JSONError) -> JSONValue {
        var text = text
        return try text.withUTF8 { buffer in Result { () throws(JSONError) in try parse(UnsafeRawBufferPointer(buffer)) } }.get()
    }

    @inline(__always)
    var current: UInt8? { self.index < self.bytes.count ? self.bytes[self.index] : nil }

    @inline(__always)
    mutating func skipWhitespace() {
        while self.index < self.bytes.count {
            let byte = self.bytes[self.index]
            guard byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 else { return }
            self.index += 1
        }
    }

    mutating func expect(_ literal: StaticString) throws(JSONError) {
        let count = literal.utf8CodeUnitCount
        guard self.index + count <= self.bytes.count else { throw .syntax(offset: self.index) }
        let start = literal.utf8Start
        for i in 0..<count where self.bytes[self.index + i] != start[i] { throw .syntax(offset: self.index + i) }
        self.index += count
    }

    mutating func parseValue() throws(JSONError) -> JSONValue {
        guard let byte = self.current else { throw .syntax(offset: self.index) }
        switch byte {
        case UInt8(ascii: "{"): return .object(try self.parseObject())
        case UInt8(ascii: "["): return .array(try self.parseArray())
        case UInt8(ascii: "\""): return .string(try self.parseString())
        case UInt8(ascii: "t"):
            try self.expect("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try self.expect("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try self.expect("null")
            return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try self.parseNumber())
        default: throw .syntax(offset: self.index)
        }
    }

    mutating func descend() throws(JSONError) {
        self.depth += 1
        if self.depth > Self.maximumDepth { throw .tooDeep }
    }

    private mutating func parseObject() throws(JSONError) -> JSONObject {
        try self.descend()
        self.index += 1  // {
        var members: [JSONObject.Member] = []
        members.reserveCapacity(16)
        self.skipWhitespace()
        if self.current == UInt8(ascii: "}") {
            self.index += 1
            self.depth -= 1
            return JSONObject(members: members)
        }
        // Beyond a handful of members a set finds duplicates in linear time; a hostile 8 KiB
        // object of one-letter names would otherwise cost a quadratic scan.
        var seen: Set<String>? = nil
        while true {
            guard self.current == UInt8(ascii: "\"") else { throw .syntax(offset: self.index) }
            let name = try self.parseString()
            if members.count < 16 {
                for member in members where member.name == name { throw .duplicateMember(name) }
            } else {
                if seen == nil { seen = Set(members.map(\.name)) }
                guard seen!.insert(name).inserted else { throw .duplicateMember(name) }
            }
            self.skipWhitespace()
            guard self.current == UInt8(ascii: ":") else { throw .syntax(offset: self.index) }
            self.index += 1
            self.skipWhitespace()
            let value = try self.parseValue()
            members.append(JSONObject.Member(name: name, value: value))
            self.skipWhitespace()
            switch self.current {
            case UInt8(ascii: ","):
                self.index += 1
                self.skipWhitespace()
            case UInt8(ascii: "}"):
                self.index += 1
                self.depth -= 1
                return JSONObject(members: members)
            default:
                throw .syntax(offset: self.index)
            }
        }
    }

    private mutating func parseArray() throws(JSONError) -> [JSONValue] {
        try self.descend()
        self.index += 1  // [
        var elements: [JSONValue] = []
        elements.reserveCapacity(4)
        self.skipWhitespace()
        if self.current == UInt8(ascii: "]") {
            self.index += 1
            self.depth -= 1
            return elements
        }
        while true {
            elements.append(try self.parseValue())
            self.skipWhitespace()
            switch self.current {
            case UInt8(ascii: ","):
                self.index += 1
                self.skipWhitespace()
            case UInt8(ascii: "]"):
                self.index += 1
                self.depth -= 1
                return elements
            default:
                throw .syntax(offset: self.index)
            }
        }
    }

    mutating func parseString() throws(JSONError) -> String {
        self.index += 1  // opening quote
        let start = self.index
        // Fast path: no escapes, the common case for every JWT member. ASCII needs no UTF-8 check.
        var highBits: UInt8 = 0
        while let byte = self.current {
            if byte == UInt8(ascii: "\"") {
                let slice = UnsafeRawBufferPointer(rebasing: self.bytes[start..<self.index])
                self.index += 1
                if highBits & 0x80 == 0 { return String(decoding: slice.bindMemory(to: UInt8.self), as: UTF8.self) }
                guard let string = makeString(slice) else { throw .invalidUTF8(offset: start) }
                return string
            }
            if byte == UInt8(ascii: "\\") || byte < 0x20 { break }
            highBits |= byte
            self.index += 1
        }
        var decoded = Array(self.bytes[start..<self.index])
        while true {
            guard let byte = self.current else { throw .syntax(offset: self.index) }
            switch byte {
            case UInt8(ascii: "\""):
                self.index += 1
                guard let string = decoded.withUnsafeBytes(makeString) else { throw .invalidUTF8(offset: start) }
                return string
            case 0..<0x20:
                throw .syntax(offset: self.index)  // control characters must be escaped
            case UInt8(ascii: "\\"):
                self.index += 1
                guard let escape = self.current else { throw .syntax(offset: self.index) }
                self.index += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): decoded.append(escape)
                case UInt8(ascii: "b"): decoded.append(0x08)
                case UInt8(ascii: "f"): decoded.append(0x0C)
                case UInt8(ascii: "n"): decoded.append(0x0A)
                case UInt8(ascii: "r"): decoded.append(0x0D)
                case UInt8(ascii: "t"): decoded.append(0x09)
                case UInt8(ascii: "u"): try self.appendUnicodeEscape(to: &decoded)
                default: throw .syntax(offset: self.index - 1)
                }
            default:
                decoded.append(byte)
                self.index += 1
            }
        }
    }

    mutating func readHex4() throws(JSONError) -> UInt32 {
        guard self.index + 4 <= self.bytes.count else { throw .syntax(offset: self.index) }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = self.bytes[self.index]
            let digit: UInt32
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
            default: throw .syntax(offset: self.index)
            }
            value = value << 4 | digit
            self.index += 1
        }
        return value
    }

    /// Decodes `\uXXXX` (the `\u` already read), joining surrogate pairs; a lone surrogate is refused.
    mutating func appendUnicodeEscape(to decoded: inout [UInt8]) throws(JSONError) {
        let offset = self.index - 2
        var scalar = try self.readHex4()
        if (0xD800...0xDBFF).contains(scalar) {
            guard self.index + 2 <= self.bytes.count, self.bytes[self.index] == UInt8(ascii: "\\"),
                self.bytes[self.index + 1] == UInt8(ascii: "u")
            else { throw .invalidUTF8(offset: offset) }
            self.index += 2
            let low = try self.readHex4()
            guard (0xDC00...0xDFFF).contains(low) else { throw .invalidUTF8(offset: offset) }
            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
        } else if (0xDC00...0xDFFF).contains(scalar) {
            throw .invalidUTF8(offset: offset)
        }
        decoded.append(contentsOf: String(Character(Unicode.Scalar(scalar)!)).utf8)
    }

    mutating func parseNumber() throws(JSONError) -> Double {
        let start = self.index
        var isInteger = true
        if self.current == UInt8(ascii: "-") { self.index += 1 }
        // int = zero / ( digit1-9 *DIGIT )
        guard let first = self.current, first >= UInt8(ascii: "0"), first <= UInt8(ascii: "9") else {
            throw .syntax(offset: self.index)
        }
        self.index += 1
        if first != UInt8(ascii: "0") { self.skipDigits() }
        if self.current == UInt8(ascii: ".") {
            isInteger = false
            self.index += 1
            guard self.skipDigits() > 0 else { throw .syntax(offset: self.index) }
        }
        if self.current == UInt8(ascii: "e") || self.current == UInt8(ascii: "E") {
            isInteger = false
            self.index += 1
            if self.current == UInt8(ascii: "+") || self.current == UInt8(ascii: "-") { self.index += 1 }
            guard self.skipDigits() > 0 else { throw .syntax(offset: self.index) }
        }
        let text = UnsafeRawBufferPointer(rebasing: self.bytes[start..<self.index])
        // Integers of up to 15 digits are exact in a Double: the common case for NumericDates and ids.
        if isInteger, text.count <= 16 {
            var value: Int64 = 0
            var negative = false
            for byte in text {
                if byte == UInt8(ascii: "-") { negative = true } else { value = value * 10 + Int64(byte - UInt8(ascii: "0")) }
            }
            if value < 1_000_000_000_000_000 { return Double(negative ? -value : value) }
        }
        guard let value = Double(String(decoding: text, as: UTF8.self)), value.isFinite else {
            throw .numberOutOfRange(offset: start)
        }
        return value
    }

    @discardableResult
    private mutating func skipDigits() -> Int {
        let start = self.index
        while let byte = self.current, byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") { self.index += 1 }
        return self.index - start
    }
}

/// A String from bytes that must be valid UTF-8, or nil. `String(validating:as:)` is generic and
/// cost ~1000 instructions per call in the verifier's profile; this costs a scan.
@inline(__always)
func makeString(_ bytes: UnsafeRawBufferPointer) -> String? {
    guard isValidUTF8(bytes) else { return nil }
    return String(decoding: bytes.bindMemory(to: UInt8.self), as: UTF8.self)
}

/// RFC 3629 UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
func isValidUTF8(_ bytes: UnsafeRawBufferPointer) -> Bool {
    var index = 0
    let count = bytes.count
    while index < count {
        let lead = bytes[index]
        if lead < 0x80 {
            index += 1
            continue
        }
        let length: Int
        var lower: UInt8 = 0x80
        var upper: UInt8 = 0xBF
        switch lead {
        case 0xC2...0xDF: length = 2
        case 0xE0:
            length = 3
            lower = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED:
            length = 3
            upper = 0x9F
        case 0xF0:
            length = 4
            lower = 0x90
        case 0xF1...0xF3: length = 4
        case 0xF4:
            length = 4
            upper = 0x8F
        default: return false
        }
        guard index + length <= count else { return false }
        let second = bytes[index + 1]
        guard second >= lower, second <= upper else { return false }
        for offset in 2..<max(2, length) where bytes[index + offset] & 0xC0 != 0x80 { return false }
        index += length
    }
    return true
}

extension JSONValue {
    /// Compact JSON text for this value (member order kept).
    public var serialized: String {
        String(decoding: self.serializedBytes, as: UTF8.self)
    }

    /// The same text as UTF-8 bytes, for what goes on the wire or into a signature: written as
    /// bytes, strings copied in runs between the bytes that need escaping (token responses are
    /// mostly long base64url strings; character-wise appending cost more than their signature).
    public var serializedBytes: [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(256)
        self.write(to: &output)
        return output
    }

    func write(to output: inout [UInt8]) {
        switch self {
        case .null: output += "null".utf8
        case .bool(let value): output += (value ? "true" : "false").utf8
        case .number(let value): output += Self.format(value).utf8
        case .string(let value): Self.writeString(value, to: &output)
        case .array(let elements):
            output.append(UInt8(ascii: "["))
            for (index, element) in elements.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                element.write(to: &output)
            }
            output.append(UInt8(ascii: "]"))
        case .object(let object):
            output.append(UInt8(ascii: "{"))
            for (index, member) in object.members.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                Self.writeString(member.name, to: &output)
                output.append(UInt8(ascii: ":"))
                member.value.write(to: &output)
            }
            output.append(UInt8(ascii: "}"))
        }
    }

    /// Integers print without a fraction; everything else in Swift's shortest round-trip form.
    private static func format(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }

    /// Appends `value` as a JSON string: `"` and `\\` escaped, control characters and DEL as
    /// `\\n`-style or `\\u00XX` escapes, every other byte (UTF-8 beyond ASCII included) as it is.
    /// The one JSON string writer: the gateway's access log writes its lines with it too, so it
    /// copies runs that need no escape whole and allocates nothing beyond `output`'s growth.
    public static func writeString(_ value: String, to output: inout [UInt8]) {
        output.append(UInt8(ascii: "\""))
        var value = value
        value.withUTF8 { bytes in
            var runStart = 0
            for index in 0..<bytes.count {
                let byte = bytes[index]
                guard byte < 0x20 || byte == 0x7F || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                output.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<index]))
                runStart = index + 1
                switch byte {
                case UInt8(ascii: "\""): output += #"\""#.utf8
                case UInt8(ascii: "\\"): output += #"\\"#.utf8
                case UInt8(ascii: "\n"): output += #"\n"#.utf8
                case UInt8(ascii: "\r"): output += #"\r"#.utf8
                case UInt8(ascii: "\t"): output += #"\t"#.utf8
                default:
                    output += #"\u00"#.utf8
                    output.append(Hex.digit(byte >> 4))
                    output.append(Hex.digit(byte))
                }
            }
            output.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart...]))
        }
        output.append(UInt8(ascii: "\""))
    }
}

extension JSONObject {
    /// Compact JSON text for this object.
    public var serialized: String { JSONValue.object(self).serialized }

    /// The same text as UTF-8 bytes.
    public var serializedBytes: [UInt8] { JSONValue.object(self).serializedBytes }
}
