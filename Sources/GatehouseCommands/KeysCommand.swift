// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Foundation
import GatehouseCrypto
import GatehouseJOSE
#if canImport(Glibc)
import Glibc
#endif

struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "Manage signing keys.", subcommands: [Generate.self]
    )

    struct Generate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a new signing key: DIR/KID.pem (private, PKCS#8, mode 0600) and DIR/KID.jwk.json (public). Prints the kid.",
            discussion: "The kid is the key's RFC 7638 thumbprint, the same the issuer's JWKS will show."
        )

        @Option(help: "ES256, ES384, ES512, EdDSA, RS256…RS512 or PS256…PS512.") var alg: String = "ES256"
        @Option(help: "RSA modulus size in bits (RS*/PS* only).") var bits: Int = 2048
        @Option(help: "Directory to write into (created if missing).") var out: String

        func run() async throws {
            guard let algorithm = Algorithm(rawValue: self.alg) else {
                throw ValidationError("unknown algorithm \"\(self.alg)\" (ES256, ES384, ES512, EdDSA, RS256…RS512, PS256…PS512)")
            }
            let specification: EVPKey.Specification
            switch algorithm.family {
            case .hmac:
                throw ValidationError("HMAC keys are shared secrets: put 32 or more random bytes in an environment variable instead")
            case .signature(.ed25519): specification = .ed25519
            case .signature(.ecdsa(.sha256)): specification = .ec(.p256)
            case .signature(.ecdsa(.sha384)): specification = .ec(.p384)
            case .signature(.ecdsa): specification = .ec(.p521)
            case .signature:
                guard self.bits >= minimumRSABits, self.bits <= 16384 else { throw ValidationError("--bits must be 2048 to 16384") }
                specification = .rsa(bits: self.bits)
            }
            let key = try EVPKey.generate(specification)
            let jwk = JWK(key: try key.publicKey(), algorithm: algorithm)
            let kid = jwk.keyID!
            let directory = URL(fileURLWithPath: self.out, isDirectory: true)
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let pemPath = directory.appendingPathComponent("\(kid).pem").path
            let pem = try key.privateKeyPEM()
            try Self.writePrivate(Array(pem.utf8), to: pemPath)
            try Data((jwk.json.serialized + "\n").utf8).write(to: directory.appendingPathComponent("\(kid).jwk.json"))
            print(kid)
        }

        /// Creates `path` with mode 0600 from its first byte (`O_EXCL`: never an existing file or a
        /// link planted there) and writes `bytes`; the umask can only make it stricter. A failed
        /// write removes the partial file.
        static func writePrivate(_ bytes: [UInt8], to path: String) throws {
            let descriptor = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0o600)
            guard descriptor >= 0 else { throw ValidationError("cannot create \(path): \(String(cString: strerror(errno)))") }
            var written = 0
            while written < bytes.count {
                let count = bytes[written...].withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
                if count < 0, errno == EINTR { continue }
                guard count > 0 else {
                    let reason = String(cString: strerror(errno))
                    close(descriptor)
                    unlink(path)
                    throw ValidationError("cannot write \(path): \(reason)")
                }
                written += count
            }
            let synced = fsync(descriptor) == 0
            guard close(descriptor) == 0, synced else { throw ValidationError("cannot write \(path): \(String(cString: strerror(errno)))") }
        }
    }
}
