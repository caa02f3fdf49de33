// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatehouseConfig
import GatehouseJOSE
import Testing

private let environment = [
    "REFRESH_SECRET": String(repeating: "r", count: 40), "REVOCATION_SECRET": "s3cret-feed-0123456789abcdef-0123", "HMAC": String(repeating: "k", count: 32),
]

private func parse(_ yaml: String, environment: [String: String] = environment) throws(ConfigError) -> GatewayConfig {
    try GatewayConfig.parse(yaml, file: "test.conf", baseDirectory: "/etc/gatehouse", environment: environment)
}

/// The error a configuration produces (nil if it is valid).
private func failure(_ yaml: String, environment: [String: String] = environment) -> ConfigError? {
    do {
        _ = try parse(yaml, environment: environment)
        return nil
    } catch {
        return error
    }
}

private let minimalIssuer = """
    issuer:
      issuer: https://auth.test
      signing: { key_file: k.pem }

    """

@Suite("gateway.conf")
struct ConfigTests {
    @Test("every key of the design's example is read, with paths relative to the file")
    func fullExample() throws {
        let url = Bundle.module.url(forResource: "full", withExtension: "conf", subdirectory: "Fixtures")!
        let config = try GatewayConfig.load(path: url.path, environment: environment)
        let folder = url.deletingLastPathComponent().standardizedFileURL.path
        #expect(config.listen == ListenAddress(host: "0.0.0.0", port: 8080))
        #expect(config.adminListen.port == 9901 && config.threads == 2 && config.maxConnections == 1000)
        #expect(config.headerTimeout == .seconds(5) && config.idleTimeout == .seconds(120) && config.logFormat == .json)
        #expect(config.trustedProxies == ["10.0.0.0/8", "::1"])
        let issuer = try #require(config.issuer)
        #expect(issuer.signing.keyFile == folder + "/keys/es256.pem")
        #expect(issuer.signing.previousKeyFiles == [folder + "/keys/old.pem"])
        #expect(issuer.database == "sqlite:" + folder + "/data/gatehouse.db")
        #expect(issuer.refreshTokenTTL == .seconds(7 * 86400) && issuer.accessTokenTTL == .seconds(1800))
        #expect(issuer.refreshSecret == environment["REFRESH_SECRET"] && issuer.revocationSecret == environment["REVOCATION_SECRET"])
        #expect(issuer.previousRefreshSecrets == ["old-refresh-secret-0123456789abcdef"])
        #expect(issuer.argon2 == .init(memoryKiB: 19456, iterations: 2, parallelism: 1) && issuer.passwordMinLength == 10)
        #expect(issuer.cookies && issuer.allowedOrigins == ["https://app.example.com"])
        let provider = try #require(config.verify.providers.first)
        #expect(provider.issuer == "https://auth.example.com" && provider.algorithms == [.es256])
        #expect(config.verify.tokenCacheSize == 5000 && config.verify.maxTokenBytes == 4096)
        #expect(config.verify.cookie == "access_token", "browser mode defaults the cookie name")
        #expect(config.verify.allowedOrigins == ["https://partner.example.com"])
        guard case .poll(_, let secret, let interval, _) = config.verify.revocation else {
            Issue.record("revocation feed not read")
            return
        }
        #expect(secret == environment["REVOCATION_SECRET"] && interval == .milliseconds(500))
        #expect(config.routes.count == 2)
        #expect(config.routes[0].anyRole == ["admin", "editor"] && config.routes[0].allScopes == ["orders:read"])
        let route = config.routes[1]
        #expect(route.auth == .public && route.stripPrefix && route.preserveHost && !route.forwardToken)
        #expect(route.upstream.scheme == "https" && route.upstream.port == 8443 && route.upstream.basePath == "/base")
        #expect(route.connectTimeout == .seconds(2))
    }

