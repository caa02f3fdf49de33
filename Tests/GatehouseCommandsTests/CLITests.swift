// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatehouseCrypto
import GatehouseJOSE
import Testing

/// Runs the real `gatehouse` executable built next to the test bundle.
struct CLI {
    struct Result {
        let status: Int32
        let output: String
        let error: String

        var json: JSONObject? { (try? JSONReader.parse(self.output))?.objectValue }
    }

    static var executable: URL {
        let tests = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
        var directory = tests.deletingLastPathComponent()
        // xctest bundles nest the binary; walk up to the build products folder.
        while !FileManager.default.fileExists(atPath: directory.appendingPathComponent("gatehouse").path), directory.path != "/" {
            directory.deleteLastPathComponent()
        }
        return directory.appendingPathComponent("gatehouse")
    }

    static func run(_ arguments: [String], environment: [String: String] = [:], directory: URL? = nil, input: String? = nil) throws -> Result {
        let process = Process()
        process.executableURL = self.executable
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }.filter { $0.key != "GATEHOUSE_CONFIG" || environment[$0.key] != nil }
        if let directory { process.currentDirectoryURL = directory }
        let output = Pipe()
        let error = Pipe()
        process.standardOutput = output
        process.standardError = error
        let inputPipe = Pipe()
        process.standardInput = input == nil ? FileHandle.nullDevice : inputPipe
        try process.run()
        if let input {
            inputPipe.fileHandleForWriting.write(Data(input.utf8))
            try inputPipe.fileHandleForWriting.close()
        }
        let outputData = output.fileHandleForReading.readDataToEndOfFile()
        let errorData = error.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, output: String(decoding: outputData, as: UTF8.self), error: String(decoding: errorData, as: UTF8.self))
    }
}

func temporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-cli-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

@Suite("gatehouse token inspect, keys generate, config check")
struct CLITests {
    /// RFC 7515 A.3 (ES256) with its public key as a JWKS.
    static let a3Token = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q"
    static let a3JWKS = #"{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#
    /// RFC 8037 A.4 (Ed25519) with its public key.
    static let edToken = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
    static let edJWKS = #"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#

    let directory: URL

    init() throws {
        self.directory = try temporaryDirectory()
        try Self.a3JWKS.write(to: self.directory.appendingPathComponent("a3.jwks"), atomically: true, encoding: .utf8)
        try Self.edJWKS.write(to: self.directory.appendingPathComponent("ed.jwks"), atomically: true, encoding: .utf8)
    }

    private func path(_ name: String) -> String { self.directory.appendingPathComponent(name).path }

    @Test("RFC 7515 A.3: signature valid, verdict expired, exit 1")
    func inspectA3() throws {
        let result = try CLI.run(["token", "inspect", Self.a3Token, "--jwks", self.path("a3.jwks")])
        #expect(result.status == 1)
        let json = try #require(result.json)
        #expect(json["signature"] == .string("valid") && json["verdict"] == .string("expired"))
        #expect(json["header"]?.objectValue?["alg"] == .string("ES256"))
        #expect(json["claims"]?.objectValue?["iss"] == .string("joe"))
    }

    @Test("RFC 8037 A.4: signature valid, verdict malformed (the payload is not JSON)")
    func inspectEd25519() throws {
        let result = try CLI.run(["token", "inspect", Self.edToken, "--jwks", self.path("ed.jwks")])
        #expect(result.status == 1)
        #expect(result.json?["signature"] == .string("valid") && result.json?["verdict"] == .string("malformed"))
    }

