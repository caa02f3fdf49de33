// SPDX-License-Identifier: Apache-2.0
import Foundation

/// A throwaway CA and a server certificate it signed, made with the openssl command line into a
/// temporary folder (P-256 keys, valid for a day).
public struct TestCertificates: Sendable {
    public let directory: String
    /// The CA's certificate (PEM): what a client that trusts this CA loads.
    public var caFile: String { self.directory + "/ca.pem" }
    public var serverCertificateFile: String { self.directory + "/server.pem" }
    public var serverKeyFile: String { self.directory + "/server.key" }
    /// A client certificate from the same CA (for mutual TLS).
    public var clientCertificateFile: String { self.directory + "/client.pem" }
    public var clientKeyFile: String { self.directory + "/client.key" }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// `subjectAltName`, e.g. `DNS:localhost` or `DNS:localhost,IP:127.0.0.1`.
    public init(subjectAltName: String) throws {
        self.directory = NSTemporaryDirectory() + "gatehouse-tls-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: self.directory, withIntermediateDirectories: true)
        try "subjectAltName=\(subjectAltName)\n".write(toFile: self.directory + "/san.ext", atomically: true, encoding: .utf8)
        let curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        try self.openssl(["req", "-x509"] + curve + ["-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=Gatehouse Test CA"])
        try self.openssl(["req"] + curve + ["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=gatehouse-test-server"])
        try self.openssl([
            "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "1",
            "-extfile", "san.ext",
        ])
        try self.openssl(["req"] + curve + ["-keyout", "client.key", "-out", "client.csr", "-subj", "/CN=gatehouse-test-client"])
        try self.openssl(["x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "client.pem", "-days", "1"])
    }

    private func openssl(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: self.directory)
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let message = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw Failure(description: "openssl \(arguments.first ?? ""): \(String(decoding: message, as: UTF8.self))")
        }
    }
}