    @Test("defaults: no verify section verifies the local issuer's tokens")
    func defaults() throws {
        let config = try parse(minimalIssuer)
        #expect(config.listen.description == "0.0.0.0:8080" && config.shutdownGrace == .seconds(30) && config.accessLog)
        #expect(try parse("access_log: false\n").accessLog == false)
        let provider = try #require(config.verify.providers.first)
        #expect(provider.issuer == "https://auth.test" && provider.audience == "api" && provider.algorithms == [.es256])
        guard case .local = provider.keys else {
            Issue.record("expected local keys")
            return
        }
        #expect(config.verify.tokenCacheSize == 100_000 && config.issuer?.database == "sqlite:/etc/gatehouse/gatehouse.db")
    }

    @Test("unknown keys are refused with their line, at every level")
    func unknownKeys() {
        #expect(failure("listen: :8080\nlisten_port: 1\n")?.description == "test.conf:2: listen_port: unknown key")
        let nested = failure(minimalIssuer + "verify:\n  issuer: x\n  keys: local\n  token_cache: { size: 1, ttl: 3s }\n")
        #expect(nested?.key == "verify.token_cache.ttl" && nested?.line == 7)
        let route = failure(minimalIssuer + "routes:\n  - prefix: /a/\n    upstream: http://127.0.0.1:1\n    methods: [GET]\n")
        #expect(route?.key == "routes[0].methods" && route?.line == 7)
    }

    @Test("bad durations name the key and line")
    func badDurations() {
        for bad in ["30", "30 s", "1w", "-5s", "s", "1.5h", "10sec"] {
            let error = failure("idle_timeout: \(bad)\n")
            #expect(error?.key == "idle_timeout" && error?.line == 1, "\(bad)")
            #expect(error?.message.contains("not a duration") == true, "\(bad)")
        }
        #expect(Duration(configText: "1h30m") == .seconds(5400))
        #expect(Duration(configText: "250ms") == .milliseconds(250))
    }

    @Test("durations too long to count in nanoseconds are refused with their line, never a trap")
    func overlongDurations() {
        for bad in ["999999999999d", "999999999999h", "106751d", "36501d", "9999999999999999999s", "36500d1s"] {
            let error = failure("shutdown_grace: \(bad)\n")
            #expect(error?.key == "shutdown_grace" && error?.line == 1, "\(bad)")
            #expect(error?.message.contains("100 years") == true, "\(bad): \(error?.message ?? "accepted")")
        }
        #expect(Duration(configText: "36500d") == .seconds(36500 * 86400))
    }

    @Test("a plain-http jwks_url or poll feed to a host off this machine is warned about; loopback and https are not")
    func plainHTTPWarnings() throws {
        func warnings(_ url: String) throws -> [String] {
            try parse("verify:\n  issuer: https://idp.test\n  keys: { jwks_url: \"\(url)\" }\n").warnings
        }
        #expect(try warnings("http://idp.example.com/jwks").count == 1)
        #expect(try warnings("http://idp.example.com/jwks").first?.contains("verify.keys.jwks_url") == true)
        for quiet in ["https://idp.example.com/jwks", "http://127.0.0.1:8080/jwks", "http://localhost/jwks", "http://[::1]:80/jwks"] {
            #expect(try warnings(quiet).isEmpty, "\(quiet)")
        }
        let poll = try parse(
            "verify:\n  issuer: https://idp.test\n  keys: { jwks_url: \"https://idp.test/jwks\" }\n  revocation:\n    feed: poll\n"
                + "    url: http://auth.example.com/auth/revocations\n    secret: ${REFRESH_SECRET}\n"
        )
        #expect(poll.warnings.count == 1 && poll.warnings.first?.contains("verify.revocation.url") == true)
    }

    @Test("${VAR} expands from the environment; an unset variable is named")
    func environmentExpansion() throws {
        let yaml = "verify:\n  issuer: ${ISS}\n  keys: { secret: \"${HMAC}\", kid: k1 }\n  algorithms: [HS256]\n"
        let config = try parse(yaml, environment: ["ISS": "https://idp.test", "HMAC": String(repeating: "k", count: 32)])
        #expect(config.verify.providers[0].issuer == "https://idp.test")
        let error = failure(yaml, environment: ["ISS": "https://idp.test"])
        #expect(error?.key == "verify.keys.secret" && error?.message == "environment variable HMAC is not set" && error?.line == 3)
    }