    @Test("refuses alg none and HS256 keyed with the public key, with a reason")
    func inspectRefusals() throws {
        let claims = Base64URL.encode(Array(#"{"exp":4102444800}"#.utf8))
        for alg in ["none", "NONE"] {
            let token = Base64URL.encode(Array(#"{"alg":"\#(alg)"}"#.utf8)) + "." + claims + ".AA"
            let result = try CLI.run(["token", "inspect", token, "--jwks", self.path("a3.jwks")])
            #expect(result.status == 1)
            #expect(result.json?["verdict"] == .string("alg_not_allowed") && result.json?["signature"] == .string("invalid"), "\(alg)")
        }
        // The classic confusion: HMAC keyed with the verifier's own public key, as JWKS text and as PEM.
        let jwk = try JWK(json: try JSONReader.parse(Self.a3JWKS).objectValue!["keys"]!.arrayValue![0].objectValue!)
        guard case .asymmetric(let key) = try jwk.makeKey() else { throw KeyError("not asymmetric") }
        for secret in [Array(Self.a3JWKS.utf8), Array(try key.publicKeyPEM().utf8)] {
            let input = Base64URL.encode(Array(#"{"alg":"HS256"}"#.utf8)) + "." + claims
            let token = input + "." + Base64URL.encode(PreparedMAC(secret: secret, digest: .sha256).authenticate(Array(input.utf8)))
            let result = try CLI.run(["token", "inspect", token, "--jwks", self.path("a3.jwks")])
            #expect(result.status == 1)
            #expect(result.json?["verdict"] == .string("alg_not_allowed") && result.json?["signature"] == .string("unknown_key"))
        }
    }

    @Test("without keys the signature is unchecked and the verdict never valid")
    func inspectWithoutKeys() throws {
        let result = try CLI.run(["token", "inspect", Self.a3Token], directory: self.directory)
        #expect(result.status == 1)
        #expect(result.json?["signature"] == .string("unchecked") && result.json?["verdict"] == .string("expired"))
        let garbage = try CLI.run(["token", "inspect", "not-a-token"], directory: self.directory)
        #expect(garbage.status == 1 && garbage.json?["verdict"] == .string("malformed") && garbage.json?["header"] == .null)
    }

    @Test("keys generate writes a 0600 PKCS#8 key and a public JWK whose thumbprint is the printed kid")
    func keysGenerate() throws {
        for alg in ["ES256", "ES384", "ES512", "EdDSA", "RS256", "PS384"] {
            let out = self.directory.appendingPathComponent("keys-\(alg)")
            let result = try CLI.run(["keys", "generate", "--alg", alg, "--out", out.path])
            #expect(result.status == 0, "\(alg): \(result.error)")
            let kid = result.output.trimmingCharacters(in: .whitespacesAndNewlines)
            let pemPath = out.appendingPathComponent("\(kid).pem").path
            let pem = try String(contentsOfFile: pemPath, encoding: .utf8)
            #expect(pem.hasPrefix("-----BEGIN PRIVATE KEY-----"), "\(alg)")
            let mode = try FileManager.default.attributesOfItem(atPath: pemPath)[.posixPermissions] as? Int
            #expect(mode == 0o600, "\(alg)")
            let jwkText = try String(contentsOf: out.appendingPathComponent("\(kid).jwk.json"), encoding: .utf8)
            let jwk = try JWK(jsonText: jwkText)
            #expect(jwk.keyID == kid && jwk.thumbprint == kid && jwk.algorithm == alg, "\(alg)")
            #expect(jwk.json["d"] == nil, "\(alg): the JWK is public")

            // The key signs; the JWK verifies it through the CLI.
            let algorithm = Algorithm(rawValue: alg)!
            let signer = try Signer(material: .asymmetric(try EVPKey(pem: pem)), algorithm: algorithm, keyID: kid)
            let token = try signer.sign(JSONObject(["exp": .number(Date().timeIntervalSince1970 + 600)]), type: "at+jwt")
            try JWKS(keys: [jwk]).serialized.write(to: out.appendingPathComponent("set.jwks"), atomically: true, encoding: .utf8)
            let inspected = try CLI.run(["token", "inspect", token, "--jwks", out.appendingPathComponent("set.jwks").path])
            #expect(inspected.status == 0 && inspected.json?["verdict"] == .string("valid"), "\(alg): \(inspected.output)")
        }
        let refused = try CLI.run(["keys", "generate", "--alg", "HS256", "--out", self.path("hs")])
        #expect(refused.status != 0 && refused.error.contains("shared secrets"))
    }

    @Test("--config applies the whole policy: issuer, audience, typ")
    func inspectWithConfig() throws {
        let key = try EVPKey.generate(.ec(.p256))
        try key.publicKeyPEM().write(to: self.directory.appendingPathComponent("pub.pem"), atomically: true, encoding: .utf8)
        try """
            verify:
              issuer: https://idp.test
              audience: api
              algorithms: [ES256]
              keys: { public_key_file: pub.pem, kid: k1 }

            """.write(to: self.directory.appendingPathComponent("gateway.conf"), atomically: true, encoding: .utf8)
        let signer = try Signer(material: .asymmetric(key), algorithm: .es256, keyID: "k1")
        var claims = JSONObject(["iss": .string("https://idp.test"), "aud": .string("api"), "exp": .number(Date().timeIntervalSince1970 + 600)])
        let good = try signer.sign(claims, type: "at+jwt")
        #expect(try CLI.run(["token", "inspect", good, "--config", self.path("gateway.conf")]).status == 0)
        // ./gateway.conf is found without the flag.
        #expect(try CLI.run(["token", "inspect", good], directory: self.directory).json?["verdict"] == .string("valid"))
        claims["aud"] = .string("other")
        let wrongAudience = try CLI.run(["token", "inspect", try signer.sign(claims, type: "at+jwt"), "--config", self.path("gateway.conf")])
        #expect(wrongAudience.status == 1 && wrongAudience.json?["verdict"] == .string("bad_audience"))
        let untyped = try CLI.run(["token", "inspect", try signer.sign(claims, type: nil), "--config", self.path("gateway.conf")])
        #expect(untyped.json?["verdict"] == .string("bad_typ"))
    }

    @Test("config check: effective values with secrets masked; errors name file, line and key")
    func configCheck() throws {
        let key = try EVPKey.generate(.ec(.p256))
        try key.privateKeyPEM().write(to: self.directory.appendingPathComponent("signing.pem"), atomically: true, encoding: .utf8)
        try """
            issuer:
              issuer: https://auth.test
              signing: { key_file: signing.pem }
              database: postgres://gh:hunter2@127.0.0.1:5432/gh
              refresh_secret: ${GH_REFRESH}
            routes:
              - { prefix: /api/, upstream: http://127.0.0.1:9000 }

            """.write(to: self.directory.appendingPathComponent("ok.conf"), atomically: true, encoding: .utf8)
        let ok = try CLI.run(["config", "check", "--config", self.path("ok.conf")], environment: ["GH_REFRESH": String(repeating: "z", count: 32)])
        #expect(ok.status == 0, "\(ok.error)")
        #expect(ok.output.contains("database: postgres://gh:***@127.0.0.1:5432/gh") && !ok.output.contains("hunter2"))
        #expect(ok.output.contains("refresh_secret: '***'") && !ok.output.contains("zzzz"))
        #expect(ok.output.contains("signing: { alg: ES256, key_file: \(self.directory.standardizedFileURL.path)/signing.pem"))

        try "listen: :8080\nroutes:\n  - { prefix: /a/, upstream: http://127.0.0.1:1, auth: public, tiemout: 3s }\n"
            .write(to: self.directory.appendingPathComponent("bad.conf"), atomically: true, encoding: .utf8)
        let bad = try CLI.run(["config", "check", "--config", self.path("bad.conf")])
        #expect(bad.status == 1)
        #expect(bad.error.contains("bad.conf:3: routes[0].tiemout: unknown key"), "\(bad.error)")

        try "issuer:\n  issuer: https://a\n  signing: { key_file: missing.pem }\n"
            .write(to: self.directory.appendingPathComponent("nokey.conf"), atomically: true, encoding: .utf8)
        let missing = try CLI.run(["config", "check", "--config", self.path("nokey.conf")])
        #expect(missing.status == 1 && missing.error.contains("nokey.conf:3: issuer.signing.key_file: cannot read "), "\(missing.error)")
    }
}

@Suite("gatehouse serve as a process")
struct ServeProcessTests {
    @Test("serve prints its listeners and exits 0 on SIGTERM; a bad configuration is one line and exit 1")
    func serveAndStop() throws {
        let directory = try temporaryDirectory()
        let port = 18_000 + Int.random(in: 0..<2000)
        let conf = directory.appendingPathComponent("gateway.conf")
        try """
            listen: 127.0.0.1:\(port)
            admin_listen: 127.0.0.1:\(port + 1)
            shutdown_grace: 2s
            issuer: { enabled: false }
            routes:
              - { prefix: /, upstream: "http://127.0.0.1:9", auth: public }

            """.write(to: conf, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = CLI.executable
        process.arguments = ["serve", "--config", conf.path]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        // Wait for the first line, then stop it.
        let handle = output.fileHandleForReading
        var text = ""
        let deadline = Date().addingTimeInterval(10)
        while !text.contains("admin listening"), Date() < deadline {
            text += String(decoding: handle.availableData, as: UTF8.self)
        }
        #expect(text.contains("gatehouse listening on 127.0.0.1:\(port)"))
        #expect(text.contains("route / -> http://127.0.0.1:9 (public)"))
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        #expect(process.terminationReason == .exit && process.terminationStatus == 0)

        try "routes: [ { prefix: nope } ]\n".write(to: conf, atomically: true, encoding: .utf8)
        let bad = try CLI.run(["serve", "--config", conf.path])
        #expect(bad.status == 1 && bad.error.hasPrefix("error: ") && bad.error.contains("routes[0].prefix"))
    }
}
