// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The first eight bytes of `name`, byte i in bits 8i..8i+7. Two names of the same length up to
/// eight bytes are equal exactly when their keys are.
@inline(__always)
func packedNameKey(_ name: UnsafeRawBufferPointer) -> UInt64 {
    var key: UInt64 = 0
    var shift: UInt64 = 0
    for byte in name.prefix(8) {
        key |= UInt64(byte) &<< shift
        shift &+= 8
    }
    return key
}

/// A JSON object read in place: validated as strictly as `JSONReader` does (grammar, UTF-8,
/// duplicate names, number range, depth), but member names and string values stay byte ranges of
/// the document until someone asks for them.
///
/// The verifier needs a handful of a token's members; making a `String` and a `JSONValue` for every
/// one of them was most of its cost. Nested arrays and objects are small in JWTs and are built
/// as `JSONValue`s at once.
public struct InPlaceJSONObject: Sendable {
    enum Value: Sendable {
        case string(Range<Int>, escaped: Bool)
        case number(Double)
        case literal(JSONValue)  // true, false, null
        case container(JSONValue)
    }

    struct Member: Sendable {
        /// The name's bytes between the quotes.
        let name: Range<Int>
        /// The name's first eight bytes packed, so duplicate checks compare integers.
        let nameKey: UInt64
        let nameEscaped: Bool
        let value: Value
    }

    /// The storage the document lies in (it may hold other documents too: a token's header and
    /// payload share one allocation); member ranges are relative to `document`.
    private let storage: [UInt8]
    private let document: Range<Int>
    let members: [Member]

    /// Reads `storage[document]`, which must hold exactly one JSON object (whitespace around it allowed).
    init(storage: [UInt8], document: Range<Int>) throws(JSONError) {
        self.storage = storage
        self.document = document
        self.members = try storage.withUnsafeBytes { buffer in
            Result { () throws(JSONError) in
                var reader = JSONReader(UnsafeRawBufferPointer(rebasing: buffer[document]))
                return try reader.parseObjectInPlace()
            }
        }.get()
    }

    /// Reads a whole byte array as one JSON object.
    init(bytes: [UInt8]) throws(JSONError) {
        try self.init(storage: bytes, document: 0..<bytes.count)
    }

    /// The document's bytes, handed to `body`.
    @inline(__always)
    func withBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        self.storage.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[self.document])) }
    }

    /// The member named `name` (eight bytes at most, needing no escapes), found by its packed key.
    func member(_ name: StaticString) -> Member? {
        let count = name.utf8CodeUnitCount
        precondition(count <= 8, "member(_:) takes short registered names")
        let key = packedNameKey(UnsafeRawBufferPointer(start: name.utf8Start, count: count))
        for index in self.members.indices where self.members[index].nameKey == key && self.members[index].name.count == count {
            if !self.members[index].nameEscaped { return self.members[index] }
        }
        // A name spelled with escapes ("\u0065xp") is still that name.
        for member in self.members where member.nameEscaped && self.name(of: member) == name.description {
            return member
        }
        return nil
    }

    /// The member's name as a String.
    func name(of member: Member) -> String {
        self.string(member.name, escaped: member.nameEscaped)
    }

    /// A string value compared with `expected` (its UTF-8), without making a String (escaped
    /// strings are decoded first).
    func stringValue(of member: Member, equals expected: [UInt8]) -> Bool {
        guard case .string(let range, let escaped) = member.value else { return false }
        if escaped { return Array(self.string(range, escaped: true).utf8) == expected }
        return expected.count == range.count
            && self.withBytes { bytes in
                expected.withUnsafeBytes { memcmp(bytes.baseAddress! + range.lowerBound, $0.baseAddress!, range.count) == 0 }
            }
    }

    /// The member's value as a JSONValue.
    func value(of member: Member) -> JSONValue {
        switch member.value {
        case .string(let range, let escaped): .string(self.string(range, escaped: escaped))
        case .number(let number): .number(number)
        case .literal(let value), .container(let value): value
        }
    }

    /// Every member, materialised.
    var object: JSONObject {
        JSONObject(members: self.members.map { JSONObject.Member(name: self.name(of: $0), value: self.value(of: $0)) })
    }

    /// The bytes between a string's quotes as a String, decoding escapes when there are any.
    func string(_ range: Range<Int>, escaped: Bool) -> String {
        self.withBytes { buffer in
            if !escaped {
                return String(decoding: UnsafeRawBufferPointer(rebasing: buffer[range]).bindMemory(to: UInt8.self), as: UTF8.self)
            }
            // Already validated: decoding cannot fail. Start at the opening quote.
            var reader = JSONReader(UnsafeRawBufferPointer(rebasing: buffer[(range.lowerBound - 1)...]))
            return (try? reader.parseString()) ?? ""
        }
    }
}