    @Test("duplicate route prefixes, relative prefixes and bad upstreams are refused")
    func routes() {
        let base = minimalIssuer + "routes:\n"
        let duplicate = failure(base + "  - { prefix: /a/, upstream: http://127.0.0.1:1 }\n  - { prefix: /a/, upstream: http://127.0.0.1:2 }\n")
        #expect(duplicate?.key == "routes[1].prefix" && duplicate?.line == 6)
        #expect(failure(base + "  - { prefix: a/, upstream: http://127.0.0.1:1 }\n")?.key == "routes[0].prefix")
        for upstream in ["ftp://x", "127.0.0.1:9000", "http://", "http://h:99999", "http://u:p@h", "http://h/p?q=1"] {
            #expect(failure(base + "  - { prefix: /a/, upstream: \"\(upstream)\" }\n")?.key == "routes[0].upstream", "\(upstream)")
        }
        #expect(failure(base + "  - { prefix: /a/, upstream: http://127.0.0.1:1, auth: maybe }\n")?.key == "routes[0].auth")
        #expect(failure(base + "  - { prefix: /a/, upstream: http://h:1, auth: public, any_role: [x] }\n")?.key == "routes[0]")
        #expect(failure("routes:\n  - { prefix: /a/, upstream: http://127.0.0.1:1 }\n")?.message.contains("neither verify") == true)
        #expect(failure("routes:\n  - { prefix: /a/, upstream: http://127.0.0.1:1, auth: public }\n") == nil)
    }

    @Test("WebSocket route keys: defaults, a token parameter's name, an idle timeout above zero")
    func webSocketKeys() throws {
        let base = minimalIssuer + "routes:\n"
        let defaults = try parse(base + "  - { prefix: /a/, upstream: http://127.0.0.1:1 }\n").routes[0]
        #expect(defaults.websocketIdleTimeout == .seconds(3600) && defaults.tokenParameter == nil && !defaults.websocketOutlivesToken)
        let set = try parse(
            base + "  - { prefix: /a/, upstream: http://127.0.0.1:1, token_param: access_token, websocket_idle_timeout: 5m, websocket_outlive_token: true }\n"
        ).routes[0]
        #expect(set.websocketIdleTimeout == .seconds(300) && set.tokenParameter == "access_token" && set.websocketOutlivesToken)
        for bad in ["\"a b\"", "\"a&b\"", "\"a=b\"", "\"%41\"", "\"\""] {
            #expect(failure(base + "  - { prefix: /a/, upstream: http://127.0.0.1:1, token_param: \(bad) }\n")?.key == "routes[0].token_param", "\(bad)")
        }
        let zero = failure(base + "  - { prefix: /a/, upstream: http://127.0.0.1:1, websocket_idle_timeout: 0s }\n")
        #expect(zero?.key == "routes[0].websocket_idle_timeout" && zero?.message.contains("more than 0s") == true)
    }

    @Test("algorithms: none is never allowed, unknown names are refused")
    func algorithms() {
        let yaml = "verify:\n  issuer: https://idp\n  keys: { jwks_url: https://idp/jwks }\n  algorithms: [RS256, %@]\n"
        #expect(failure(yaml.replacingOccurrences(of: "%@", with: "none"))?.message == "\"none\" is never allowed")
        #expect(failure(yaml.replacingOccurrences(of: "%@", with: "HS257"))?.key == "verify.algorithms")
        #expect(failure(yaml.replacingOccurrences(of: "%@", with: "PS512")) == nil)
    }

    @Test("key sources: exactly one form; secrets of 32 bytes and an HS algorithm; local needs the issuer")
    func keySources() {
        let head = "verify:\n  issuer: https://idp\n  algorithms: [HS256]\n"
        #expect(failure(head + "  keys: { secret: short, kid: a }\n")?.message == "HMAC secrets need at least 32 bytes")
        #expect(failure(head + "  keys: { jwks_file: a.json, jwks_url: https://x/j }\n")?.key == "verify.keys")
        #expect(failure(head + "  keys: local\n")?.message == "local needs the issuer enabled")
        #expect(failure(head + "  keys: elsewhere\n")?.key == "verify.keys")
        #expect(failure("verify:\n  issuer: https://idp\n  algorithms: [ES256]\n  keys: { secret: \"${HMAC}\", kid: a }\n")?.key == "verify.keys.secret")
        #expect(failure(head)?.key == "verify.keys")
    }

