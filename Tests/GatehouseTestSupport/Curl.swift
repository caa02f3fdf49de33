// SPDX-License-Identifier: Apache-2.0
import Foundation

/// The real curl, for what the raw client does not speak (TLS) or should not imitate (a cookie jar).
public enum Curl {
    /// Runs `curl -s ARGUMENTS`; returns the HTTP status and the body.
    public static func run(_ arguments: [String]) throws -> (status: Int, body: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = ["-s", "-o", "-", "-w", "\n%{http_code}"] + arguments
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        let status = Int(text.split(separator: "\n").last ?? "") ?? 0
        return (status, String(text.dropLast(String(status).count + 1)))
    }
}