extension JSONReader {
    /// Reads one top-level object without materialising names and strings.
    mutating func parseObjectInPlace() throws(JSONError) -> [InPlaceJSONObject.Member] {
        self.skipWhitespace()
        guard self.current == UInt8(ascii: "{") else { throw .syntax(offset: self.index) }
        try self.descend()
        self.index += 1
        var members: [InPlaceJSONObject.Member] = []
        // A header has three or four members, an access token a dozen: roughly one per 24 bytes.
        members.reserveCapacity(min(16, 2 + self.bytes.count / 24))
        // Decoded names, kept only once an escaped name or many members make byte comparison unsafe or slow.
        var seen: Set<String>? = nil
        self.skipWhitespace()
        if self.current == UInt8(ascii: "}") {
            self.index += 1
        } else {
            while true {
                guard self.current == UInt8(ascii: "\"") else { throw .syntax(offset: self.index) }
                let (name, nameEscaped) = try self.scanString()
                let nameKey = self.nameKey(name)
                try self.refuseDuplicate(name, key: nameKey, escaped: nameEscaped, among: members, seen: &seen)
                self.skipWhitespace()
                guard self.current == UInt8(ascii: ":") else { throw .syntax(offset: self.index) }
                self.index += 1
                self.skipWhitespace()
                let value: InPlaceJSONObject.Value
                switch self.current ?? 0 {
                case UInt8(ascii: "\""):
                    let (range, escaped) = try self.scanString()
                    value = .string(range, escaped: escaped)
                case UInt8(ascii: "{"), UInt8(ascii: "["): value = .container(try self.parseValue())
                case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): value = .number(try self.parseNumber())
                default: value = .literal(try self.parseValue())
                }
                members.append(.init(name: name, nameKey: nameKey, nameEscaped: nameEscaped, value: value))
                self.skipWhitespace()
                if self.current == UInt8(ascii: ",") {
                    self.index += 1
                    self.skipWhitespace()
                    continue
                }
                guard self.current == UInt8(ascii: "}") else { throw .syntax(offset: self.index) }
                self.index += 1
                break
            }
        }
        self.depth -= 1
        self.skipWhitespace()
        guard self.index == self.bytes.count else { throw .syntax(offset: self.index) }
        return members
    }

    /// Validates a string (the cursor on its opening quote) and returns the range between the quotes.
    @inline(__always)
    mutating func scanString() throws(JSONError) -> (Range<Int>, escaped: Bool) {
        let quote = self.index
        let start = quote + 1
        let base = self.bytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let end = self.bytes.count
        var i = start
        var highBits: UInt8 = 0
        // Eight bytes at a time while none is a quote, a backslash or a control character
        // (the classic "has zero byte" bit trick); bytes with the high bit only get noted.
        let raw = UnsafeRawPointer(base)
        while i &+ 8 <= end {
            let word = raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            let ones: UInt64 = 0x0101_0101_0101_0101
            let highs: UInt64 = 0x8080_8080_8080_8080
            let quote = word ^ (ones &* 0x22)
            let backslash = word ^ (ones &* 0x5C)
            let special = ((quote &- ones) & ~quote) | ((backslash &- ones) & ~backslash) | ((word &- ones &* 0x20) & ~word)
            if special & highs != 0 { break }
            if word & highs != 0 { highBits = 0x80 }
            i &+= 8
        }
        while i < end {
            let byte = base[i]
            if byte == UInt8(ascii: "\"") {
                self.index = i &+ 1
                if highBits & 0x80 != 0, !isValidUTF8(UnsafeRawBufferPointer(rebasing: self.bytes[start..<i])) {
                    throw .invalidUTF8(offset: start)
                }
                return (start..<i, false)
            }
            if byte == UInt8(ascii: "\\") || byte < 0x20 { break }
            highBits |= byte
            i &+= 1
        }
        // Escapes (or an error): the decoding reader validates them; keep only the range.
        self.index = quote
        _ = try self.parseString()
        return (start..<self.index - 1, true)
    }

    private func refuseDuplicate(
        _ name: Range<Int>, key: UInt64, escaped: Bool, among members: [InPlaceJSONObject.Member], seen: inout Set<String>?
    ) throws(JSONError) {
        if seen == nil, !escaped, members.count < 32 {
            for member in members where member.nameKey == key && member.name.count == name.count {
                // Names of up to eight bytes are equal when their keys are; longer ones compare the rest.
                let equal = name.count <= 8
                    || memcmp(self.bytes.baseAddress! + member.name.lowerBound, self.bytes.baseAddress! + name.lowerBound, name.count) == 0
                if equal { throw .duplicateMember(self.decodedName(name, escaped: false)) }
            }
            return
        }
        // An escaped name ("\u0061" is "a"), or many members: compare decoded names through a set.
        if seen == nil { seen = Set(members.map { self.decodedName($0.name, escaped: $0.nameEscaped) }) }
        let new = self.decodedName(name, escaped: escaped)
        guard seen!.insert(new).inserted else { throw .duplicateMember(new) }
    }

    /// Up to the first eight bytes of a name, packed little-endian (see `packedNameKey`).
    @inline(__always)
    private func nameKey(_ range: Range<Int>) -> UInt64 {
        // One unaligned load, masked to the name's length (the closing quote always follows a name,
        // so eight bytes are there to read whenever the name ends eight bytes before the document).
        if range.lowerBound &+ 8 <= self.bytes.count {
            let word = UInt64(littleEndian: self.bytes.baseAddress!.loadUnaligned(fromByteOffset: range.lowerBound, as: UInt64.self))
            return range.count >= 8 ? word : word & ((1 &<< UInt64(range.count &* 8)) &- 1)
        }
        return packedNameKey(UnsafeRawBufferPointer(rebasing: self.bytes[range]))
    }

    private func decodedName(_ range: Range<Int>, escaped: Bool) -> String {
        if !escaped { return String(decoding: UnsafeRawBufferPointer(rebasing: self.bytes[range]).bindMemory(to: UInt8.self), as: UTF8.self) }
        var reader = JSONReader(UnsafeRawBufferPointer(rebasing: self.bytes[(range.lowerBound - 1)...]))
        return (try? reader.parseString()) ?? ""
    }
}