    @Test("refresh_secret, each of previous_refresh_secrets and revocation_secret need 32 bytes: an error with key and line")
    func secretLengths() throws {
        let thirtyTwo = String(repeating: "s", count: 32)
        for (key, value) in [("revocation_secret", "short-feed-secret"), ("refresh_secret", "short"), ("previous_refresh_secrets", "[\(thirtyTwo), short]")] {
            let error = failure(minimalIssuer + "  \(key): \(value)\n")
            #expect(error?.key == "issuer.\(key)" && error?.line == 4, "\(key): \(String(describing: error))")
            #expect(error?.message.contains("32 bytes") == true, "\(key)")
        }
        let config = try parse(minimalIssuer + "  revocation_secret: \(thirtyTwo)\n  previous_refresh_secrets: [\(thirtyTwo)]\n")
        #expect(config.issuer?.revocationSecret == thirtyTwo && config.issuer?.previousRefreshSecrets == [thirtyTwo])
        #expect(try parse(minimalIssuer).issuer?.previousRefreshSecrets == [])
    }

    @Test("issuer: {enabled: false} needs nothing else; enabled needs issuer and a signing key")
    func issuerSwitch() throws {
        let sidecar = try parse("issuer: { enabled: false, issuer: ignored }\nverify:\n  issuer: https://idp\n  keys: { jwks_file: j.json }\n")
        #expect(sidecar.issuer == nil)
        guard case .jwksFile(let path) = sidecar.verify.providers[0].keys else {
            Issue.record("expected a JWKS file")
            return
        }
        #expect(path == "/etc/gatehouse/j.json")
        #expect(failure("issuer:\n  issuer: https://a\n")?.key == "issuer.signing")
        #expect(failure("issuer:\n  signing: { key_file: k.pem }\n")?.key == "issuer.issuer")
        #expect(failure("issuer:\n  issuer: https://a\n  signing: { alg: HS256, key_file: k.pem }\n")?.key == "issuer.signing.alg")
    }

    @Test("several providers by issuer; provider keys may not also stand at verify level")
    func providers() throws {
        let yaml = """
            verify:
              token_cache: { size: 0 }
              providers:
                - { issuer: https://a, keys: { jwks_url: https://a/jwks }, algorithms: [RS256], typ: any }
                - { issuer: https://b, audience: x, keys: { public_key_file: b.pem, kid: b1 }, algorithms: [ES256] }

            """
        let config = try parse(yaml)
        #expect(config.verify.providers.map(\.issuer) == ["https://a", "https://b"])
        #expect(config.verify.providers[0].type == .any && config.verify.tokenCacheSize == 0)
        #expect(failure(yaml + "  issuer: https://c\n")?.key == "verify.issuer")
        let twice = yaml.replacingOccurrences(of: "issuer: https://b", with: "issuer: https://a")
        #expect(failure(twice)?.key == "verify.providers[1].issuer")
    }

    @Test("malformed YAML, a non-mapping file and duplicate keys are reported with a line")
    func malformed() {
        #expect(failure("listen: [unclosed\n")?.message.hasPrefix("not valid YAML") == true)
        #expect(failure("- a\n- b\n")?.message == "the file must be a mapping of keys")
        let duplicate = failure("threads: 1\nlisten: :1\nlisten: :2\n")
        #expect(duplicate?.key == "listen" && duplicate?.message == "appears twice in one mapping" && duplicate?.line != nil)
        #expect(failure("listen: nowhere\n")?.key == "listen")
        #expect(failure("trusted_proxies: [10.0.0.0/33]\n")?.key == "trusted_proxies")
        #expect(failure("threads: many\n")?.key == "threads")
        #expect(failure("issuer: 5\n")?.key == "issuer")
    }
}
