// SPDX-License-Identifier: Apache-2.0
public import GatehouseConfig
public import NIOSSL

/// The TLS contexts the gateway uses, made once at start (loading certificates and CA bundles is
/// slow) and shared by every event loop: the listener's, each https upstream's, and the one of the
/// gateway's own fetches (`jwks_url`).
public enum TLSContexts {
    /// A certificate or key that cannot be loaded, said in one sentence.
    public struct SetupError: Error, CustomStringConvertible {
        public let description: String
    }

    /// The listener's: the certificate chain and key of `tls`.
    public static func server(_ files: TLSFiles) throws(SetupError) -> NIOSSLContext {
        do {
            let chain = try NIOSSLCertificate.fromPEMFile(files.certificateFile).map { NIOSSLCertificateSource.certificate($0) }
            let key = try NIOSSLPrivateKey(file: files.keyFile, format: .pem)
            return try NIOSSLContext(configuration: .makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key)))
        } catch {
            throw SetupError(description: "tls: cannot use \(files.certificateFile) and \(files.keyFile): \(error)")
        }
    }

    /// A client's: the system's CA bundle, or `caFile`'s certificates instead, and a client
    /// certificate when the server asks for one. The server's name (or IP address) is checked.
    public static func client(caFile: String? = nil, certificate: TLSFiles? = nil) throws(SetupError) -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        do {
            if let caFile { configuration.trustRoots = .file(caFile) }
            if let certificate {
                configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(certificate.certificateFile).map { .certificate($0) }
                configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: certificate.keyFile, format: .pem))
            }
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw SetupError(description: "cannot load \([caFile, certificate?.certificateFile, certificate?.keyFile].compactMap { $0 }.joined(separator: ", ")): \(error)")
        }
    }

    /// The SNI and certificate name for `host`; nil for an IP address, which is checked against the
    /// certificate's IP addresses instead.
    static func serverName(_ host: String) -> String? {
        host.contains(":") || host.allSatisfy({ $0.isNumber || $0 == "." }) ? nil : host
    }
}
