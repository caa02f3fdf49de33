// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Foundation
import GatehouseConfig
import GatehouseCrypto
import GatehouseJOSE

struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Work with tokens.", subcommands: [Inspect.self]
    )

    struct Inspect: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a token's header, claims, signature status and verdict as one JSON object.",
            discussion: """
                Exits 0 only when the token is valid. With --jwks FILE, only the keys' algorithms, the \
                signature and the time claims are checked; with a configuration, the gateway's whole policy \
                (of the provider whose issuer matches the token's iss). With neither, the signature is \
                "unchecked" and the verdict is never "valid".
                """
        )

        @Argument(help: "The compact JWS.") var token: String
        @Option(help: "A JWKS file whose keys verify the signature.") var jwks: String?
        @OptionGroup var config: ConfigOption

        func run() async throws {
            let verifier = try self.makeVerifier()
            let inspection = Inspection(token: self.token, verifier: verifier, now: Date().timeIntervalSince1970)
            print(inspection.json.serialized)
            if !inspection.isValid { throw ExitCode(1) }
        }

        private func makeVerifier() throws -> Verifier? {
            if let jwks {
                let set = try KeyFiles.loadJWKS(jwks)
                let keys = try set.keys.filter { $0.use != "enc" }.map { jwk throws(KeyError) in try ConfiguredKey(jwk: jwk) }
                // The keys alone decide which algorithms are possible.
                var algorithms: Set<Algorithm> = []
                for key in keys {
                    switch key.material {
                    case .asymmetric(let evpKey): algorithms.formUnion(key.algorithm.map { [$0] } ?? Algorithm.candidates(for: evpKey.kind))
                    case .secret: algorithms.formUnion(key.algorithm.map { [$0] } ?? [.hs256, .hs384, .hs512])
                    }
                }
                let policy = VerificationPolicy(algorithms: algorithms, issuer: nil, audience: nil, type: .any)
                return Verifier(policy: policy, keys: try KeySet(keys, allowed: algorithms, skippingUnusable: true))
            }
            guard let path = self.config.resolvedPath else { return nil }
            let config = try GatewayConfig.load(path: path)
            guard !config.verify.providers.isEmpty else { throw ValidationError("\(path) configures no token verification") }
            let provider = self.provider(in: config)
            if case .jwksURL(let url, _) = provider.keys {
                throw ValidationError("the provider's keys come from \(url); fetch that JWKS to a file and pass --jwks")
            }
            return try provider.makeVerifier(issuerConfig: config.issuer, maxTokenBytes: config.verify.maxTokenBytes)
        }

        /// The provider whose issuer is the token's `iss`, as the gateway picks it, else the first.
        private func provider(in config: GatewayConfig) -> ProviderConfig {
            let payload = self.token.split(separator: ".", omittingEmptySubsequences: false).dropFirst().first
            let issuer = payload.flatMap { Base64URL.decode($0) }
                .flatMap { bytes in bytes.withUnsafeBytes { try? JSONReader.parse($0) } }?
                .objectValue?["iss"]?.stringValue
            return config.verify.providers.first { $0.issuer == issuer } ?? config.verify.providers[0]
        }
    }
}
