// SPDX-License-Identifier: Apache-2.0
import Foundation
import Yams

/// Walks Yams nodes with the key path and line at hand, so every error can name both, and refuses
/// keys that no reader asked for.
struct Section {
    let file: String
    let path: String
    let mapping: Node.Mapping
    let line: Int?
    let environment: [String: String]
    /// Where each file the configuration names was named (shared by every section of one file).
    let fileReferences: FileReferences
    private var read: Set<String> = []

    init(
        file: String, path: String, mapping: Node.Mapping, line: Int?, environment: [String: String],
        fileReferences: FileReferences = FileReferences()
    ) throws(ConfigError) {
        self.file = file
        self.path = path
        self.mapping = mapping
        self.line = line
        self.environment = environment
        self.fileReferences = fileReferences
        // Yams refuses duplicate keys while composing.
        for (key, _) in mapping where key.string == nil { throw self.error(at: key, "", "keys must be strings") }
    }

    func keyPath(_ key: String) -> String { self.path.isEmpty ? key : "\(self.path).\(key)" }

    func error(at node: Node?, _ key: String, _ message: String) -> ConfigError {
        ConfigError(file: self.file, line: node?.mark?.line ?? self.line, key: key.isEmpty ? self.path : self.keyPath(key), message: message)
    }

    private mutating func node(_ key: String) -> Node? {
        self.read.insert(key)
        return self.mapping[key]
    }

    /// Refuses every key nobody read.
    func finish() throws(ConfigError) {
        for (key, _) in self.mapping where !self.read.contains(key.string ?? "") {
            throw self.error(at: key, key.string ?? "", "unknown key")
        }
    }

    /// A string value with `${VAR}` expanded; nil when absent or null.
    mutating func string(_ key: String) throws(ConfigError) -> String? {
        guard let node = self.node(key), node.tag != Tag(.null) else { return nil }
        guard case .scalar(let scalar) = node else { throw self.error(at: node, key, "must be a single value") }
        return try self.expand(scalar.string, at: node, key)
    }

    mutating func string(_ key: String, default value: String) throws(ConfigError) -> String {
        try self.string(key) ?? value
    }

    mutating func requiredString(_ key: String) throws(ConfigError) -> String {
        guard let value = try self.string(key), !value.isEmpty else {
            throw ConfigError(file: self.file, line: self.line, key: self.keyPath(key), message: "is required")
        }
        return value
    }

    mutating func bool(_ key: String, default value: Bool) throws(ConfigError) -> Bool {
        guard let text = try self.string(key) else { return value }
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw self.error(at: self.mapping[key], key, "\"\(text)\" is not true or false")
        }
    }

    mutating func int(_ key: String, default value: Int, range: ClosedRange<Int>) throws(ConfigError) -> Int {
        guard let text = try self.string(key) else { return value }
        guard let number = Int(text), range.contains(number) else {
            throw self.error(at: self.mapping[key], key, "\"\(text)\" is not a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return number
    }

    mutating func duration(_ key: String, default value: Duration) throws(ConfigError) -> Duration {
        guard let text = try self.string(key) else { return value }
        guard let duration = Duration(configText: text) else {
            throw self.error(at: self.mapping[key], key, "\"\(text)\" is not a duration (like 250ms, 30s, 15m, 2h, 7d; at most 100 years)")
        }
        return duration
    }

    /// A list of strings (a YAML sequence, or one string standing for a list of one).
    mutating func strings(_ key: String) throws(ConfigError) -> [String]? {
        guard let node = self.node(key), node.tag != Tag(.null) else { return nil }
        switch node {
        case .scalar(let scalar): return [try self.expand(scalar.string, at: node, key)]
        case .sequence(let sequence):
            var values: [String] = []
            for element in sequence {
                guard case .scalar(let scalar) = element else { throw self.error(at: element, key, "must be a list of strings") }
                values.append(try self.expand(scalar.string, at: element, key))
            }
            return values
        default: throw self.error(at: node, key, "must be a list of strings")
        }
    }

    /// A nested mapping; nil when absent.
    mutating func section(_ key: String) throws(ConfigError) -> Section? {
        guard let node = self.node(key), node.tag != Tag(.null) else { return nil }
        guard case .mapping(let mapping) = node else { throw self.error(at: node, key, "must be a mapping of keys") }
        return try Section(
            file: self.file, path: self.keyPath(key), mapping: mapping, line: node.mark?.line, environment: self.environment,
            fileReferences: self.fileReferences
        )
    }

    /// Notes that `key` names the file at `absolutePath` (for `config check`'s messages).
    func noteFile(_ key: String, _ absolutePath: String) {
        self.fileReferences.add(absolutePath, ConfigError(file: self.file, line: self.mapping[key]?.mark?.line ?? self.line, key: self.keyPath(key), message: ""))
    }

    /// Whether the key is present at all.
    func has(_ key: String) -> Bool { self.mapping[key] != nil }

    /// The raw node (marks it read).
    mutating func rawNode(_ key: String) -> Node? { self.node(key) }

    /// A sequence of mappings, each as a section named `key[i]`.
    mutating func sections(_ key: String) throws(ConfigError) -> [Section]? {
        guard let node = self.node(key), node.tag != Tag(.null) else { return nil }
        guard case .sequence(let sequence) = node else { throw self.error(at: node, key, "must be a list") }
        var sections: [Section] = []
        for (index, element) in sequence.enumerated() {
            guard case .mapping(let mapping) = element else {
                throw ConfigError(file: self.file, line: element.mark?.line, key: "\(self.keyPath(key))[\(index)]", message: "must be a mapping of keys")
            }
            sections.append(try Section(
                file: self.file, path: "\(self.keyPath(key))[\(index)]", mapping: mapping, line: element.mark?.line,
                environment: self.environment, fileReferences: self.fileReferences
            ))
        }
        return sections
    }

    /// Replaces `${NAME}` with the environment's value; an unset variable is an error that names it.
    func expand(_ text: String, at node: Node?, _ key: String) throws(ConfigError) -> String {
        guard text.contains("${") else { return text }
        var output = ""
        var rest = Substring(text)
        while let start = rest.range(of: "${") {
            output += rest[..<start.lowerBound]
            guard let end = rest[start.upperBound...].firstIndex(of: "}") else {
                throw self.error(at: node, key, "unterminated ${ in value")
            }
            let name = String(rest[start.upperBound..<end])
            guard !name.isEmpty, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) else {
                throw self.error(at: node, key, "\"${\(name)}\" is not a variable name")
            }
            guard let value = self.environment[name] else {
                throw self.error(at: node, key, "environment variable \(name) is not set")
            }
            output += value
            rest = rest[rest.index(after: end)...]
        }
        return output + rest
    }
}

/// The files a configuration names (key files, JWKS files), each with the key and line naming it.
final class FileReferences: @unchecked Sendable {
    // Unchecked: filled while one file is parsed, on one thread, then only read.
    private(set) var locations: [String: ConfigError] = [:]

    func add(_ path: String, _ location: ConfigError) {
        if self.locations[path] == nil { self.locations[path] = location }
    }
}
