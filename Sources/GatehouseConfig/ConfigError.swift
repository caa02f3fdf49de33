// SPDX-License-Identifier: Apache-2.0

/// A configuration problem, naming the file, the line and the key.
public struct ConfigError: Error, Equatable, CustomStringConvertible {
    public let file: String
    public let line: Int?
    /// Dotted key path, e.g. `issuer.signing.alg` or `routes[2].upstream`.
    public let key: String
    public let message: String

    public init(file: String, line: Int?, key: String, message: String) {
        self.file = file
        self.line = line
        self.key = key
        self.message = message
    }

    public var description: String {
        let location = self.line.map { "\(self.file):\($0)" } ?? self.file
        return self.key.isEmpty ? "\(location): \(self.message)" : "\(location): \(self.key): \(self.message)"
    }
}
